// Per-example gradient norms and the clipped gradient sum of DP-SGD on a real (tiny) transformer, against
// the naive loop: one backward per example with every other example's output gradients zeroed, its whole
// gradient read from the slab, its norm and min(1, C/(‖g‖ + 1e-6)) in Double, the clipped sum in Double.
// Full fine-tuning (ghost, materialised and automatic linear norms; tied and untied embeddings; a score
// head; value heads read at every response token, as PPO's critics; padded rows; examples of two rows as DPO
// pairs) and LoRA (book-keeping, with a score head, with value heads and with adapter dropout) both, to 1e-5.

import Foundation
import XCTest
import Models
import Privacy
import Tensors
import TestSupport
@testable import Training

final class PerExampleGradientTests: XCTestCase {
    static let tolerance = 1e-5

    func model(tied: Bool, scoreHead: Bool, lora: Int = 0, dropout: Double = 0, valueHeads: Int = 0) throws -> Transformer {
        var config = ModelConfig(vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKVHeads: 2,
                                 maxPositions: 32, tieWordEmbeddings: tied, scoreHead: scoreHead)
        config.valueHeads = valueHeads
        let m = try Transformer(config: config, trainable: true)
        m.initializeRandomly(seed: 17, std: 0.3)
        // Non-unit norm weights, so the RMSNorm weight gradients are not all alike.
        var rng = SplitMix64(seed: 3)
        for v in m.layout.views where v.shape.count == 1 {
            for i in 0..<v.count { m.parameters.pointer[v.offset + i] = 1 + 0.3 * rng.nextGaussian() }
        }
        if lora > 0 {
            try m.attachAdapters(LoRASettings(rank: lora, alpha: Double(2 * lora), dropout: dropout, seed: 9))
            // PEFT starts B at zero (dA would be zero): give every adapter value a random start instead.
            let slab = m.adapters!.slab
            for i in 0..<slab.count { slab.values.pointer[i] = 0.2 * rng.nextGaussian() }
        }
        return m
    }

    /// Three DPO-like examples of two rows each (rows 0..<3 chosen, 3..<6 rejected), padded to the longest.
    func batch() -> MicroBatch {
        var rng = SplitMix64(seed: 5)
        let lengths = [9, 5, 12, 7, 11, 4], starts = [3, 2, 4, 3, 4, 2]
        let rows = lengths.map { n in (0..<n).map { _ in Int32(rng.uniform(below: 40)) } }
        return MicroBatch(examples: [10, 11, 12], batch: TokenBatch(sequences: rows, padToken: 0), responseStarts: starts,
                          rowExample: [0, 1, 2, 0, 1, 2])
    }

    typealias OutputGradients = (dLogProbs: [Float], dScores: [Float]?, dValues: [Float]?)

    /// Random ∂ℓ/∂log-probs (N), ∂ℓ/∂scores (B) and ∂ℓ/∂values (N, H) for the batch.
    func outputGradients(_ b: MicroBatch, scores: Bool, valueHeads H: Int = 0) -> OutputGradients {
        let N = TokenTargets(responsesOf: b.batch, responseStarts: b.responseStarts).count
        return (randomFloats(N, seed: 21, scale: 1.5), scores ? randomFloats(b.batch.batchSize, seed: 22, scale: 2) : nil,
                H > 0 ? randomFloats(N * H, seed: 23, scale: 1) : nil)
    }

    func forward(_ m: Transformer, _ b: MicroBatch, dropout: Bool) {
        m.adapterDropoutSeeds = dropout ? (0..<b.batch.batchSize).map { UInt64($0) &* 977 &+ 5 } : nil
        m.forward(b.batch)
        let targets = TokenTargets(responsesOf: b.batch, responseStarts: b.responseStarts)
        _ = m.logProbs(targets)
        if m.config.scoreHead { _ = m.scores() }
        if m.config.valueHeads > 0 { _ = m.values(targets) }
    }

    /// The naive loop: each example's whole gradient from its own backward pass.                 // E × (P)
    func naiveGradients(_ m: Transformer, _ b: MicroBatch, _ d: OutputGradients, dropout: Bool) -> [[Double]] {
        let targets = TokenTargets(responsesOf: b.batch, responseStarts: b.responseStarts), H = m.config.valueHeads
        return b.examples.indices.map { e in
            m.zeroGradients()
            forward(m, b, dropout: dropout)
            let mine = d.dLogProbs.enumerated().map { n, g in b.rowExample[targets.sequence[n]] == e ? g : 0 }
            let scores = d.dScores.map { s in s.enumerated().map { r, g in b.rowExample[r] == e ? g : 0 } }
            let values = d.dValues.map { v in v.enumerated().map { i, g in b.rowExample[targets.sequence[i / H]] == e ? g : 0 } }
            m.backward(dLogProbs: mine, dScores: scores, dValues: values)
            return m.trainable.gradients.array.map(Double.init)
        }
    }

