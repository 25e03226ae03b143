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

/// The data root, found as the library finds it: `DUALIGN_DATA` (which `launch/test.sh` exports), else
/// what `launch/assets.sh data` resolves (../shared/data, verified; or a verified download), which is
/// then exported to this process so the library's `DataRoot` sees the same folder.
enum SharedData {
    /// The package root (three levels above this file).
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The data root, or why there is none.
    static let resolved: Result<URL, DataRootError> = {
        if let d = ProcessInfo.processInfo.environment[DataRoot.variable], !d.isEmpty {
            return .success(URL(fileURLWithPath: d))
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [packageRoot.appendingPathComponent("launch/assets.sh").path, "data"]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch {
            return .failure(DataRootError(subject: "launch/assets.sh data", "cannot run: \(error)"))
        }
        let path = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, !path.isEmpty else {
            return .failure(DataRootError(subject: "launch/assets.sh data", "failed (status \(process.terminationStatus)):\n\(log)"))
        }
        setenv(DataRoot.variable, path, 1)
        return .success(URL(fileURLWithPath: path))
    }()

    /// The data root; fails the test (skips only when DUALIGN_SKIP_ASSETS=1) when there is none.
    static func directory(file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        switch resolved {
        case .success(let url): return url
        case .failure(let error):
            if ProcessInfo.processInfo.environment["DUALIGN_SKIP_ASSETS"] == "1" {
                throw XCTSkip("no data root and DUALIGN_SKIP_ASSETS=1: \(error)")
            }
            XCTFail("no data root: \(error)", file: file, line: line)
            throw error
        }
    }

    /// The path of `relative` under the data root; fails the test when it is missing.
    static func require(_ relative: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let path = try directory(file: file, line: line).appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: path) else {
            XCTFail("\(path) is missing from the data root; run `launch/assets.sh data` to verify it", file: file, line: line)
            throw XCTSkip("\(path) is missing")
        }
        return path
    }

    /// `${DUALIGN_CACHE:-$HOME/.cache/dualign}`.
    static var cacheDirectory: URL { DataRoot.cacheDirectory() }

    /// The evaluation prompts the filter reads: the cached files of `launch/assets.sh prompts`
    /// (installed on demand) and the data root; fails the test when they cannot be had.
    static func requirePrompts(file: StaticString = #filePath, line: UInt = #line) throws {
        _ = try directory(file: file, line: line)   // the filter also reads the held-out XSTest prompts
        let adv = cacheDirectory.appendingPathComponent("prompts/adv_bench.prompt").path
        if FileManager.default.fileExists(atPath: adv) { return }
        if ProcessInfo.processInfo.environment["DUALIGN_SKIP_ASSETS"] == "1" { throw XCTSkip("no \(adv) and DUALIGN_SKIP_ASSETS=1") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [packageRoot.appendingPathComponent("launch/assets.sh").path, "prompts"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            XCTFail("launch/assets.sh prompts failed:\n\(output)", file: file, line: line)
            throw XCTSkip("no evaluation prompts")
        }
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
