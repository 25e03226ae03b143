// Loading Hugging Face tokenizer.json: both merge formats, added tokens, pre-tokenizers, errors.

import Foundation
import Tokenizers
import XCTest

final class TokenizerJSONTests: XCTestCase {
    /// A tokenizer.json for `TestVocabulary.english` with the given pre_tokenizer and merge style.
    private func json(preTokenizer: Any, pairMerges: Bool, extra: [String: Any] = [:]) throws -> Data {
        let v = TestVocabulary.english
        var vocab: [String: Int] = [:]
        var added: [[String: Any]] = []
        for (i, t) in v.tokens.enumerated() {
            if v.types[i] == 1 { vocab[t] = i } else { added.append(["id": i, "content": t, "special": v.types[i] == 3]) }
        }
        let merges: [Any] = pairMerges ? v.merges.map { $0.split(separator: " ").map(String.init) } : v.merges
        var root: [String: Any] = [
            "version": "1.0", "normalizer": NSNull(), "pre_tokenizer": preTokenizer, "added_tokens": added,
            "model": ["type": "BPE", "vocab": vocab, "merges": merges, "byte_fallback": false],
        ]
        for (k, value) in extra { root[k] = value }
        return try JSONSerialization.data(withJSONObject: root)
    }

    private let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true]

    func testLoadsLikeTheArrayVocabulary() throws {
        let reference = try TestVocabulary.english.tokenizer()
        for pairMerges in [false, true] {
            let t = try BPETokenizer(tokenizerJSONData: json(preTokenizer: byteLevel, pairMerges: pairMerges),
                                     bosToken: "<|im_start|>", eosToken: "<|im_end|>")
            XCTAssertEqual(t.tokens, reference.tokens)
            XCTAssertEqual(t.tokenTypes, reference.tokenTypes)
            XCTAssertEqual(t.preTokenizer.kind, .gpt2)
            XCTAssertEqual(t.eosTokenID, reference.eosTokenID)
            XCTAssertEqual(t.bosTokenID, reference.bosTokenID)
            for text in ["Hello the world", "<|im_start|>string 42<tool>", " \n\n x"] {
                XCTAssertEqual(t.encode(text, allowSpecial: true), reference.encode(text, allowSpecial: true), text)
            }
        }
    }

    func testStarcoderSequence() throws {
        let pre: [String: Any] = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel]]
        let t = try BPETokenizer(tokenizerJSONData: json(preTokenizer: pre, pairMerges: false))
        XCTAssertEqual(t.preTokenizer.kind, .starcoder)
        XCTAssertEqual(t.encode("12"), [Int(UInt8(ascii: "1")), Int(UInt8(ascii: "2"))])
    }

    func testFileWithSiblingConfig() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try json(preTokenizer: byteLevel, pairMerges: false).write(to: dir.appendingPathComponent("tokenizer.json"))
        let config: [String: Any] = ["bos_token": ["content": "<|im_start|>"], "eos_token": "<|im_end|>", "add_bos_token": true]
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        let t = try BPETokenizer(tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))
        XCTAssertEqual(t.bosTokenID, TestVocabulary.english.tokens.firstIndex(of: "<|im_start|>"))
        XCTAssertEqual(t.eosTokenID, TestVocabulary.english.tokens.firstIndex(of: "<|im_end|>"))
        XCTAssertTrue(t.addBOSByDefault)
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSON: dir.appendingPathComponent("missing.json"))) { e in
            XCTAssertEqual((e as? TokenizerError)?.kind, .io)
            XCTAssertTrue("\(e)".contains("missing.json"))
        }
    }

    func testUnsupportedConfigurations() throws {
        func assertUnsupported(_ data: Data, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try BPETokenizer(tokenizerJSONData: data, source: "tok.json"), line: line) { e in
                XCTAssertEqual((e as? TokenizerError)?.kind, .unsupported, "\(e)", line: line)
                XCTAssertTrue("\(e)".contains(fragment) && "\(e)".contains("tok.json"), "\(e)", line: line)
            }
        }
        assertUnsupported(try json(preTokenizer: ["type": "Whitespace"], pairMerges: false), "pre_tokenizer")
        assertUnsupported(try json(preTokenizer: ["type": "ByteLevel", "add_prefix_space": true], pairMerges: false), "pre_tokenizer")
        assertUnsupported(try json(preTokenizer: byteLevel, pairMerges: false, extra: ["normalizer": ["type": "NFC"]]), "normalizer")
        assertUnsupported(try JSONSerialization.data(withJSONObject: ["model": ["type": "Unigram"]]), "Unigram")
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSONData: Data("[1,2]".utf8))) { e in
            XCTAssertEqual((e as? TokenizerError)?.kind, .invalidValue)
        }
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSONData: Data("{\"model\":{\"vocab\":{\"a\":-1}}}".utf8)))
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSONData: json(preTokenizer: byteLevel, pairMerges: false), eosToken: "<nope>")) { e in
            XCTAssertTrue("\(e)".contains("<nope>"), "\(e)")
        }
    }
}
