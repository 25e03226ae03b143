// The whole-file JSON reader: values, escapes, lines of nested elements, and errors with the line.

@testable import Datasets
import XCTest

final class JSONDocumentTests: XCTestCase {
    func testValuesEscapesAndLines() throws {
        let text = """
        {
          "completions": [
            {"prompt": "caf\\u00e9 \\ud83d\\ude00", "n": -1.5e2, "ok": true, "none": null},
            {"prompt": "a\\nb\\t\\"q\\" \\\\ \\/"}
          ],
          "empty": [], "obj": {}
        }
        """
        let doc = try JSONDocument.parse(Array(text.utf8), file: "t.json")
        let items = try XCTUnwrap(doc.member("completions")?.elements)
        XCTAssertEqual(items.count, 2)
        XCTAssertEqual(items.map(\.line), [3, 4], "each element's line is where it starts")
        XCTAssertEqual(items[0].member("prompt")?.string, "café 😀", "\\u escapes, with a surrogate pair")
        XCTAssertEqual(items[0].member("n")?.value, .number(-150))
        XCTAssertEqual(items[0].member("ok")?.value, .bool(true))
        XCTAssertEqual(items[0].member("none")?.value, .null)
        XCTAssertEqual(items[1].member("prompt")?.string, "a\nb\t\"q\" \\ /")
        XCTAssertEqual(doc.member("empty")?.elements?.count, 0)
        let row = try XCTUnwrap(items[1].row(file: "t.json"))
        XCTAssertEqual(row.line, 4)
        XCTAssertEqual(try row.string("prompt"), "a\nb\t\"q\" \\ /")
    }

    func testMatchesFoundationOnARealFile() throws {
        // The same values as Foundation's parser on a real file of the data root.
        let path = try SharedData.require("alpaca-eval/gpt4/model_outputs.json")
        let ours = try JSONDocument.load(path)
        let theirs = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [[String: Any]])
        let items = try XCTUnwrap(ours.elements)
        XCTAssertEqual(items.count, theirs.count)
        for (a, b) in zip(items, theirs) {
            XCTAssertEqual(a.member("output")?.string, b["output"] as? String)
            XCTAssertEqual(a.member("instruction")?.string, b["instruction"] as? String)
        }
        // Lines: the text before each element holds line - 1 line breaks.
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for item in items.prefix(50) {
            XCTAssertEqual(lines[item.line - 1].trimmingCharacters(in: .whitespaces).first, "{", "element at line \(item.line)")
        }
    }

    func testErrorsNameTheLine() {
        for (text, line, what) in [("[\n1,\n2\n", 4, "not closed"), ("{\"a\": 1,\n \"b\" 2}", 2, "expected ':'"),
                                   ("[1, tru]", 1, "unexpected character"), ("[\"\\x\"]", 1, "unknown escape"),
                                   ("[1] 2", 1, "after the JSON value")] {
            guard let e = expectDatasetError(try JSONDocument.parse(Array(text.utf8), file: "bad.json")) else { continue }
            XCTAssertEqual(e.kind, .unsupportedFormat, text)
            XCTAssertEqual(e.line, line, "line of the error in \(text.debugDescription)")
            XCTAssertTrue(e.message.contains(what), "\(e)")
            XCTAssertFalse(e.isRowLevel, "a broken document cannot be skipped row by row")
        }
        XCTAssertEqual(expectDatasetError(try JSONDocument.load("/nonexistent/x.json"))?.kind, .fileNotFound)
    }
}
