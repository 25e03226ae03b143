// Single-threaded encoding throughput of the SmolLM2 tokenizer on English text.
//
// Debug builds are slow; for the real number run
//   swift test -c release -Xswiftc -enable-testing --filter TokenizerSpeedTests

import Foundation
import Tokenizers
import XCTest
import Formats

final class TokenizerSpeedTests: XCTestCase {
    /// English text: the Debian `fortunes` files if installed, else the HH-RLHF test dialogues.
    static func englishCorpus() throws -> (name: String, text: String)? {
        let dir = "/usr/share/games/fortunes"
        if let names = try? FileManager.default.contentsOfDirectory(atPath: dir) {
            var text = ""
            for name in names.sorted() where !name.contains(".") {
                if let data = FileManager.default.contents(atPath: dir + "/" + name) {
                    text += String(decoding: data, as: UTF8.self)
                }
            }
            if text.utf8.count > 100_000 { return ("fortunes", text) }
        }
        guard case .success(let root) = TestDataRoot.resolved else { return nil }
        let gz = root.appendingPathComponent("hh-rlhf/harmless-base-test.jsonl.gz")
        guard FileManager.default.fileExists(atPath: gz.path) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "gzip -dc \"$0\"", gz.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var text = ""
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            if let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] {
                text += (obj["chosen"] as? String ?? "") + (obj["rejected"] as? String ?? "")
            }
        }
        return text.isEmpty ? nil : ("hh-rlhf harmless-base-test", text)
    }

    func testEncodingThroughput() throws {
        try TestAssets.require(TestAssets.modelURL, installing: "model")
        let tokenizer = try BPETokenizer(gguf: GGUFFile(contentsOf: TestAssets.modelURL))
        guard let (name, corpus) = try Self.englishCorpus() else {
            throw XCTSkip("no English corpus: install the Debian 'fortunes' package")
        }
        // Encode line by line in chunks (as a data loader would), single-threaded.
        let documents = corpus.components(separatedBy: "\n%\n")
        let bytes = documents.reduce(0) { $0 + $1.utf8.count }
        var best = Double.infinity
        var tokenCount = 0
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            tokenCount = 0
            for d in documents { tokenCount += tokenizer.encode(d).count }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let mbps = Double(bytes) / 1e6 / best
        print(String(format: "tokenizer speed on %@: %.2f MB in %.3f s = %.2f MB/s, %d tokens (%.2f bytes/token)",
                     name, Double(bytes) / 1e6, best, mbps, tokenCount, Double(bytes) / Double(tokenCount)))
        #if DEBUG
        XCTAssertGreaterThan(mbps, 0.1, "encoding is unexpectedly slow even for a debug build")
        #else
        XCTAssertGreaterThan(mbps, 1.0, "encoding must reach 1 MB/s single-threaded")
        #endif

        // Round trip over the whole corpus (bytes without tokens never occur in it).
        var mismatches = 0
        for d in documents.prefix(2000) where tokenizer.decode(tokenizer.encode(d)) != Array(d.utf8) { mismatches += 1 }
        XCTAssertEqual(mismatches, 0, "documents that do not round-trip")
    }
}
