// Attention of one new query row against a sequence's cached keys and values: the decoding step of
// every (sequence, head) once the prompt is in the cache. Causality is implicit (the cache holds only
// the past and the new token). Scores and the weighted sum run in 8-lane float vectors; the softmax
// through VectorMath's exp.
// Legend: L cached positions (the new one included), HS head size.
//
//   s_j = scale · q · k_j            (L)
//   p   = softmax(s)                 (L)
//   out = Σ_j p_j v_j                (HS)

public enum DecodeAttention {
    /// Forward: out (HS) from q (HS), keys and values (L rows of HS at stride `rowStride`); `scores` is
    /// scratch of at least L floats (it holds p afterwards).
    public static func forward(out: FloatPtr, q: ConstFloatPtr, keys: ConstFloatPtr, values: ConstFloatPtr, length L: Int,
                               headSize HS: Int, rowStride: Int, scale: Float, scores: FloatPtr) {
        precondition(L >= 1, "attention over an empty cache")
        for j in 0..<L { scores[j] = scale * VectorMath.dot(q, keys + j * rowStride, count: HS) }
        let m = VectorMath.max(scores, count: L)
        let inv = 1 / VectorMath.expShifted(scores, count: L, shift: m)
        let HS8 = HS & ~7
        out.update(repeating: 0, count: HS)
        for j in 0..<L {
            let p = scores[j] * inv, v = values + j * rowStride
            let p8 = Float8(repeating: p)
            var c = 0
            while c < HS8 {
                let o = UnsafeRawPointer(out + c).loadUnaligned(as: Float8.self) + p8 * UnsafeRawPointer(v + c).loadUnaligned(as: Float8.self)
                UnsafeMutableRawPointer(out + c).storeBytes(of: o, as: Float8.self)
                c += 8
            }
            while c < HS { out[c] += p * v[c]; c += 1 }
        }
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
