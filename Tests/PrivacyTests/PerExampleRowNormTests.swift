// Per-example norms of examples made of several row runs (a DPO pair's chosen and rejected sequences):
// linear layers (ghost and materialised, against the Double reference and against the concatenated rows),
// RMSNorm weights, the embedding grouped by id, and the embedding tied to the LM head (the cross term),
// each against a naive reference.

import Foundation
import XCTest
import TestSupport
import Tensors
@testable import Privacy

final class PerExampleRowNormTests: XCTestCase {
    /// Two runs of one example inside a 20-row matrix, with other rows between them that must not count.
    let rows: ExampleRows = [2..<7, 11..<19]

    func testLinearNormOverRowRunsBothPathsMatchReference() {
        let R = 20, d = 6, p = 5
        let a = randomFloats(R * d, seed: 1), g = randomFloats(R * p, seed: 2)
        let reference = PerExampleRowNorms.linearSquaredNormReference(inputs: a, outputGradients: g, rows: rows, inputFeatures: d, outputFeatures: p)
        for method in PerExampleNormMethod.allCases {
            let got = PerExampleRowNorms.linearSquaredNorm(inputs: a, outputGradients: g, rows: rows, inputFeatures: d, outputFeatures: p,
                                                           method: method)
            assertScalarClose(got, reference, "linear ‖G‖² over runs (\(method))", relativeTolerance: 1e-5)
        }
        // The same rows gathered into one contiguous example give the same norm (the runs' cross terms count).
        let picked = rows.flatMap { $0 }
        let ca = picked.flatMap { Array(a[($0 * d)..<($0 * d + d)]) }, cg = picked.flatMap { Array(g[($0 * p)..<($0 * p + p)]) }
        let contiguous = PerExampleLinearNorms.ghostSquaredNorm(inputs: ca, outputGradients: cg, tokens: picked.count,
                                                                inputFeatures: d, outputFeatures: p)
        assertScalarClose(contiguous, reference, "gathered rows vs runs", relativeTolerance: 1e-5)
        // Two runs are not the sum of two separate examples (that would drop the cross terms).
        let separate = rows.map { PerExampleRowNorms.linearSquaredNormReference(inputs: a, outputGradients: g, rows: [$0], inputFeatures: d,
                                                                                outputFeatures: p) }.reduce(0, +)
        XCTAssertGreaterThan(abs(separate - reference), 1e-3 * reference, "the test has cross terms between runs")
    }

    func testEmptyExampleHasNoGradient() {
        let a = randomFloats(12, seed: 1), g = randomFloats(12, seed: 2)
        XCTAssertEqual(PerExampleRowNorms.linearSquaredNorm(inputs: a, outputGradients: g, rows: [], inputFeatures: 3, outputFeatures: 3), 0)
        XCTAssertEqual(PerExampleRowNorms.linearSquaredNorm(inputs: a, outputGradients: g, rows: [1..<1], inputFeatures: 3, outputFeatures: 3,
                                                            method: .ghost), 0)
    }

    func testRMSNormWeightNorm() {
        let R = 20, C = 7
        let x = randomFloats(R * C, seed: 3), dy = randomFloats(R * C, seed: 4), rstd = randomFloats(R, seed: 5).map { 1 + abs($0) }
        var g = [Double](repeating: 0, count: C)
        for r in rows { for t in r { for c in 0..<C { g[c] += Double(dy[t * C + c]) * Double(x[t * C + c]) * Double(rstd[t]) } } }
        let got = PerExampleRowNorms.rmsNormSquaredNorm(inputs: x, rstd: rstd, outputGradients: dy, rows: rows, channels: C)
        assertScalarClose(got, g.reduce(0) { $0 + $1 * $1 }, "RMSNorm weight ‖g‖²", relativeTolerance: 1e-12)
    }

    func testEmbeddingNormGroupsRepeatedIds() {
        let R = 20, C = 4, V = 6
        let ids: [Int32] = (0..<R).map { Int32(($0 * 7) % 5) }        // ids repeat inside and across the runs
        let dx = randomFloats(R * C, seed: 6)
        let got = ids.withUnsafeBufferPointer {
            PerExampleRowNorms.embeddingSquaredNorm(tokens: $0.baseAddress!, outputGradients: dx, rows: rows, features: C)
        }
        // The tied reference with no head rows is the plain embedding gradient.
        let reference = ids.withUnsafeBufferPointer {
            PerExampleRowNorms.tiedEmbeddingSquaredNormReference(headInputs: dx, headGradients: dx, headRows: [], tokens: $0.baseAddress!,
                                                                 embeddingGradients: dx, tokenRows: rows, vocabulary: V, features: C)
        }
        assertScalarClose(got, reference, "embedding ‖G‖² grouped by id", relativeTolerance: 1e-12)
    }

    func testTiedEmbeddingNormIncludesTheCrossTerm() {
        let C = 5, V = 9, R = 20, H = 10
        let headRows: ExampleRows = [1..<4, 6..<9]                    // 6 LM-head positions of the example
        let h = randomFloats(H * C, seed: 7), D = randomFloats(H * V, seed: 8)
        var ids: [Int32] = (0..<R).map { Int32(($0 * 5) % V) }
        ids[3] = ids[12]                                               // a repeat across the runs
        let dx = randomFloats(R * C, seed: 9)
        let reference = ids.withUnsafeBufferPointer {
            PerExampleRowNorms.tiedEmbeddingSquaredNormReference(headInputs: h, headGradients: D, headRows: headRows, tokens: $0.baseAddress!,
                                                                 embeddingGradients: dx, tokenRows: rows, vocabulary: V, features: C)
        }
        for method in PerExampleNormMethod.allCases {
            let got = ids.withUnsafeBufferPointer {
                PerExampleRowNorms.tiedEmbeddingSquaredNorm(headInputs: h, headGradients: D, headRows: headRows, tokens: $0.baseAddress!,
                                                            embeddingGradients: dx, tokenRows: rows, vocabulary: V, features: C, method: method)
            }
            assertScalarClose(got, reference, "tied ‖G‖² (\(method))", relativeTolerance: 1e-5)
        }
        // Without the cross term (head and embedding normed apart, as two tensors) the norm is wrong.
        let apart = PerExampleRowNorms.linearSquaredNormReference(inputs: h, outputGradients: D, rows: headRows, inputFeatures: C, outputFeatures: V)
            + ids.withUnsafeBufferPointer { PerExampleRowNorms.embeddingSquaredNorm(tokens: $0.baseAddress!, outputGradients: dx, rows: rows, features: C) }
        XCTAssertGreaterThan(abs(apart - reference), 1e-3 * reference, "the tied norm differs from the two uses normed apart")
    }
}
