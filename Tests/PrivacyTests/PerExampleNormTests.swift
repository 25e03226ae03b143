// Per-example gradient norms: the ghost-norm oracle of ppo-dp.md §4, ghost and materialised paths against
// a naive per-example reference on padded batches, the ghost rule, the clipped-gradient book-keeping, bias,
// embedding, and LoRA adapter gradients.

import Foundation
import XCTest
import TestSupport
import Tensors
@testable import Privacy

final class PerExampleNormTests: XCTestCase {
    func testGhostNormOracle() {
        let a: [Float] = [1, 1, 1, 0]                   // (T 2, d 2)
        let g: [Float] = [1, -1]                        // (T 2, p 1)
        let ghost = PerExampleLinearNorms.ghostSquaredNorm(inputs: a, outputGradients: g, tokens: 2, inputFeatures: 2, outputFeatures: 1)
        let materialised = PerExampleLinearNorms.materializedSquaredNorm(inputs: a, outputGradients: g, tokens: 2,
                                                                         inputFeatures: 2, outputFeatures: 1)
        XCTAssertEqual(ghost, 1, "⟨AAᵀ, ΓΓᵀ⟩ for A = [[1,1],[1,0]], Γ = [[1],[−1]]")
        XCTAssertEqual(materialised, 1, "‖Γᵀ A‖² = ‖[0, 1]‖²")
        var G = [Float](repeating: 9, count: 2)
        G.withUnsafeMutableBufferPointer {
            PerExampleLinearNorms.materializeGradient(into: $0.baseAddress!, inputs: a, outputGradients: g, tokens: 2,
                                                      inputFeatures: 2, outputFeatures: 1)
        }
        XCTAssertEqual(G, [0, 1], "Γᵀ A")
    }

    func testGhostRule() {
        XCTAssertTrue(PerExampleLinearNorms.prefersGhost(tokens: 16, inputFeatures: 64, outputFeatures: 64), "2·256 < 4096")
        XCTAssertFalse(PerExampleLinearNorms.prefersGhost(tokens: 128, inputFeatures: 64, outputFeatures: 64), "2·16384 ≥ 4096")
        XCTAssertFalse(PerExampleLinearNorms.prefersGhost(tokens: 32, inputFeatures: 64, outputFeatures: 32), "2·1024 = 2048: equal is not less")
    }

    func testPaddedBatchNormsBothPathsMatchReference() {
        // d·p = 96: examples of ≤ 6 tokens take the ghost path (2·36 < 96), longer ones materialise.
        let B = 5, T = 12, d = 8, p = 12
        let lengths = [12, 3, 0, 6, 7]
        var a = randomFloats(B * T * d, seed: 1)                // (B, T, d)
        let g = randomFloats(B * T * p, seed: 2, scale: 0.5)   // (B, T, p)
        for b in 0..<B { for t in lengths[b]..<T { for j in 0..<d { a[(b * T + t) * d + j] = 100 } } }   // padding must not count
        let fast = PerExampleLinearNorms.squaredNorms(inputs: a, outputGradients: g, lengths: lengths, tokens: T, inputFeatures: d, outputFeatures: p)
        let reference = PerExampleLinearNorms.squaredNormsReference(inputs: a, outputGradients: g, lengths: lengths, tokens: T,
                                                                    inputFeatures: d, outputFeatures: p)
        XCTAssertEqual(fast[2], 0, "an empty example has no gradient")
        for b in 0..<B {
            let path = PerExampleLinearNorms.prefersGhost(tokens: lengths[b], inputFeatures: d, outputFeatures: p) ? "ghost" : "materialised"
            assertScalarClose(fast[b], reference[b], "‖G_\(b)‖² (\(path), L \(lengths[b]))", relativeTolerance: 1e-5)
            let ghost = PerExampleLinearNorms.ghostSquaredNorm(inputs: Array(a[(b * T * d)...]), outputGradients: Array(g[(b * T * p)...]),
                                                               tokens: lengths[b], inputFeatures: d, outputFeatures: p)
            if lengths[b] > 0 { assertScalarClose(ghost, reference[b], "ghost ‖G_\(b)‖² forced", relativeTolerance: 1e-5) }
        }
    }

    func testClippedGradientBookkeepingMatchesMaterialisedSum() {
        let B = 4, T = 5, d = 6, p = 3
        let lengths = [5, 2, 4, 1]
        let factors = [1.0, 0.3, 0.75, 0.01]
        let a = randomFloats(B * T * d, seed: 3), g = randomFloats(B * T * p, seed: 4)
        var fast = [Float](repeating: 0.5, count: p * d)         // (p, d)
        fast.withUnsafeMutableBufferPointer {
            PerExampleLinearNorms.accumulateClippedGradient(into: $0.baseAddress!, inputs: a, outputGradients: g, lengths: lengths,
                                                            factors: factors, tokens: T, inputFeatures: d, outputFeatures: p)
        }
        var expected = [Float](repeating: 0.5, count: p * d)
        var G = [Float](repeating: 0, count: p * d)
        for b in 0..<B {
            G.withUnsafeMutableBufferPointer {
                PerExampleLinearNorms.materializeGradient(into: $0.baseAddress!, inputs: Array(a[(b * T * d)...]),
                                                          outputGradients: Array(g[(b * T * p)...]), tokens: lengths[b],
                                                          inputFeatures: d, outputFeatures: p)
            }
            for i in 0..<p * d { expected[i] += Float(factors[b]) * G[i] }
        }
        assertTensorClose(fast, expected, "Σ_b c_b Γ_bᵀ A_b", relativeTolerance: 1e-5)
    }

