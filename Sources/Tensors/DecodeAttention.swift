// Attention of one new query row against a sequence's cached keys and values: the decoding step of
// every (sequence, head) once the prompt is in the cache. Causality is implicit (the cache holds only
// the past and the new token). Scores and the weighted sum are two sgemv calls (OpenBLAS's small
// kernels: 0.8 µs per (sequence, head) at L = 96, against 1.0–1.5 µs for 8-lane Swift loops); the
// softmax runs through VectorMath's exp. Callers running many of these in parallel hold OpenBLAS to one
// thread (BLAS.withThreads(1)).
// Legend: L cached positions (the new one included), HS head size.
//
//   s_j = scale · q · k_j            (L)
//   p   = softmax(s)                 (L)
//   out = Σ_j p_j v_j                (HS)

import COpenBLAS

public enum DecodeAttention {
    /// Forward: out (HS) from q (HS), keys and values (L rows of HS at stride `rowStride`); `scores` is
    /// scratch of at least L floats (it holds the unnormalised e^(s − max) afterwards).
    public static func forward(out: FloatPtr, q: ConstFloatPtr, keys: ConstFloatPtr, values: ConstFloatPtr, length L: Int,
                               headSize HS: Int, rowStride: Int, scale: Float, scores: FloatPtr) {
        precondition(L >= 1, "attention over an empty cache")
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(L), Int32(HS), scale, keys, Int32(rowStride), q, 1, 0, scores, 1)
        let m = VectorMath.max(scores, count: L)
        let inv = 1 / VectorMath.expShifted(scores, count: L, shift: m)
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(L), Int32(HS), inv, values, Int32(rowStride), scores, 1, 0, out, 1)
    }

    /// Naive reference of `forward` (Double).
    public static func forwardReference(q: [Float], keys: [[Float]], values: [[Float]], scale: Float) -> [Float] {
        let s = keys.map { k in Double(scale) * zip(q, k).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
        let m = s.max()!
        let e = s.map { Foundation.exp($0 - m) }
        let z = e.reduce(0, +)
        return (0..<q.count).map { c in Float(zip(e, values).reduce(0.0) { $0 + $1.0 / z * Double($1.1[c]) }) }
    }
}

import Foundation
