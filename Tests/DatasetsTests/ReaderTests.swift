// LineReader (plain, CRLF, gzip single/multi-member, truncated), JSONL and CSV edge cases.

import Datasets
import XCTest

final class LineReaderTests: XCTestCase {
    func testPlainLinesCRLFBOMAndMissingFinalNewline() throws {
        let dir = try TempDirectory()
        let path = try dir.write("a.txt", "\u{FEFF}first\r\nsecond\n\nfourth")
        let reader = try LineReader(path: path)
        XCTAssertFalse(reader.isCompressed)
        XCTAssertEqual(try reader.nextLine(), "first")
        XCTAssertEqual(reader.lineNumber, 1)
        XCTAssertEqual(try reader.readAll(), ["second", "", "fourth"])
        XCTAssertEqual(reader.lineNumber, 4)
        XCTAssertNil(try reader.nextLine())
    }

    func testTrailingNewlineYieldsNoEmptyLineAndEmptyFileNoLines() throws {
        let dir = try TempDirectory()
        XCTAssertEqual(try LineReader(path: dir.write("a.txt", "x\ny\n")).readAll(), ["x", "y"])
        XCTAssertEqual(try LineReader(path: dir.write("b.txt", "")).readAll(), [])
    }

    func testSmallChunksSplitLinesAndMultibyteCharacters() throws {
        let dir = try TempDirectory()
        let lines = (0..<50).map { "line \($0) — ünïcödé ✓ \(String(repeating: "x", count: $0))" }
        let path = try dir.write("a.txt", lines.joined(separator: "\n") + "\n")
        XCTAssertEqual(try LineReader(path: path, chunkSize: 16).readAll(), lines)
    }

    func testGzipIsDetectedByMagicAndInflatedInSmallChunks() throws {
        let dir = try TempDirectory()
        let lines = (0..<2000).map { "{\"i\": \($0), \"text\": \"row \($0)\"}" }
        let gz = try TempDirectory.gzip(lines.joined(separator: "\n") + "\n")
        let path = try dir.write("data.bin", bytes: gz) // no .gz extension: detected by content
        let reader = try LineReader(path: path, chunkSize: 37)
        XCTAssertTrue(reader.isCompressed)
        XCTAssertEqual(try reader.readAll(), lines)
    }

    func testMultiMemberGzipReadsEveryMember() throws {
        let dir = try TempDirectory()
        let a = try TempDirectory.gzip("one\ntwo\n"), b = try TempDirectory.gzip("three\nfour"), c = try TempDirectory.gzip("\nfive\n")
        for chunk in [16, 1 << 18] {
            let path = try dir.write("multi\(chunk).gz", bytes: a + b + c)
            XCTAssertEqual(try LineReader(path: path, chunkSize: chunk).readAll(), ["one", "two", "three", "four", "five"],
                           "chunk size \(chunk)")
        }
        // Zero padding after the last member is ignored (as gunzip does).
        let padded = try dir.write("padded.gz", bytes: a + [0, 0, 0, 0])
        XCTAssertEqual(try LineReader(path: padded).readAll(), ["one", "two"])
    }

    func testTruncatedAndCorruptGzipAreErrorsNamingTheFile() throws {
        let dir = try TempDirectory()
        let gz = try TempDirectory.gzip(String(repeating: "some text to compress\n", count: 200))
        let truncated = try dir.write("cut.gz", bytes: Array(gz.prefix(gz.count / 2)))
        let e1 = expectDatasetError(try LineReader(path: truncated).readAll())
        XCTAssertEqual(e1?.kind, .decompression)
        XCTAssertEqual(e1?.file, truncated)
        XCTAssertTrue(e1?.message.contains("ends in the middle") ?? false, e1?.description ?? "")

        var corrupt = gz
        for i in 12..<min(40, corrupt.count) { corrupt[i] ^= 0x5A }
        let bad = try dir.write("bad.gz", bytes: corrupt)
        XCTAssertEqual(expectDatasetError(try LineReader(path: bad).readAll())?.kind, .decompression)
    }

