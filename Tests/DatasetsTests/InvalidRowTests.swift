// The invalid-row policy: fail naming file, line and field, or skip and count.

import Datasets
import XCTest

final class InvalidRowTests: XCTestCase {
    private func writeFiles(_ dir: TempDirectory) throws -> [String] {
        let a = try dir.write("a.jsonl", """
        {"prompt": "Q1", "chosen": "A", "rejected": "B"}
        {"prompt": "Q2", "chosen": "A"
        {"prompt": "Q3", "chosen": "A", "rejected": "B"}

        {"prompt": "Q5", "chosen": 5, "rejected": "B"}
        "just a string"
        """)
        let b = try dir.write("b.csv", "prompt,chosen,rejected\nQ7,A,B\nQ8,A\n\"Q9\",\"A, a\",B\nQ10,,B\n")
        return [a, b]
    }

    func testFirstInvalidRowFailsWithFileLineAndField() throws {
        let dir = try TempDirectory()
        let paths = try writeFiles(dir)
        let e = try XCTUnwrap(expectDatasetError(try DatasetLoader.load(.trl, paths: paths)))
        XCTAssertEqual(e.kind, .malformedRow)
        XCTAssertEqual(e.file, paths[0])
        XCTAssertEqual(e.line, 2)
        XCTAssertTrue(e.description.hasPrefix("\(paths[0]):2: "))
        XCTAssertTrue(e.message.contains("skipInvalidRows"), "the message says what to do")

        let typeError = try dir.write("c.jsonl", "{\"prompt\": \"Q\", \"chosen\": 5, \"rejected\": \"B\"}\n")
        let t = try XCTUnwrap(expectDatasetError(try DatasetLoader.load(.trl, paths: [typeError])))
        XCTAssertEqual(t.kind, .invalidValue)
        XCTAssertEqual(t.field, "chosen")
        XCTAssertEqual(t.description, "\(typeError):1: field 'chosen': the value is a number, expected a string or a list of {\"role\", \"content\"} messages; fix the row or set skipInvalidRows: true")
    }

    func testSkipAndCountAcrossFiles() throws {
        let dir = try TempDirectory()
        var options = DatasetOptions()
        options.skipInvalidRows = true
        let d = try DatasetLoader.load(.trl, paths: writeFiles(dir), options: options)
        XCTAssertEqual(d.pairs.map(\.promptText), ["Q1", "Q3", "Q7", "Q9"])
        XCTAssertEqual(d.pairs[3].chosen, "A, a")
        XCTAssertEqual(d.report.files, 2)
        XCTAssertEqual(d.report.rows, 9)
        XCTAssertEqual(d.report.skippedInvalid, 4)
        XCTAssertEqual(d.report.droppedEmptyResponse, 1)
        XCTAssertEqual(d.report.invalidRowSamples.map(\.line), [2, 5, 6, 3])
        XCTAssertEqual(d.report.invalidRowSamples.map { ($0.file as NSString).lastPathComponent }, ["a.jsonl", "a.jsonl", "a.jsonl", "b.csv"])
        XCTAssertTrue(d.report.description.contains("4 skipped invalid"), d.report.description)
    }

    func testMaxRowsStopsEarly() throws {
        let dir = try TempDirectory()
        var options = DatasetOptions()
        options.skipInvalidRows = true
        options.maxRows = 3
        let d = try DatasetLoader.load(.trl, paths: writeFiles(dir), options: options)
        XCTAssertEqual(d.report.rows, 3)
        XCTAssertEqual(d.pairs.count, 2)
        options.maxRows = -1
        XCTAssertEqual(expectDatasetError(try DatasetLoader.load(.trl, paths: writeFiles(dir), options: options))?.field, "maxRows")
    }

    func testMissingPathsAndEmptyDirectories() throws {
        let dir = try TempDirectory()
        XCTAssertEqual(expectDatasetError(try DatasetLoader.load(.trl, paths: [dir.url.path + "/nope.jsonl"]))?.kind, .fileNotFound)
        XCTAssertEqual(expectDatasetError(try DatasetLoader.load(.trl, paths: [dir.url.path]))?.kind, .fileNotFound)
        XCTAssertEqual(expectDatasetError(try DatasetLoader.load(.trl, paths: []))?.kind, .invalidConfiguration)
    }
}