    func check(_ m: Transformer, scores: Bool, method: PerExampleNormMethod = .automatic, dropout: Bool = false, _ what: String) {
        let b = batch(), d = outputGradients(b, scores: scores, valueHeads: m.config.valueHeads)
        let naive = naiveGradients(m, b, d, dropout: dropout)
        let norms = naive.map { $0.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        // A clipping norm between the smallest and the largest example norm: some are clipped, some are not.
        let C = (norms.min()! + norms.max()!) / 2
        let factors = norms.map { PerExampleClipping.clipFactor(norm: $0, maxNorm: C) }
        XCTAssertTrue(factors.contains(1) && factors.contains { $0 < 1 }, "\(what): the test clips some examples and not others (\(factors))")
        var expected = [Double](repeating: 0, count: naive[0].count)
        for (g, c) in zip(naive, factors) { for i in g.indices { expected[i] += c * g[i] } }

        let engine = ClippedGradientSum(model: m, maxNorm: C)
        engine.normMethod = method
        m.zeroGradients()
        forward(m, b, dropout: dropout)
        let got = engine.accumulate(b, dLogProbs: d.dLogProbs, dScores: d.dScores, dValues: d.dValues)
        for e in norms.indices { assertScalarClose(got[e], norms[e], "\(what): ‖∇ℓ_\(e)‖", relativeTolerance: Self.tolerance) }
        assertTensorClose(m.trainable.gradients.array, expected.map(Float.init), "\(what): Σ c_i ∇ℓ_i", relativeTolerance: Self.tolerance)
        m.adapterDropoutSeeds = nil
    }

    func testFullFineTuningTiedWithScoreHead() throws {
        for method in PerExampleNormMethod.allCases {
            try check(model(tied: true, scoreHead: true), scores: true, method: method, "full, tied, score head, \(method)")
        }
    }

    func testFullFineTuningUntiedWithScoreHead() throws {
        for method in PerExampleNormMethod.allCases {
            try check(model(tied: false, scoreHead: true), scores: true, method: method, "full, untied, score head, \(method)")
        }
    }

    func testFullFineTuningLanguageModelOnly() throws {
        try check(model(tied: true, scoreHead: false), scores: false, method: .ghost, "full, tied, LM head only")
        try check(model(tied: false, scoreHead: false), scores: false, method: .materialized, "full, untied, LM head only")
    }

    func testFullFineTuningScoreOnlyWithTiedEmbedding() throws {
        // A reward model: no LM-head gradient, so the tied table's gradient is the embedding use alone.
        let m = try model(tied: true, scoreHead: true)
        let b = batch(), d = outputGradients(b, scores: true)
        let naive = naiveGradients(m, b, ([Float](repeating: 0, count: d.dLogProbs.count), d.dScores, nil), dropout: false)
        let engine = ClippedGradientSum(model: m, maxNorm: 1e9)
        m.zeroGradients()
        m.forward(b.batch)
        _ = m.scores()
        let got = engine.accumulate(b, dLogProbs: nil, dScores: d.dScores)
        for e in naive.indices {
            assertScalarClose(got[e], naive[e].reduce(0) { $0 + $1 * $1 }.squareRoot(), "score only: ‖∇ℓ_\(e)‖", relativeTolerance: Self.tolerance)
        }
    }

    /// PPO's policy with two critics on its trunk: the policy and value losses' gradients are clipped jointly.
    func testFullFineTuningWithValueHeads() throws {
        for method in PerExampleNormMethod.allCases {
            try check(model(tied: true, scoreHead: false, valueHeads: 2), scores: false, method: method, "full, tied, 2 value heads, \(method)")
        }
    }

    func testLoRAWithValueHeads() throws {
        let m = try model(tied: false, scoreHead: false, lora: 2, valueHeads: 2)
        XCTAssertNotNil(m.adapters!.valueOffset, "the value heads train beside the adapters")
        check(m, scores: false, "LoRA r=2, 2 value heads")
    }

    func testLoRAWithScoreHead() throws {
        let m = try model(tied: true, scoreHead: true, lora: 3)
        XCTAssertNotNil(m.adapters!.scoreOffset, "the score head trains beside the adapters")
        check(m, scores: true, "LoRA r=3, score head")
    }

    func testLoRALanguageModelWithDropout() throws {
        check(try model(tied: false, scoreHead: false, lora: 2, dropout: 0.25), scores: false, dropout: true, "LoRA r=2, dropout 0.25")
    }

    /// Single-row examples (SFT): the per-row runs are the examples themselves.
    func testOneRowExamples() throws {
        let m = try model(tied: true, scoreHead: false)
        var rng = SplitMix64(seed: 8)
        let rows = [6, 10, 3, 8].map { n in (0..<n).map { _ in Int32(rng.uniform(below: 40)) } }
        let b = MicroBatch(examples: [0, 1, 2, 3], batch: TokenBatch(sequences: rows), responseStarts: [2, 3, 1, 4], rowExample: [0, 1, 2, 3])
        let N = TokenTargets(responsesOf: b.batch, responseStarts: b.responseStarts).count
        let d: OutputGradients = (randomFloats(N, seed: 4), nil, nil)
        let naive = naiveGradients(m, b, d, dropout: false)
        let engine = ClippedGradientSum(model: m, maxNorm: 1e9)
        m.zeroGradients()
        forward(m, b, dropout: false)
        let got = engine.accumulate(b, dLogProbs: d.dLogProbs, dScores: nil)
        var sum = [Double](repeating: 0, count: naive[0].count)
        for g in naive { for i in g.indices { sum[i] += g[i] } }
        for e in naive.indices {
            assertScalarClose(got[e], naive[e].reduce(0) { $0 + $1 * $1 }.squareRoot(), "one-row ‖∇ℓ_\(e)‖", relativeTolerance: Self.tolerance)
        }
        assertTensorClose(m.trainable.gradients.array, sum.map(Float.init), "unclipped sum (C large) = batch gradient", relativeTolerance: Self.tolerance)
    }
}