    func testMissingFileIsFileNotFound() {
        let e = expectDatasetError(try LineReader(path: "/nonexistent/dir/x.jsonl"))
        XCTAssertEqual(e?.kind, .fileNotFound)
        XCTAssertTrue(e?.description.hasPrefix("/nonexistent/dir/x.jsonl: ") ?? false)
    }
}

final class JSONLReaderTests: XCTestCase {
    func testObjectsPerLineBlankLinesSkippedLineNumbersKept() throws {
        let dir = try TempDirectory()
        let path = try dir.write("a.jsonl", "{\"a\": 1}\n\n   \n{\"a\": 2, \"b\": [true, null, \"x\"]}\n")
        let reader = try JSONLReader(path: path)
        let r1 = try XCTUnwrap(reader.nextRow())
        XCTAssertEqual(r1.line, 1)
        XCTAssertEqual(try r1.int("a"), 1)
        let r2 = try XCTUnwrap(reader.nextRow())
        XCTAssertEqual(r2.line, 4)
        XCTAssertEqual(try r2.double("a"), 2)
        XCTAssertNil(try reader.nextRow())
    }

    func testMalformedLineThrowsWithItsLineAndReadingContinues() throws {
        let dir = try TempDirectory()
        let path = try dir.write("a.jsonl", "{\"a\": 1}\n{\"a\": \n[1, 2]\n{\"a\": 4}\n")
        let reader = try JSONLReader(path: path)
        XCTAssertEqual(try reader.nextRow()?.line, 1)
        let e2 = expectDatasetError(try reader.nextRow())
        XCTAssertEqual(e2?.kind, .malformedRow)
        XCTAssertEqual(e2?.line, 2)
        let e3 = expectDatasetError(try reader.nextRow())
        XCTAssertEqual(e3?.line, 3)
        XCTAssertTrue(e3?.message.contains("an array") ?? false, e3?.description ?? "")
        XCTAssertEqual(try reader.nextRow()?.line, 4)
    }

    func testJSONArrayFileIsRejectedWithAHint() throws {
        let dir = try TempDirectory()
        let path = try dir.write("a.json", "[{\"a\": 1},\n{\"a\": 2}]\n")
        let e = expectDatasetError(try JSONLReader(path: path).nextRow())
        XCTAssertEqual(e?.kind, .unsupportedFormat)
        XCTAssertTrue(e?.message.contains("JSON Lines") ?? false)
    }

    func testTypedAccessorsNameFieldAndLine() throws {
        let dir = try TempDirectory()
        let path = try dir.write("a.jsonl", "{\"s\": \"x\", \"n\": 1.5, \"b\": \"maybe\", \"m\": [{\"role\": \"robot\", \"content\": \"hi\"}]}\n")
        let row = try XCTUnwrap(JSONLReader(path: path).nextRow())
        let missing = expectDatasetError(try row.string("absent"))
        XCTAssertEqual(missing?.kind, .missingField)
        XCTAssertEqual(missing?.field, "absent")
        XCTAssertEqual(missing?.line, 1)
        XCTAssertEqual(expectDatasetError(try row.string("n"))?.kind, .invalidValue)
        XCTAssertEqual(expectDatasetError(try row.int("n"))?.kind, .invalidValue)
        XCTAssertEqual(expectDatasetError(try row.bool("b"))?.field, "b")
        let role = expectDatasetError(try row.textOrMessages("m"))
        XCTAssertTrue(role?.message.contains("robot") ?? false)
        XCTAssertTrue(role?.description.hasPrefix("\(path):1: field 'm': ") ?? false, role?.description ?? "")
    }
}

