// BPE encoding: merges by rank against a naive reference, special tokens, errors, thread safety.

import Foundation
import Tokenizers
import XCTest

final class BPETokenizerTests: XCTestCase {
    func testMergesByRank() throws {
        let v = TestVocabulary.english
        let t = try v.tokenizer()
        func ids(_ pieces: [String]) -> [Int] { pieces.map { v.tokens.firstIndex(of: $0)! } }
        XCTAssertEqual(t.encode("Hello the world"), ids(["Hello", "Ġthe", "Ġworld"]))
        XCTAssertEqual(t.encode(" string in"), ids(["Ġstring", "Ġ", "in"]))
        XCTAssertEqual(t.encode("wor"), ids(["w", "or"]), "no 'Ġ' prefix: 'Ġwor' cannot apply")
        XCTAssertEqual(t.encode("\n\n\n"), ids(["ĊĊ", "Ċ"]), "leftmost pair merges first")
        XCTAssertEqual(t.encode(""), [])
        XCTAssertEqual(t.skippedMerges, 0)
        XCTAssertEqual(t.missingByteTokens, [])
    }

    func testMatchesNaiveReferenceOnRandomVocabularies() throws {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = Array("abcd".utf8)
        for trial in 0..<20 {
            // Random well-formed merges over "abcd": every merge creates a new token.
            var known = alphabet.map { String(UnicodeScalar($0)) }
            var rules: [String] = []
            while rules.count < 40 {
                let l = known.randomElement(using: &rng)!, r = known.randomElement(using: &rng)!
                guard (l + r).count <= 8, !known.contains(l + r) else { continue }
                rules.append(l + " " + r)
                known.append(l + r)
            }
            let v = TestVocabulary(merges: rules)
            let t = try v.tokenizer()
            var ranks: [String: Int] = [:]
            for (i, rule) in rules.enumerated() where ranks[rule] == nil { ranks[rule] = i }
            for _ in 0..<50 {
                let n = Int.random(in: 1...(trial < 2 ? 3000 : 40), using: &rng) // long pieces use the heap deeply
                let word = (0..<n).map { _ in alphabet.randomElement(using: &rng)! }
                let expected = referenceBPE(word, ranks: ranks).map { v.tokens.firstIndex(of: $0)! }
                let text = String(decoding: word, as: UTF8.self)
                XCTAssertEqual(t.encode(text), expected, "trial \(trial): BPE of \(text.prefix(60)) differs from the reference")
                XCTAssertEqual(t.encode(text), expected, "second (cached) encoding differs")
            }
        }
    }

    func testSpecialTokensOnlyWhenAllowed() throws {
        let v = TestVocabulary.english
        let t = try v.tokenizer()
        let start = v.tokens.firstIndex(of: "<|im_start|>")!, end = v.tokens.firstIndex(of: "<|im_end|>")!
        let tool = v.tokens.firstIndex(of: "<tool>")!
        let text = "<|im_start|>the<|im_end|>"
        let allowed = t.encode(text, allowSpecial: true)
        XCTAssertEqual(allowed.first, start)
        XCTAssertEqual(allowed.last, end)
        XCTAssertEqual(Array(allowed[1..<allowed.count - 1]), t.encode("the"))
        let plain = t.encode(text, allowSpecial: false)
        XCTAssertFalse(plain.contains(start) || plain.contains(end), "control tokens recognised without allowSpecial: \(plain)")
        XCTAssertEqual(t.decode(plain), Array(text.utf8))
        XCTAssertEqual(t.decode(allowed), Array(text.utf8))
        XCTAssertEqual(t.decode(allowed, skipSpecial: true), Array("the".utf8))
        // User-defined tokens are always recognised.
        XCTAssertEqual(t.encode("a<tool>b"), [Int(UInt8(ascii: "a")), tool, Int(UInt8(ascii: "b"))])
        // A partial special string is plain text.
        XCTAssertFalse(t.encode("<|im_sta", allowSpecial: true).contains(start))
        XCTAssertTrue(t.isSpecial(start))
        XCTAssertFalse(t.isSpecial(tool))
        XCTAssertFalse(t.isSpecial(-1))
    }

    func testBOSHandling() throws {
        let v = TestVocabulary.english
        let bos = v.tokens.firstIndex(of: "<|im_start|>")!
        XCTAssertEqual(try v.tokenizer(addBOS: true).encode("a"), [bos, 97])
        XCTAssertEqual(try v.tokenizer(addBOS: true).encode("a", addBOS: false), [97])
        XCTAssertEqual(try v.tokenizer(addBOS: false).encode("a"), [97])
        XCTAssertEqual(try v.tokenizer(addBOS: false).encode("a", addBOS: true), [bos, 97])
    }

    func testDecodeOutOfRangeIsVisible() throws {
        let t = try TestVocabulary.english.tokenizer()
        XCTAssertEqual(t.decode([97, -5, 1_000_000, 98]), [97, 0xEF, 0xBF, 0xBD, 0xEF, 0xBF, 0xBD, 98])
    }

    func testConstructionErrors() {
        let v = TestVocabulary.english
        XCTAssertThrowsError(try BPETokenizer(tokens: v.tokens, merges: ["nospace"], preTokenizer: .gpt2)) { e in
            XCTAssertEqual((e as? TokenizerError)?.kind, .invalidValue)
            XCTAssertTrue("\(e)".contains("merge 0"), "\(e)")
        }
        XCTAssertThrowsError(try BPETokenizer(tokens: v.tokens, merges: [], tokenTypes: [1, 2], preTokenizer: .gpt2))
        XCTAssertThrowsError(try BPETokenizer(tokens: v.tokens, merges: [], preTokenizer: .gpt2, eosTokenID: v.tokens.count)) { e in
            XCTAssertTrue("\(e)".contains("eos token id"), "\(e)")
        }
        XCTAssertThrowsError(try BPETokenizer(tokens: ["a", "b"], merges: [], preTokenizer: .gpt2)) { e in
            XCTAssertTrue("\(e)".contains("not a byte-level BPE vocabulary"), "\(e)")
        }
        XCTAssertThrowsError(try BPETokenizer(tokens: [], merges: [], preTokenizer: .gpt2))
        // Merges whose parts are not tokens are skipped and counted.
        XCTAssertEqual(try BPETokenizer(tokens: v.tokens, merges: ["x yz", "Ġ t"], preTokenizer: .gpt2).skippedMerges, 1)
    }

    func testConcurrentEncodingIsConsistent() throws {
        let t = try TestVocabulary.english.tokenizer()
        let texts = (0..<64).map { "Hello the world \($0) string in the \($0 * 7) wor" }
        let expected = texts.map { t.encode($0) }
        var results = [[Int]](repeating: [], count: texts.count * 8)
        results.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            DispatchQueue.concurrentPerform(iterations: texts.count * 8) { i in
                (base + i).pointee = t.encode(texts[i % texts.count])
            }
        }
        for i in 0..<results.count {
            XCTAssertEqual(results[i], expected[i % texts.count], "concurrent encoding \(i) differs")
        }
    }
}
