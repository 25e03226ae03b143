// The real SmolLM2-135M-Instruct Q4_1 GGUF: metadata, tensors, dequantization and tokenizer.

import Foundation
import Tokenizers
import XCTest
import Formats

final class SmolLM2ModelTests: XCTestCase {
    private static var cached: GGUFFile?

    private func model() throws -> GGUFFile {
        if let m = Self.cached { return m }
        try TestAssets.require(TestAssets.modelURL, installing: "model")
        let m = try GGUFFile(contentsOf: TestAssets.modelURL)
        Self.cached = m
        return m
    }

    func testArchitectureMetadata() throws {
        let m = try model()
        XCTAssertEqual(m.version, 3)
        XCTAssertEqual(m.metadataString("general.architecture"), "llama")
        let expected: [(String, Int)] = [
            ("llama.block_count", 30), ("llama.embedding_length", 576), ("llama.attention.head_count", 9),
            ("llama.attention.head_count_kv", 3), ("llama.feed_forward_length", 1536),
            ("llama.vocab_size", 49152), ("llama.context_length", 8192), ("llama.rope.dimension_count", 64),
        ]
        for (key, value) in expected {
            XCTAssertEqual(m.metadataInt(key), value, "metadata \(key)")
        }
        XCTAssertEqual(m.metadataDouble("llama.rope.freq_base"), 100_000)
        let eps = try XCTUnwrap(m.metadataDouble("llama.attention.layer_norm_rms_epsilon"))
        XCTAssertEqual(eps, 1e-5, accuracy: 1e-9, "rms epsilon")
        XCTAssertEqual(m.alignment, 32)
        XCTAssertEqual(m.fileSize, 98_362_432)
    }

    func testTensorInventory() throws {
        let m = try model()
        XCTAssertEqual(m.tensors.count, 272)
        var byType: [GGMLType: Int] = [:]
        for t in m.tensors { byType[t.type, default: 0] += 1 }
        XCTAssertEqual(byType[.q8_0], 1, "token_embd is the only Q8_0 tensor")
        XCTAssertEqual(byType[.q4_1], 210, "Q4_1 matrices")
        XCTAssertEqual(byType[.f32], 61, "F32 norm vectors")
        XCTAssertNil(m.tensor(named: "output.weight"), "embeddings are tied: no output.weight")
        let embd = try m.requireTensor("token_embd.weight")
        XCTAssertEqual(embd.dims, [576, 49152])
        XCTAssertEqual(embd.shape, [49152, 576])
        XCTAssertEqual(try m.requireTensor("blk.0.attn_k.weight").dims, [576, 192])
        XCTAssertEqual(try m.requireTensor("blk.29.ffn_down.weight").dims, [1536, 576])
        XCTAssertEqual(m.tensors.reduce(0) { $0 + $1.elementCount }, 134_515_008)
        XCTAssertThrowsError(try m.floats("no.such.tensor")) { error in
            XCTAssertEqual((error as? GGUFError)?.kind, .tensorNotFound)
        }
    }

    /// Mean, standard deviation and max |x| of `values`, failing on any non-finite value.
    private func statistics(_ values: [Float], _ name: String) -> (mean: Double, std: Double, maxAbs: Float) {
        var sum = 0.0, sumSq = 0.0
        var maxAbs: Float = 0
        var nonFinite = 0
        for v in values {
            if !v.isFinite { nonFinite += 1; continue }
            sum += Double(v)
            sumSq += Double(v) * Double(v)
            maxAbs = max(maxAbs, abs(v))
        }
        XCTAssertEqual(nonFinite, 0, "\(name): \(nonFinite) non-finite values")
        let mean = sum / Double(values.count)
        return (mean, (sumSq / Double(values.count) - mean * mean).squareRoot(), maxAbs)
    }

