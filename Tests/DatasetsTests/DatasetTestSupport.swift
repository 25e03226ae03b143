// Test support: temporary files, gzip via the system tool, a byte-level toy tokenizer, data paths.

import Datasets
import Foundation
import Tokenizers
import XCTest

/// A temporary directory removed when the test case ends.
final class TempDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-datasets-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// Writes `text` (UTF-8, exactly as given) to `name` and returns the path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        try write(name, bytes: Array(text.utf8))
    }

    @discardableResult
    func write(_ name: String, bytes: [UInt8]) throws -> String {
        let file = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: file)
        return file.path
    }

    /// Compresses `text` with the system `gzip -c` (one gzip member).
    static func gzip(_ text: String) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gzip", "-c", "-n"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw XCTSkip("gzip is not available") }
        return [UInt8](data)
    }
}

/// The shared data directory (`/work/shared/data` from this repository's checkout: `../shared/data`),
/// or `DUALIGN_DATA` if set.
enum SharedData {
    static var directory: URL {
        if let d = ProcessInfo.processInfo.environment["DUALIGN_DATA"], !d.isEmpty { return URL(fileURLWithPath: d) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.deletingLastPathComponent().appendingPathComponent("shared/data")
    }

    /// The path of `relative` under the data directory; skips the test when absent.
    static func require(_ relative: String) throws -> String {
        let path = directory.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("\(path) is missing (set DUALIGN_DATA to the shared data directory)")
        }
        return path
    }

    /// `${DUALIGN_CACHE:-$HOME/.cache/dualign}`.
    static var cacheDirectory: URL {
        if let c = ProcessInfo.processInfo.environment["DUALIGN_CACHE"], !c.isEmpty { return URL(fileURLWithPath: c) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/dualign")
    }
}

/// A byte-level tokenizer with no merges: every UTF-8 byte is one token (ids 0...255 in
/// ByteLevel order), then `<|endoftext|>` (256, EOS), `<|im_start|>` (257), `<|im_end|>` (258).
/// Token counts equal byte counts, which makes truncation arithmetic easy to check.
enum ToyTokenizer {
    static let eos = 256, imStart = 257, imEnd = 258

    static func make() throws -> BPETokenizer {
        let bytes = (0..<256).map { String(ByteLevel.scalarForByte[$0]) }
        return try BPETokenizer(tokens: bytes + ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                merges: [], tokenTypes: Array(repeating: 1, count: 256) + [3, 3, 3],
                                preTokenizer: .gpt2, eosTokenID: eos, padTokenID: eos)
    }

    static func template(_ kind: ChatTemplateKind) throws -> ChatTemplate {
        try ChatTemplate(kind: kind, tokenizer: make())
    }
}

/// Asserts that `body` throws a `DatasetError` and returns it.
func expectDatasetError<T>(_ body: @autoclosure () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> DatasetError? {
    do {
        _ = try body()
        XCTFail("expected a DatasetError, got a value", file: file, line: line)
        return nil
    } catch let e as DatasetError {
        return e
    } catch {
        XCTFail("expected a DatasetError, got \(error)", file: file, line: line)
        return nil
    }
}
