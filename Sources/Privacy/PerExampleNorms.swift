// Per-example gradient norms of a linear layer y = x Wᵀ (W: p × d), an embedding and a bias, from the
// layer's inputs and output gradients (ppo-dp.md §1). For one example, G = Γᵀ A and
//   ‖G‖²_F = ⟨A Aᵀ, Γ Γᵀ⟩_F                      (ghost norm: two T × T Gram matrices, never G itself),
// or G is materialised (p × d) and its entries squared. Ghost costs O(T²(d + p)), materialising O(T·d·p);
// the rule here picks ghost when 2T² < p·d (private-transformers).
// Legend: B examples, T (padded) tokens per example, L_b ≤ T valid tokens of example b, d input features,
// p output features, V vocabulary.

import Foundation
import Tensors

public enum PerExampleLinearNorms {
    /// Whether the ghost norm is the cheaper way for an example of `tokens` tokens: 2T² < p·d.
    public static func prefersGhost(tokens T: Int, inputFeatures d: Int, outputFeatures p: Int) -> Bool {
        2 * T * T < p * d
    }

    /// ‖Γᵀ A‖²_F for one example by Gram matrices through sgemm: inputs A (T, d), output gradients Γ (T, p).
    public static func ghostSquaredNorm(inputs: ConstFloatPtr, outputGradients: ConstFloatPtr,
                                        tokens T: Int, inputFeatures d: Int, outputFeatures p: Int) -> Double {
        guard T > 0 else { return 0 }
        let gramA = FloatBuffer(count: T * T)                     // (T, T) A Aᵀ
        let gramG = FloatBuffer(count: T * T)                     // (T, T) Γ Γᵀ
        Matmul.forward(gramA.pointer, inputs, inputs, M: T, N: T, K: d)
        Matmul.forward(gramG.pointer, outputGradients, outputGradients, M: T, N: T, K: p)
        var s = 0.0
        for i in 0..<T * T { s += Double(gramA.pointer[i]) * Double(gramG.pointer[i]) }
        return s
    }

    /// The per-example weight gradient G = Γᵀ A (p, d) through sgemm, written (not accumulated) into `out`.
    public static func materializeGradient(into out: FloatPtr, inputs: ConstFloatPtr, outputGradients: ConstFloatPtr,
                                           tokens T: Int, inputFeatures d: Int, outputFeatures p: Int) {
        out.update(repeating: 0, count: p * d)
        Matmul.backward(dinp: nil, dweight: out, dout: outputGradients, inp: inputs, weight: inputs, M: T, N: p, K: d)
    }

    /// ‖Γᵀ A‖²_F for one example by materialising G (p, d).
    public static func materializedSquaredNorm(inputs: ConstFloatPtr, outputGradients: ConstFloatPtr,
                                               tokens T: Int, inputFeatures d: Int, outputFeatures p: Int) -> Double {
        let gradient = FloatBuffer(count: p * d)                  // (p, d)
        materializeGradient(into: gradient.pointer, inputs: inputs, outputGradients: outputGradients,
                            tokens: T, inputFeatures: d, outputFeatures: p)
        var s = 0.0
        for i in 0..<p * d { let g = Double(gradient.pointer[i]); s += g * g }
        return s
    }

    /// Squared per-example norms (B) of a batch of right-padded examples: inputs (B, T, d), output gradients
    /// (B, T, p), example b using its first lengths[b] rows; ghost or materialised per example by `prefersGhost`.
    public static func squaredNorms(inputs: ConstFloatPtr, outputGradients: ConstFloatPtr, lengths: [Int],
                                    tokens T: Int, inputFeatures d: Int, outputFeatures p: Int) -> [Double] {
        lengths.enumerated().map { b, length in
            precondition(length >= 0 && length <= T, "PerExampleLinearNorms: length \(length) of example \(b) outside 0...\(T)")
            let a = inputs + b * T * d, g = outputGradients + b * T * p
            return prefersGhost(tokens: length, inputFeatures: d, outputFeatures: p)
                ? ghostSquaredNorm(inputs: a, outputGradients: g, tokens: length, inputFeatures: d, outputFeatures: p)
                : materializedSquaredNorm(inputs: a, outputGradients: g, tokens: length, inputFeatures: d, outputFeatures: p)
        }
    }

