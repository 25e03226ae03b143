// Per-example gradient norms when an example is a set of rows of the batch's activation matrices (a DPO
// pair is its chosen and its rejected sequence; a reward pair the same; an SFT example one sequence), for the
// ghost clipping of full fine-tuning (ppo-dp.md §1). Each example's rows are contiguous runs ("row runs") of
// an (R, features) matrix, so nothing is gathered: Gram matrices are formed run pair by run pair with sgemm.
//
// - Linear layer W (p, d): G = Σ_t γ_t a_tᵀ; ‖G‖² = ⟨AAᵀ, ΓΓᵀ⟩ (ghost) or G materialised, by 2L² < p·d.
// - RMSNorm weight w (C): g = Σ_t γ_t ⊙ x_t·rstd_t.
// - Embedding table (V, C): Σ_v ‖Σ_{t: id_t = v} γ_t‖².
// - Embedding tied to the LM head: the table's gradient is the sum of both uses,
//   G = Σ_n d_n h_nᵀ + Σ_t e_{id_t} γ_tᵀ, so ‖G‖² = ‖head‖² + ‖embedding‖² + 2 Σ_n Σ_t d_n[id_t] (h_n · γ_t).
//   (Opacus' ghost clipping refuses tied parameters; the cross term is what it would need.)
//
// Legend: L rows of the example, d input, p output features, C width, V vocabulary, N head rows of the
// example (LM-head positions), K features of a Gram.

import Foundation
import Tensors

/// The rows of one example inside a (rows, features) matrix: one contiguous run per sequence.
public typealias ExampleRows = [Range<Int>]

/// How a per-example linear norm is formed.
public enum PerExampleNormMethod: String, Sendable, CaseIterable {
    /// Ghost when 2L² < p·d, else materialised (private-transformers' rule).
    case automatic
    /// Always ⟨AAᵀ, ΓΓᵀ⟩.
    case ghost
    /// Always the gradient itself.
    case materialized

    /// Whether this method takes the ghost path for an example of L rows.
    public func usesGhost(rows L: Int, inputFeatures d: Int, outputFeatures p: Int) -> Bool {
        switch self {
        case .automatic: return PerExampleLinearNorms.prefersGhost(tokens: L, inputFeatures: d, outputFeatures: p)
        case .ghost: return true
        case .materialized: return false
        }
    }
}

/// Reusable scratch for Gram matrices and materialised gradients (grows, never shrinks).
public final class NormScratch {
    private var buffers: [FloatBuffer] = []
    public init() {}

    /// Bytes held.
    public var bytes: Int { buffers.reduce(0) { $0 + $1.count * MemoryLayout<Float>.stride } }

    /// Scratch `slot` with at least `count` floats, zeroed.
    func zeroed(_ slot: Int, count: Int) -> FloatPtr {
        while buffers.count <= slot { buffers.append(FloatBuffer(count: 0)) }
        if buffers[slot].count < count { buffers[slot] = FloatBuffer(count: count) } else { buffers[slot].pointer.update(repeating: 0, count: count) }
        return buffers[slot].pointer
    }
}

public enum PerExampleRowNorms {
    /// The number of rows of an example.
    public static func count(_ rows: ExampleRows) -> Int { rows.reduce(0) { $0 + $1.count } }

    /// The upper triangle of out (L, L) = X_e X_eᵀ over the example's rows of X (·, K): each run's own block by
    /// ssyrk (upper triangle), each pair of runs i < j by sgemm; the strict lower triangle is left as it was.
    static func upperGram(_ x: ConstFloatPtr, features K: Int, rows: ExampleRows, into out: FloatPtr) {
        let L = count(rows)
        var oi = 0
        for (i, ri) in rows.enumerated() {
            if !ri.isEmpty { Gram.upper(out + oi * L + oi, x + ri.lowerBound * K, rows: ri.count, features: K, ldOut: L) }
            var oj = oi + ri.count
            for rj in rows[(i + 1)...] {
                if !ri.isEmpty && !rj.isEmpty {
                    Matmul.forward(out + oi * L + oj, x + ri.lowerBound * K, x + rj.lowerBound * K, M: ri.count, N: rj.count, K: K, ldOut: L)
                }
                oj += rj.count
            }
            oi += ri.count
        }
    }

