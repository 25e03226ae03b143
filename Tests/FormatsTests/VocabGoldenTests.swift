// llama.cpp's tokenizer golden tests (ggml-vocab-*.gguf + .inp/.out) against our BPE tokenizer.

import Foundation
import Tokenizers
import XCTest
import Formats

final class VocabGoldenTests: XCTestCase {
    /// Loads the vocabulary and runs every case of its `.inp`/`.out` pair; returns (passed, total).
    @discardableResult
    private func runGolden(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> (Int, Int) {
        let url = TestAssets.vocabURL(name)
        try TestAssets.require(url, installing: "vocab")
        let gguf = try GGUFFile(contentsOf: url)
        let tokenizer = try BPETokenizer(gguf: gguf, source: url.path)
        XCTAssertEqual(tokenizer.skippedMerges, 0, "\(name): merges not applicable to the vocabulary")

        let inp = try String(decoding: Data(contentsOf: URL(fileURLWithPath: url.path + ".inp")), as: UTF8.self)
        let out = try String(decoding: Data(contentsOf: URL(fileURLWithPath: url.path + ".out")), as: UTF8.self)
        // The .inp holds the cases, each followed by "\n__ggml_vocab_test__\n"; the .out one line of ids per case.
        var inputs = inp.components(separatedBy: "\n__ggml_vocab_test__\n")
        if inputs.last == "" { inputs.removeLast() }
        var outputs = out.components(separatedBy: "\n")
        if outputs.last == "" { outputs.removeLast() }
        XCTAssertEqual(inputs.count, outputs.count, "\(name): \(inputs.count) inputs but \(outputs.count) output lines", file: file, line: line)
        XCTAssertGreaterThan(inputs.count, 30, "\(name): too few cases parsed", file: file, line: line)

        var passed = 0
        for (i, (text, idLine)) in zip(inputs, outputs).enumerated() {
            let expected = idLine.split(separator: " ").compactMap { Int($0) }
            let got = tokenizer.encode(text, allowSpecial: false, addBOS: false)
            if got == expected {
                passed += 1
            } else {
                XCTFail("\(name) case \(i) \(text.debugDescription): expected \(expected), got \(got)", file: file, line: line)
            }
            // Decoding the ids must give back the exact input bytes.
            XCTAssertEqual(tokenizer.decode(got), Array(text.utf8), "\(name) case \(i): decode(encode(x)) != x", file: file, line: line)
        }
        print("llama.cpp golden \(name): \(passed)/\(inputs.count) cases passed")
        return (passed, inputs.count)
    }

    func testGPT2Golden() throws {
        let (passed, total) = try runGolden("gpt-2")
        XCTAssertEqual(passed, total)
    }

    func testStarcoderGolden() throws {
        let (passed, total) = try runGolden("starcoder")
        XCTAssertEqual(passed, total)
    }
}
