// The per-example gradient norms of full fine-tuning, from one backward pass in `.norms` mode: the model
// reports each trainable tensor's inputs and output gradients (PerExampleNormObserver) and this adds every
// example's squared norm of that tensor's gradient, so the joint norm over all parameters is the square
// root of the sum. An example is a set of batch rows (MicroBatch.rowExample); its rows of each (R, ·)
// matrix are the valid positions of its sequences, whose gradients are zero past each sequence's length.
//
// Legend: B rows, T time, R = B·T, E examples, N LM-head positions, C width, V vocabulary.

import Foundation
import Models
import Privacy
import Tensors

/// Squared per-example norms over every trainable tensor of a full model (linear layers by ghost norms or
/// materialised, RMSNorm weights, the score head, the embedding, tied or not to the LM head).
public final class GhostNormPass: PerExampleNormObserver {
    /// Ghost or materialised linear norms (automatic: the 2L² < p·d rule).
    public var method: PerExampleNormMethod
    /// Σ over the tensors reported so far of ‖∇_tensor ℓ_e‖², per example.              // (E)
    public private(set) var squaredNorms: [Double] = []
    private let scratch = NormScratch()
    /// Each example's token rows: one run b·T ..< b·T + length_b per sequence b of the example.
    private var tokenRows: [ExampleRows] = []
    /// Each example's batch rows.
    private var rowsOfExample: [[Int]] = []
    /// The LM head's inputs (a copy: the model reuses their buffer in its backward) and ∂L/∂logits (left in
    /// place until the pass ends), kept for the embedding when they are one table.
    private var tiedHead: (inputs: FloatBuffer, gradients: ConstFloatPtr, rows: [ExampleRows])?

    public init(method: PerExampleNormMethod = .automatic) { self.method = method }

    /// Seconds spent in this observer's arithmetic since the caller last set it (profiling).
    public var seconds = 0.0
    private func timed(_ body: () -> Void) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    /// Bytes of per-example working memory held: Gram matrices and materialised gradients of the largest
    /// example so far (reused from example to example), and the tied head's inputs of the current pass.
    public var scratchBytes: Int { scratch.bytes + maxTiedCopyBytes }
    private var maxTiedCopyBytes = 0

    /// Starts a pass over a batch of rows of `lengths` valid tokens padded to `time`, row b of example rowExample[b].
    public func begin(time T: Int, lengths: [Int], rowExample: [Int], examples E: Int) {
        precondition(lengths.count == rowExample.count, "GhostNormPass: \(lengths.count) lengths for \(rowExample.count) rows")
        squaredNorms = [Double](repeating: 0, count: E)
        rowsOfExample = [[Int]](repeating: [], count: E)
        for (b, e) in rowExample.enumerated() { rowsOfExample[e].append(b) }
        tokenRows = rowsOfExample.map { rows in rows.map { ($0 * T)..<($0 * T + lengths[$0]) } }
        tiedHead = nil
    }

    private var examples: Int { squaredNorms.count }

    public func linear(inputs: ConstFloatPtr, outputGradients: ConstFloatPtr, inFeatures: Int, outFeatures: Int) {
        timed {
            for e in 0..<examples {
                squaredNorms[e] += PerExampleRowNorms.linearSquaredNorm(inputs: inputs, outputGradients: outputGradients, rows: tokenRows[e],
                                                                        inputFeatures: inFeatures, outputFeatures: outFeatures,
                                                                        method: method, scratch: scratch)
            }
        }
    }

    public func rmsNorm(inputs: ConstFloatPtr, rstd: ConstFloatPtr, outputGradients: ConstFloatPtr, channels: Int) {
        timed {
            for e in 0..<examples {
                squaredNorms[e] += PerExampleRowNorms.rmsNormSquaredNorm(inputs: inputs, rstd: rstd, outputGradients: outputGradients,
                                                                         rows: tokenRows[e], channels: channels)
            }
        }
    }

    public func lmHead(inputs: ConstFloatPtr, logitGradients: ConstFloatPtr, targets: TokenTargets, vocabulary: Int, channels: Int,
                       tiedToEmbedding: Bool) {
        timed {
            // The head positions of each batch row are one run of the targets (they are listed row by row).
            var runs: [Int: Range<Int>] = [:]
            for (n, b) in targets.sequence.enumerated() { runs[b] = (runs[b]?.lowerBound ?? n)..<(n + 1) }
            let headRows: [ExampleRows] = rowsOfExample.map { rows in rows.compactMap { runs[$0] } }
            if tiedToEmbedding {
                let copy = FloatBuffer(count: targets.count * channels)                                     // (N, C)
                maxTiedCopyBytes = max(maxTiedCopyBytes, copy.count * MemoryLayout<Float>.stride)
                copy.pointer.update(from: inputs, count: targets.count * channels)
                tiedHead = (copy, logitGradients, headRows)
                return
            }
            for e in 0..<examples {
                squaredNorms[e] += PerExampleRowNorms.linearSquaredNorm(inputs: inputs, outputGradients: logitGradients, rows: headRows[e],
                                                                        inputFeatures: channels, outputFeatures: vocabulary,
                                                                        method: method, scratch: scratch)
            }
        }
    }

    public func scoreHead(features: ConstFloatPtr, lastRows: [Int], dScores: [Float], channels C: Int) {
        timed {
            for e in 0..<examples {
                var g = [Double](repeating: 0, count: C)                                                   // (C)
                for b in rowsOfExample[e] {
                    let h = features + lastRows[b] * C, d = Double(dScores[b])
                    for c in 0..<C { g[c] += d * Double(h[c]) }
                }
                squaredNorms[e] += g.reduce(0) { $0 + $1 * $1 }
            }
        }
    }

    public func valueHeads(features: ConstFloatPtr, positions: [Int], dValues: [Float], heads H: Int, channels C: Int) {
        timed {
            // The heads are a linear layer (H, C) on the final-normed states whose output gradient is dV at the
            // target positions and zero at every other token: the linear layers' norms apply as they are.
            let R = tokenRows.flatMap { $0 }.map(\.upperBound).max() ?? 0
            var dOutput = [Float](repeating: 0, count: R * H)                                              // (R, H)
            for (n, p) in positions.enumerated() { for h in 0..<H { dOutput[p * H + h] = dValues[n * H + h] } }
            dOutput.withUnsafeBufferPointer { d in
                for e in 0..<examples {
                    squaredNorms[e] += PerExampleRowNorms.linearSquaredNorm(inputs: features, outputGradients: d.baseAddress!, rows: tokenRows[e],
                                                                            inputFeatures: C, outputFeatures: H, method: method, scratch: scratch)
                }
            }
        }
    }

    public func embedding(tokens: [Int32], outputGradients: ConstFloatPtr, channels: Int, vocabulary: Int, tiedToHead: Bool) {
        timed {
            tokens.withUnsafeBufferPointer { ids in
                for e in 0..<examples {
                    if tiedToHead, let head = tiedHead {
                        squaredNorms[e] += PerExampleRowNorms.tiedEmbeddingSquaredNorm(
                            headInputs: head.inputs.pointer, headGradients: head.gradients, headRows: head.rows[e], tokens: ids.baseAddress!,
                            embeddingGradients: outputGradients, tokenRows: tokenRows[e], vocabulary: vocabulary, features: channels,
                            method: method, scratch: scratch)
                    } else {
                        squaredNorms[e] += PerExampleRowNorms.embeddingSquaredNorm(tokens: ids.baseAddress!, outputGradients: outputGradients,
                                                                                   rows: tokenRows[e], features: channels)
                    }
                }
            }
            tiedHead = nil
        }
    }
}