    /// ⟨A, B⟩_F of two symmetric (L, L) matrices from their upper triangles: the diagonal once, the rest twice.
    static func symmetricDot(_ a: ConstFloatPtr, _ b: ConstFloatPtr, size L: Int) -> Double {
        var diagonal = 0.0, upper = 0.0
        for i in 0..<L {
            diagonal += Double(a[i * L + i]) * Double(b[i * L + i])
            for j in (i + 1)..<max(i + 1, L) { upper += Double(a[i * L + j]) * Double(b[i * L + j]) }
        }
        return diagonal + 2 * upper
    }

    /// Σ_k a_k·b_k in Double.
    static func dot(_ a: ConstFloatPtr, _ b: ConstFloatPtr, count n: Int) -> Double {
        var s = 0.0
        for i in 0..<n { s += Double(a[i]) * Double(b[i]) }
        return s
    }

    /// ‖Σ_t γ_t a_tᵀ‖²_F over the example's rows of a linear layer: inputs (·, d), output gradients (·, p).
    public static func linearSquaredNorm(inputs: ConstFloatPtr, outputGradients: ConstFloatPtr, rows: ExampleRows,
                                         inputFeatures d: Int, outputFeatures p: Int, method: PerExampleNormMethod = .automatic,
                                         scratch: NormScratch = NormScratch()) -> Double {
        let L = count(rows)
        guard L > 0 else { return 0 }
        if method.usesGhost(rows: L, inputFeatures: d, outputFeatures: p) {
            let gramA = scratch.zeroed(0, count: L * L), gramG = scratch.zeroed(1, count: L * L)     // (L, L) each, upper
            upperGram(inputs, features: d, rows: rows, into: gramA)
            upperGram(outputGradients, features: p, rows: rows, into: gramG)
            return symmetricDot(gramA, gramG, size: L)
        }
        let G = scratch.zeroed(2, count: p * d)                                                       // (p, d)
        for r in rows where !r.isEmpty {
            Matmul.backward(dinp: nil, dweight: G, dout: outputGradients + r.lowerBound * p, inp: inputs + r.lowerBound * d,
                            weight: inputs, M: r.count, N: p, K: d)
        }
        return dot(G, G, count: p * d)
    }

    /// Naive reference of `linearSquaredNorm`: G entry by entry in Double.
    public static func linearSquaredNormReference(inputs: ConstFloatPtr, outputGradients: ConstFloatPtr, rows: ExampleRows,
                                                  inputFeatures d: Int, outputFeatures p: Int) -> Double {
        var s = 0.0
        for i in 0..<p {
            for j in 0..<d {
                var g = 0.0
                for r in rows { for t in r { g += Double(outputGradients[t * p + i]) * Double(inputs[t * d + j]) } }
                s += g * g
            }
        }
        return s
    }

    /// ‖Σ_t γ_t ⊙ x_t·rstd_t‖² of an RMSNorm weight over the example's rows: inputs x (·, C), rstd (·), γ (·, C).
    public static func rmsNormSquaredNorm(inputs: ConstFloatPtr, rstd: ConstFloatPtr, outputGradients: ConstFloatPtr,
                                          rows: ExampleRows, channels C: Int) -> Double {
        var g = [Double](repeating: 0, count: C)                                                     // (C)
        for r in rows {
            for t in r {
                let s = Double(rstd[t]), x = inputs + t * C, dy = outputGradients + t * C
                for c in 0..<C { g[c] += Double(dy[c]) * Double(x[c]) * s }
            }
        }
        return g.reduce(0) { $0 + $1 * $1 }
    }

    /// Σ_v ‖Σ_{t: id_t = v} γ_t‖² of an (untied) embedding table over the example's rows: ids (·), γ (·, C).
    /// Rows are grouped by id after sorting, so the cost is O(L·C + L log L), not O(V·C).
    public static func embeddingSquaredNorm(tokens: UnsafePointer<Int32>, outputGradients: ConstFloatPtr, rows: ExampleRows,
                                            features C: Int) -> Double {
        let order = rows.flatMap { $0 }.sorted { tokens[$0] < tokens[$1] || (tokens[$0] == tokens[$1] && $0 < $1) }
        var total = 0.0
        var row = [Double](repeating: 0, count: C)                                                   // (C) one id's sum
        var i = 0
        while i < order.count {
            let id = tokens[order[i]]
            for c in 0..<C { row[c] = 0 }
            while i < order.count && tokens[order[i]] == id {
                let g = outputGradients + order[i] * C
                for c in 0..<C { row[c] += Double(g[c]) }
                i += 1
            }
            total += row.reduce(0) { $0 + $1 * $1 }
        }
        return total
    }