final class CSVReaderTests: XCTestCase {
    func testRFC4180QuotedCommasEscapedQuotesAndNewlines() throws {
        let dir = try TempDirectory()
        let text = #"""
        id,text,n
        1,"hello, world",3
        2,"she said ""hi""",4
        3,"line one
        line two

        line four",5
        4,,6
        5,plain "inner" quote,7
        6,"",8

        """#
        let path = try dir.write("a.csv", text)
        let reader = try CSVReader(path: path)
        XCTAssertEqual(reader.header, ["id", "text", "n"])
        var rows: [(line: Int, text: String, n: Int)] = []
        while let row = try reader.nextRow() {
            rows.append((row.line, try row.string("text"), try row.int("n")))
        }
        XCTAssertEqual(rows.map(\.line), [2, 3, 4, 8, 9, 10])
        XCTAssertEqual(rows.map(\.text), ["hello, world", "she said \"hi\"", "line one\nline two\n\nline four", "",
                                          "plain \"inner\" quote", ""])
        XCTAssertEqual(rows.map(\.n), [3, 4, 5, 6, 7, 8])
    }

    func testCRLFRecordsAndCommentFirstLine() throws {
        let dir = try TempDirectory()
        let text = "# dataset_version=1.0, harm_definition=x.yaml,,\r\na,b\r\n\"x\ny\",2\r\n3,4\r\n"
        let reader = try CSVReader(path: dir.write("a.csv", text))
        XCTAssertEqual(reader.comment, " dataset_version=1.0, harm_definition=x.yaml,,")
        let r1 = try XCTUnwrap(reader.nextRow())
        XCTAssertEqual(r1.line, 3)
        XCTAssertEqual(try r1.string("a"), "x\ny")
        let r2 = try XCTUnwrap(reader.nextRow())
        XCTAssertEqual(r2.line, 5)
        XCTAssertEqual(try r2.string("b"), "4")
        XCTAssertNil(try reader.nextRow())
    }

    func testFieldCountMismatchAndStrayQuoteAreRowErrorsAndReadingContinues() throws {
        let dir = try TempDirectory()
        let path = try dir.write("a.csv", "a,b\n1,2,3\n4\n\"x\"y,5\n6,7,,\n8,9\n")
        let reader = try CSVReader(path: path)
        let tooMany = expectDatasetError(try reader.nextRow())
        XCTAssertEqual(tooMany?.line, 2)
        XCTAssertEqual(tooMany?.kind, .malformedRow)
        XCTAssertEqual(expectDatasetError(try reader.nextRow())?.line, 3)
        let stray = expectDatasetError(try reader.nextRow())
        XCTAssertEqual(stray?.line, 4)
        XCTAssertTrue(stray?.message.contains("doubled") ?? false)
        // Trailing empty extra fields are tolerated.
        XCTAssertEqual(try reader.nextRow()?.line, 5)
        XCTAssertEqual(try reader.nextRow()?.line, 6)
    }

    func testUnterminatedQuoteNamesTheRecordStart() throws {
        let dir = try TempDirectory()
        let path = try dir.write("a.csv", "a,b\n1,2\n3,\"never closed\n4,5\n")
        let reader = try CSVReader(path: path)
        XCTAssertEqual(try reader.nextRow()?.line, 2)
        let e = expectDatasetError(try reader.nextRow())
        XCTAssertEqual(e?.line, 3)
        XCTAssertTrue(e?.message.contains("never closed") ?? false)
    }

    func testGzippedCSVAndMessageListCells() throws {
        let dir = try TempDirectory()
        let text = "prompt,x\n\"[{\"\"role\"\": \"\"user\"\", \"\"content\"\": \"\"Hi\"\"}]\",1\n[not json,2\n"
        let path = try dir.write("a.csv.gz", bytes: TempDirectory.gzip(text))
        let reader = try CSVReader(path: path)
        let r1 = try XCTUnwrap(reader.nextRow())
        XCTAssertEqual(try r1.textOrMessages("prompt"), .messages([.user("Hi")]))
        let r2 = try XCTUnwrap(reader.nextRow())
        XCTAssertEqual(try r2.textOrMessages("prompt"), .text("[not json"))
    }

    func testFormatDetection() throws {
        let dir = try TempDirectory()
        XCTAssertEqual(try FileFormat.detect(path: dir.write("a.csv", "a\n1\n")), .csv)
        XCTAssertEqual(try FileFormat.detect(path: dir.write("a.jsonl.gz", bytes: TempDirectory.gzip("{}\n"))), .jsonl)
        XCTAssertEqual(try FileFormat.detect(path: dir.write("noext", "\n  {\"a\": 1}\n")), .jsonl)
        XCTAssertEqual(try FileFormat.detect(path: dir.write("noext2", "a,b\n")), .csv)
        XCTAssertEqual(expectDatasetError(try FileFormat.detect(path: dir.write("a.parquet", "x")))?.kind, .unsupportedFormat)
    }
}
