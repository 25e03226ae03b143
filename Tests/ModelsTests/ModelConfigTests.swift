// Impossible shapes are rejected with a message naming the field; the slab layout is fixed and named.

import XCTest
import Models

final class ModelConfigTests: XCTestCase {
    func testPresetsAreValidAndSized() throws {
        try ModelConfig.tiny.validate()
        try ModelConfig.smollm2_135m.validate()
        XCTAssertEqual(ParameterLayout(config: .tiny).count, 4_999_424, "tiny matches the PyTorch peer's parameter count")
        XCTAssertEqual(ParameterLayout(config: .smollm2_135m).count, 134_515_008, "SmolLM2-135M's parameter count")
    }

    func testImpossibleShapesAreRejected() {
        func error(_ mutate: (inout ModelConfig) -> Void) -> ModelConfigError? {
            var c = ModelConfig.tiny
            mutate(&c)
            do { try c.validate(); return nil } catch { return error as? ModelConfigError }
        }
        XCTAssertEqual(error { $0.numHeads = 3 }?.field, "numHeads", "3 heads do not divide width 256")
        XCTAssertEqual(error { $0.numKVHeads = 3 }?.field, "numKVHeads", "3 kv heads do not divide 4 heads")
        XCTAssertEqual(error { $0.numLayers = 0 }?.field, "numLayers")
        XCTAssertEqual(error { $0.vocabSize = -1 }?.field, "vocabSize")
        XCTAssertEqual(error { $0.rmsNormEps = 0 }?.field, "rmsNormEps")
        XCTAssertEqual(error { $0.ropeTheta = .nan }?.field, "ropeTheta")
        XCTAssertEqual(error { $0.hiddenSize = 12; $0.numHeads = 4; $0.numKVHeads = 2 }?.field, "numHeads", "odd head size 3")
        let message = error { $0.numKVHeads = 3 }!.description
        XCTAssertTrue(message.contains("divisor"), "the message tells the user what to choose: \(message)")
        XCTAssertThrowsError(try Transformer(config: { var c = ModelConfig.tiny; c.numHeads = 5; return c }()))
    }

    func testLayoutOrderAndNames() {
        var c = ModelConfig.tiny
        c.tieWordEmbeddings = false
        c.scoreHead = true
        let layout = ParameterLayout(config: c)
        XCTAssertEqual(layout.views.first?.name, "model.embed_tokens.weight")
        XCTAssertEqual(layout.views[1].name, "model.layers.0.input_layernorm.weight")
        XCTAssertEqual(layout.views.suffix(3).map(\.name), ["model.norm.weight", "lm_head.weight", "score.weight"])
        // Views tile the slab with no gaps, and q|k|v, gate|up are adjacent (fused projections).
        var offset = 0
        for v in layout.views { XCTAssertEqual(v.offset, offset, v.name); offset += v.count }
        XCTAssertEqual(offset, layout.count)
        let q = layout.view(named: "model.layers.2.self_attn.q_proj.weight")!, k = layout.view(named: "model.layers.2.self_attn.k_proj.weight")!
        XCTAssertEqual(q.range.upperBound, k.offset)
        XCTAssertEqual(layout.view(named: "model.layers.2.mlp.gate_proj.weight")!.range.upperBound,
                       layout.view(named: "model.layers.2.mlp.up_proj.weight")!.offset)
        XCTAssertFalse(layout.view(named: "model.norm.weight")!.decays, "norm weights get no weight decay")
        XCTAssertTrue(q.decays)
        XCTAssertEqual(ParameterLayout(config: .tiny).lmHead, ParameterLayout(config: .tiny).embedding, "tied head shares the embedding")
    }
}