    func testBiasNorms() {
        let g: [Float] = [1, 2, 3, 4, 100, 100,                 // example 0: rows (1,2), (3,4), padding
                          -1, 1, 5, 5, 0, 0]                     // example 1: rows (−1,1), (5,5), (0,0)
        let norms = PerExampleLinearNorms.biasSquaredNorms(outputGradients: g, lengths: [2, 3], tokens: 3, outputFeatures: 2)
        let expected: [Double] = [52, 52]                       // ‖(4, 6)‖² for both examples
        XCTAssertEqual(norms, expected, "‖Σ_t γ_t‖²")
    }

    func testEmbeddingNormsSumRepeatedTokensFirst() {
        let B = 3, T = 6, p = 4, V = 10
        let ids: [Int32] = [1, 2, 1, 1, 9, 0,   3, 3, 3, 3, 3, 3,   0, 7, 2, 5, 5, 0]
        let lengths = [5, 6, 3]
        let g = randomFloats(B * T * p, seed: 8)
        let fast = PerExampleEmbeddingNorms.squaredNorms(tokenIDs: ids, outputGradients: g, lengths: lengths, tokens: T, features: p)
        let reference = PerExampleEmbeddingNorms.squaredNormsReference(tokenIDs: ids, outputGradients: g, lengths: lengths,
                                                                       tokens: T, features: p, vocabulary: V)
        for b in 0..<B { assertScalarClose(fast[b], reference[b], "embedding ‖G_\(b)‖²", relativeTolerance: 1e-12) }
        // Example 1 repeats one token: its gradient is one row, the sum of all six output gradients.
        var row = [Double](repeating: 0, count: p)
        for t in 0..<T { for i in 0..<p { row[i] += Double(g[(T + t) * p + i]) } }
        assertScalarClose(fast[1], row.reduce(0) { $0 + $1 * $1 }, "one repeated token: ‖Σ_t γ_t‖²", relativeTolerance: 1e-12)
    }

    func testLoRAPerExampleGradientsMatchReferenceAndSumToBatchGradient() {
        let B = 3, T = 7, d = 10, p = 6, r = 2
        let lengths = [7, 4, 0]
        let x = randomFloats(B * T * d, seed: 21), g = randomFloats(B * T * p, seed: 22)
        let loraA = randomFloats(r * d, seed: 23), loraB = randomFloats(p * r, seed: 24)
        let scale: Float = 16.0 / 2                                // alpha 16, rank 2
        var dA = [Float](repeating: 7, count: B * r * d), dB = [Float](repeating: 7, count: B * p * r)
        var refA = dA, refB = dB
        let norms = LoRAPerExampleGradients.compute(gradA: &dA, gradB: &dB, inputs: x, outputGradients: g, lengths: lengths,
                                                    loraA: loraA, loraB: loraB, scale: scale, tokens: T, inputFeatures: d,
                                                    outputFeatures: p, rank: r)
        let refNorms = LoRAPerExampleGradients.computeReference(gradA: &refA, gradB: &refB, inputs: x, outputGradients: g,
                                                                lengths: lengths, loraA: loraA, loraB: loraB, scale: scale,
                                                                tokens: T, inputFeatures: d, outputFeatures: p, rank: r)
        assertTensorClose(dA, refA, "per-example dA (B, r, d)", relativeTolerance: 1e-5)
        assertTensorClose(dB, refB, "per-example dB (B, p, r)", relativeTolerance: 1e-5)
        for b in 0..<B { assertScalarClose(norms[b] + 1e-30, refNorms[b] + 1e-30, "‖(dA, dB)_\(b)‖²", relativeTolerance: 1e-5) }
        XCTAssertEqual(norms[2], 0, "an empty example has no adapter gradient")

        // The per-example gradients sum to the gradient of the whole batch's valid rows (one long example).
        let rows = lengths.reduce(0, +)
        var xAll: [Float] = [], gAll: [Float] = []
        for b in 0..<B {
            xAll += x[(b * T * d)..<(b * T * d + lengths[b] * d)]
            gAll += g[(b * T * p)..<(b * T * p + lengths[b] * p)]
        }
        var batchA = [Float](repeating: 0, count: r * d), batchB = [Float](repeating: 0, count: p * r)
        LoRAPerExampleGradients.computeReference(gradA: &batchA, gradB: &batchB, inputs: xAll, outputGradients: gAll, lengths: [rows],
                                                 loraA: loraA, loraB: loraB, scale: scale, tokens: rows, inputFeatures: d,
                                                 outputFeatures: p, rank: r)
        let sumA = (0..<r * d).map { i in (0..<B).reduce(Float(0)) { $0 + dA[$1 * r * d + i] } }
        let sumB = (0..<p * r).map { i in (0..<B).reduce(Float(0)) { $0 + dB[$1 * p * r + i] } }
        assertTensorClose(sumA, batchA, "Σ_b dA_b = batch dA", relativeTolerance: 1e-5)
        assertTensorClose(sumB, batchB, "Σ_b dB_b = batch dB", relativeTolerance: 1e-5)
    }
}