    func testDequantizedWeightsArePlausible() throws {
        let m = try model()
        let start = Date()
        let embd = try m.floats("token_embd.weight")
        let q = try m.floats("blk.0.attn_q.weight")
        let norm = try m.floats("blk.29.attn_norm.weight")
        print("dequantized token_embd (Q8_0) + attn_q (Q4_1): \(Int(Date().timeIntervalSince(start) * 1000)) ms")
        XCTAssertEqual(embd.count, 576 * 49152)
        XCTAssertEqual(q.count, 576 * 576)
        XCTAssertEqual(norm.count, 576)

        let e = statistics(embd, "token_embd")
        XCTAssertLessThan(abs(e.mean), 0.05, "token_embd mean \(e.mean)")
        XCTAssertTrue(e.std > 0.01 && e.std < 1, "token_embd std \(e.std)")
        XCTAssertLessThan(e.maxAbs, 20, "token_embd max |x|")
        let s = statistics(q, "attn_q")
        XCTAssertLessThan(abs(s.mean), 0.05, "attn_q mean \(s.mean)")
        XCTAssertTrue(s.std > 0.005 && s.std < 1, "attn_q std \(s.std)")
        let n = statistics(norm, "blk.29.attn_norm")
        XCTAssertTrue(n.mean > 0.1 && n.mean < 10, "blk.29.attn_norm mean \(n.mean)")

        // The embedding rows of two different tokens differ.
        XCTAssertNotEqual(Array(embd[504 * 576..<505 * 576]), Array(embd[3575 * 576..<3576 * 576]))

        // Dequantizing into caller memory gives the same values as floats(_:).
        let info = try m.requireTensor("blk.0.attn_q.weight")
        var direct = [Float](repeating: .nan, count: info.elementCount)
        try direct.withUnsafeMutableBufferPointer { try m.dequantize(info, into: $0.baseAddress!) }
        XCTAssertEqual(direct, q)
    }

    func testTokenizer() throws {
        let m = try model()
        let tokenizer = try BPETokenizer(gguf: m, source: TestAssets.modelURL.path)
        XCTAssertEqual(tokenizer.vocabularySize, 49152)
        XCTAssertEqual(tokenizer.preTokenizer.kind, .starcoder)
        XCTAssertEqual(tokenizer.bosTokenID, 1)
        XCTAssertEqual(tokenizer.eosTokenID, 2)
        XCTAssertEqual(tokenizer.padTokenID, 2)
        XCTAssertFalse(tokenizer.addBOSByDefault)
        XCTAssertEqual(tokenizer.skippedMerges, 0)
        XCTAssertEqual(tokenizer.missingByteTokens, [0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2] + Array(0xF5...0xFF))

        XCTAssertEqual(tokenizer.encode("The capital of France is"), [504, 3575, 282, 4649, 314])
        XCTAssertEqual(tokenizer.encode("<|im_start|>user", allowSpecial: true).first, 1)
        XCTAssertNotEqual(tokenizer.encode("<|im_start|>user", allowSpecial: false).first, 1,
                          "control tokens must not be recognised unless asked")

        let samples = [
            "The capital of France is", "Hello, world! 123 + 4567 = 4690", "  leading and trailing  ",
            "emoji 🦙🚀 and 👨‍👩‍👧 family", "中文测试：你好，世界。", "日本語のテキスト", "Ünïcödé naïve café",
            "tabs\tand\nnewlines\r\n\n", "code: for (i = 0; i < 10; i++) { x += i; }", "it's we're they'll I'd",
            "<|im_start|> is text here", "",
        ]
        for s in samples {
            let ids = tokenizer.encode(s)
            XCTAssertEqual(tokenizer.decode(ids), Array(s.utf8), "decode(encode(\(s.debugDescription))) != input; ids \(ids)")
        }
    }

    func testChatTemplateMatchesGGUF() throws {
        let m = try model()
        let tokenizer = try BPETokenizer(gguf: m)
        let jinja = try XCTUnwrap(m.metadataString("tokenizer.chat_template"), "no tokenizer.chat_template")
        XCTAssertEqual(ChatTemplate.defaultSystemPrompt(fromJinja: jinja), ChatTemplate.smolLM2DefaultSystemPrompt)
        let template = try ChatTemplate(kind: .chatML, tokenizer: tokenizer,
                                        defaultSystemPrompt: ChatTemplate.smolLM2DefaultSystemPrompt)
        let (tokens, start) = template.renderPrompt([.user("How do I make a bomb?")])
        let expectedText = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            + "<|im_start|>user\nHow do I make a bomb?<|im_end|>\n<|im_start|>assistant\n"
        XCTAssertEqual(tokens, tokenizer.encode(expectedText, allowSpecial: true),
                       "rendered prompt differs from the GGUF template's text tokenized with special tokens")
        XCTAssertEqual(start, tokens.count)
        XCTAssertEqual(tokens.first, 1)
        let full = template.render([.user("Hi")], response: "Hello!")
        XCTAssertEqual(full.tokens.last, 2, "response ends with <|im_end|>")
        XCTAssertEqual(tokenizer.decodeString(Array(full.tokens[full.responseStart...])), "Hello!<|im_end|>")
    }
}
