// SmolLM2-135M-Instruct from its GGUF: next-token logits against transformers (run on Dualign's own
// safetensors export, Tests/fixtures/generate_real_model_fixtures.py), greedy decoding, and exports
// that load back to the same logits.

import Foundation
import XCTest
import TestSupport
import Formats
import Models
import Tokenizers

final class RealModelParityTests: MatmulTestCase {
    struct Reference: Decodable {
        struct Case: Decodable { let text: String; let ids: [Int32]; let top_ids: [Int]; let top_logits: [Double]; let logsumexp: Double }
        let loaded_in_transformers: Bool
        let parameters: Int
        let cases: [Case]
        let greedy_france_ids: [Int32]
    }

    /// Absolute tolerance on logits of magnitude ≈ 20 after 30 fp32 blocks computed in a different order.
    static let logitTolerance = 2e-3

    static var model: Transformer?
    static var gguf: GGUFFile?

    func loadModel() throws -> (Transformer, GGUFFile) {
        if let m = Self.model, let g = Self.gguf { return (m, g) }
        try TestAssets.require(TestAssets.modelURL, installing: "model")
        let gguf = try GGUFFile(contentsOf: TestAssets.modelURL)
        let model = try Transformer.load(gguf: gguf, trainable: false)
        Self.model = model
        Self.gguf = gguf
        return (model, gguf)
    }

    func reference() throws -> Reference {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/smollm2_transformers_logits.json")
        return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }

    /// Last-position logits of a prompt.
    func lastLogits(_ model: Transformer, _ ids: [Int32]) -> [Float] {
        let batch = TokenBatch(sequences: [ids])
        model.forward(batch)
        var t = TokenTargets()
        t.positions = [ids.count - 1]; t.targets = [0]; t.sequence = [0]
        _ = model.logProbs(t)
        return Array(model.lastLogits)
    }

    func testLogitsMatchTransformers() throws {
        let (model, _) = try loadModel()
        let ref = try reference()
        XCTAssertTrue(ref.loaded_in_transformers)
        XCTAssertEqual(ref.parameters, model.layout.count, "transformers counted the exported parameters")
        for c in ref.cases {
            let logits = lastLogits(model, c.ids)
            let top = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(5)
            XCTAssertEqual(Array(top), Array(c.top_ids.prefix(5)), "\(c.text): top-5 token ids")
            for (id, want) in zip(c.top_ids, c.top_logits) {
                XCTAssertEqual(Double(logits[id]), want, accuracy: Self.logitTolerance, "\(c.text): logit of token \(id)")
            }
            let m = logits.max()!
            let lse = Double(m) + Foundation.log(logits.reduce(0.0) { $0 + Foundation.exp(Double($1 - m)) })
            XCTAssertEqual(lse, c.logsumexp, accuracy: Self.logitTolerance, "\(c.text): log-sum-exp")
        }
    }

    func testGreedyCapitalOfFrance() throws {
        let (model, gguf) = try loadModel()
        let tokenizer = try BPETokenizer(gguf: gguf, source: gguf.path)
        let prompt = tokenizer.encode("The capital of France is").map(Int32.init)
        XCTAssertEqual(prompt, [504, 3575, 282, 4649, 314])
        let out = model.generate(prompts: [prompt], options: SamplingOptions(greedy: true, maxNewTokens: 8), stopTokens: [])[0]
        XCTAssertEqual(out.tokens, try reference().greedy_france_ids, "greedy continuation equals transformers' generate")
        XCTAssertTrue(tokenizer.decodeString(out.tokens.map(Int.init)).hasPrefix(" Paris."))
    }

    /// safetensors (rotate-half rows) and GGUF (interleaved rows) exports load back to the same logits.
    func testExportsRoundTrip() throws {
        let (model, gguf) = try loadModel()
        let ids: [Int32] = [504, 3575, 282, 4649, 314]
        let expected = lastLogits(model, ids)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-export-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try model.saveHuggingFace(to: dir.appendingPathComponent("hf"))
        let hf = try Transformer.load(huggingFaceDirectory: dir.appendingPathComponent("hf"), trainable: false)
        XCTAssertEqual(hf.config.ropeLayout, .halfSplit)
        let hfLogits = lastLogits(hf, ids)
        XCTAssertLessThanOrEqual(zip(hfLogits, expected).map { abs($0 - $1) }.max()!, 1e-4, "safetensors round trip logits")
        try model.saveGGUF(to: dir.appendingPathComponent("m.gguf"), type: .f16, metadataSource: gguf)
        let back = try GGUFFile(contentsOf: dir.appendingPathComponent("m.gguf"))
        XCTAssertEqual(back.metadataStrings("tokenizer.ggml.tokens")?.count, 49152, "tokenizer metadata travels with the export")
        let f16 = try Transformer.load(gguf: back, trainable: false)
        let f16Logits = lastLogits(f16, ids)
        XCTAssertEqual(f16Logits.indices.max { f16Logits[$0] < f16Logits[$1] }, 7042, "f16 export still predicts ' Paris'")
        XCTAssertLessThanOrEqual(zip(f16Logits, expected).map { abs($0 - $1) }.max()!, 0.1, "f16 rounding of weights moves logits by < 0.1")
    }
}