    /// Naive reference of `squaredNorms`: G_b = Σ_t γ_t a_tᵀ entry by entry in Double, then Σ G².
    public static func squaredNormsReference(inputs: ConstFloatPtr, outputGradients: ConstFloatPtr, lengths: [Int],
                                             tokens T: Int, inputFeatures d: Int, outputFeatures p: Int) -> [Double] {
        lengths.enumerated().map { b, length in
            var s = 0.0
            for i in 0..<p {
                for j in 0..<d {
                    var g = 0.0
                    for t in 0..<length {
                        g += Double(outputGradients[(b * T + t) * p + i]) * Double(inputs[(b * T + t) * d + j])
                    }
                    s += g * g
                }
            }
            return s
        }
    }

    /// The clipped weight gradient dW (p, d) += Σ_b c_b Γ_bᵀ A_b in one sgemm over the valid rows, with each
    /// example's output gradients scaled by its clip factor (the book-keeping step: no second backward).
    public static func accumulateClippedGradient(into dW: FloatPtr, inputs: ConstFloatPtr, outputGradients: ConstFloatPtr,
                                                 lengths: [Int], factors: [Double],
                                                 tokens T: Int, inputFeatures d: Int, outputFeatures p: Int) {
        precondition(lengths.count == factors.count, "PerExampleLinearNorms: \(lengths.count) lengths, \(factors.count) factors")
        let B = lengths.count
        let scaled = FloatBuffer(count: B * T * p)                // (B, T, p) c_b Γ_b, zero on padding
        for b in 0..<B {
            let c = Float(factors[b])
            for i in 0..<lengths[b] * p { scaled.pointer[b * T * p + i] = c * outputGradients[b * T * p + i] }
        }
        Matmul.backward(dinp: nil, dweight: dW, dout: scaled.pointer, inp: inputs, weight: inputs, M: B * T, N: p, K: d)
    }

    /// Squared per-example norms (B) of a bias gradient: ‖Σ_t γ_t‖² over each example's valid rows of (B, T, p).
    public static func biasSquaredNorms(outputGradients: ConstFloatPtr, lengths: [Int], tokens T: Int, outputFeatures p: Int) -> [Double] {
        lengths.enumerated().map { b, length in
            var s = 0.0
            for i in 0..<p {
                var g = 0.0
                for t in 0..<length { g += Double(outputGradients[(b * T + t) * p + i]) }
                s += g * g
            }
            return s
        }
    }
}

public enum PerExampleEmbeddingNorms {
    /// Squared per-example norms (B) of an embedding table's gradient: the output gradients (B, T, p) are
    /// summed per token id over each example's valid rows (ids (B, T)), then the rows' squared norms added.
    public static func squaredNorms(tokenIDs: [Int32], outputGradients: ConstFloatPtr, lengths: [Int],
                                    tokens T: Int, features p: Int) -> [Double] {
        lengths.enumerated().map { b, length in
            var rows: [Int32: [Double]] = [:]                      // id → (p) summed gradient
            for t in 0..<length {
                let id = tokenIDs[b * T + t]
                var row = rows[id] ?? [Double](repeating: 0, count: p)
                for i in 0..<p { row[i] += Double(outputGradients[(b * T + t) * p + i]) }
                rows[id] = row
            }
            return rows.values.reduce(0.0) { total, row in total + row.reduce(0.0) { $0 + $1 * $1 } }
        }
    }

    /// Naive reference: materialise the whole (V, p) gradient of each example, then its squared norm.
    public static func squaredNormsReference(tokenIDs: [Int32], outputGradients: ConstFloatPtr, lengths: [Int],
                                             tokens T: Int, features p: Int, vocabulary V: Int) -> [Double] {
        lengths.enumerated().map { b, length in
            var table = [Double](repeating: 0, count: V * p)      // (V, p)
            for t in 0..<length {
                let id = Int(tokenIDs[b * T + t])
                for i in 0..<p { table[id * p + i] += Double(outputGradients[(b * T + t) * p + i]) }
            }
            return table.reduce(0.0) { $0 + $1 * $1 }
        }
    }
}