    /// ‖G‖² of an embedding table E (V, C) tied to the LM head, over one example: head inputs h_n (·, C) and
    /// ∂L/∂logits d_n (·, V) at the example's head rows, ids and ∂L/∂(embedding output) γ_t (·, C) at its
    /// token rows. G = Σ_n d_n h_nᵀ + Σ_t e_{id_t} γ_tᵀ. The head part is a ghost norm (⟨HHᵀ, DDᵀ⟩) or
    /// materialised with the rows added in (`method`, by 2N² < V·C); the ghost path adds the embedding part
    /// and the cross term 2 Σ_n Σ_t d_n[id_t]·(h_n·γ_t) from the (N, L) product H·Γᵀ.
    public static func tiedEmbeddingSquaredNorm(headInputs H: ConstFloatPtr, headGradients D: ConstFloatPtr, headRows: ExampleRows,
                                                tokens: UnsafePointer<Int32>, embeddingGradients dX: ConstFloatPtr,
                                                tokenRows: ExampleRows, vocabulary V: Int, features C: Int,
                                                method: PerExampleNormMethod = .automatic, scratch: NormScratch = NormScratch()) -> Double {
        let N = count(headRows), L = count(tokenRows)
        if N == 0 { return embeddingSquaredNorm(tokens: tokens, outputGradients: dX, rows: tokenRows, features: C) }
        guard method.usesGhost(rows: N, inputFeatures: C, outputFeatures: V) else {
            let G = scratch.zeroed(2, count: V * C)                                                   // (V, C)
            for r in headRows where !r.isEmpty {
                Matmul.backward(dinp: nil, dweight: G, dout: D + r.lowerBound * V, inp: H + r.lowerBound * C, weight: H,
                                M: r.count, N: V, K: C)
            }
            for r in tokenRows { for t in r { Elementwise.accumulate(G + Int(tokens[t]) * C, dX + t * C, count: C) } }
            return dot(G, G, count: V * C)
        }
        let head = linearSquaredNorm(inputs: H, outputGradients: D, rows: headRows, inputFeatures: C, outputFeatures: V,
                                     method: .ghost, scratch: scratch)
        let embedding = embeddingSquaredNorm(tokens: tokens, outputGradients: dX, rows: tokenRows, features: C)
        guard L > 0 else { return head + embedding }
        let M = scratch.zeroed(3, count: N * L)                                                        // (N, L) h_n·γ_t
        var oi = 0
        for ri in headRows {
            var oj = 0
            for rj in tokenRows {
                if !ri.isEmpty && !rj.isEmpty {
                    Matmul.forward(M + oi * L + oj, H + ri.lowerBound * C, dX + rj.lowerBound * C, M: ri.count, N: rj.count, K: C, ldOut: L)
                }
                oj += rj.count
            }
            oi += ri.count
        }
        let ids = tokenRows.flatMap { $0 }.map { Int(tokens[$0]) }                                     // (L)
        var cross = 0.0, n = 0
        for ri in headRows {
            for row in ri {
                let d = D + row * V, m = M + n * L
                for (j, id) in ids.enumerated() { cross += Double(d[id]) * Double(m[j]) }
                n += 1
            }
        }
        return head + embedding + 2 * cross
    }

    /// Naive reference of `tiedEmbeddingSquaredNorm`: the whole (V, C) gradient in Double, then its squared norm.
    public static func tiedEmbeddingSquaredNormReference(headInputs H: ConstFloatPtr, headGradients D: ConstFloatPtr,
                                                         headRows: ExampleRows, tokens: UnsafePointer<Int32>,
                                                         embeddingGradients dX: ConstFloatPtr, tokenRows: ExampleRows,
                                                         vocabulary V: Int, features C: Int) -> Double {
        var G = [Double](repeating: 0, count: V * C)                                                  // (V, C)
        for r in headRows {
            for n in r { for v in 0..<V { for c in 0..<C { G[v * C + c] += Double(D[n * V + v]) * Double(H[n * C + c]) } } }
        }
        for r in tokenRows { for t in r { for c in 0..<C { G[Int(tokens[t]) * C + c] += Double(dX[t * C + c]) } } }
        return G.reduce(0) { $0 + $1 * $1 }
    }
}
