// Causal self-attention with grouped-query heads over right-padded sequences.
// Legend: B batch, T time, NH query heads, NKV key/value heads, HS head size,
//         QKV = (NH + 2·NKV)·HS channels of the fused projection (q | k | v).
// Query head h reads key/value head h / (NH / NKV). Query t attends keys 0 ... min(t, len_b − 1):
// causal, and never a padding key (as Hugging Face with an attention mask; rows past the
// sequence end attend to the whole real sequence).

import COpenBLAS

/// Shape of one attention call.
public struct AttentionShape: Sendable {
    public let batch: Int, time: Int, heads: Int, kvHeads: Int, headSize: Int
    public init(batch: Int, time: Int, heads: Int, kvHeads: Int, headSize: Int) {
        self.batch = batch; self.time = time; self.heads = heads; self.kvHeads = kvHeads; self.headSize = headSize
    }
    /// Channels of the fused q|k|v row.
    public var qkvChannels: Int { (heads + 2 * kvHeads) * headSize }
    /// Channels of the attention output row.
    public var outChannels: Int { heads * headSize }
    /// Query heads sharing one key/value head.
    public var groupSize: Int { heads / kvHeads }
}

public enum Attention {
    /// The number of keys query t of a sequence of `length` real tokens attends to.
    @inline(__always) static func keyCount(_ t: Int, _ length: Int) -> Int { min(t, length - 1) + 1 }

    /// Forward: out (B, T, NH·HS) and probabilities att (B, NH, T, T) from qkv (B, T, QKV).
    public static func forward(out: FloatPtr, att: FloatPtr, qkv: ConstFloatPtr, lengths: [Int], shape s: AttentionShape) {
        let T = s.time, HS = s.headSize, QKV = s.qkvChannels, OC = s.outChannels
        let scale = 1 / Float(HS).squareRoot()
        BLAS.withThreads(1) {
            parallelFor(s.batch * s.heads) { item in
                let b = item / s.heads, h = item % s.heads, g = h / s.groupSize
                let len = lengths[b]
                let q = qkv + b * T * QKV + h * HS
                let k = qkv + b * T * QKV + (s.heads + g) * HS
                let v = qkv + b * T * QKV + (s.heads + s.kvHeads + g) * HS
                let p = att + (b * s.heads + h) * T * T                                   // (T, T)
                // scores (T, T) = q (T, HS) · kᵀ · scale
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(HS),
                            scale, q, Int32(QKV), k, Int32(QKV), 0, p, Int32(T))
                for t in 0..<T {
                    let row = p + t * T, n = keyCount(t, len)
                    let m = VectorMath.max(row, count: n)
                    let inv = 1 / VectorMath.expShifted(row, count: n, shift: m)
                    for j in 0..<n { row[j] *= inv }
                    for j in n..<T { row[j] = 0 }
                }
                // out (T, HS) = p (T, T) · v (T, HS)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(HS), Int32(T),
                            1, p, Int32(T), v, Int32(QKV), 0, out + b * T * OC + h * HS, Int32(OC))
            }
        }
    }

    /// Backward: dqkv (B, T, QKV) += ∂L/∂qkv from dout (B, T, NH·HS), with the saved att and qkv.
    public static func backward(dqkv: FloatPtr, dout: ConstFloatPtr, att: ConstFloatPtr, qkv: ConstFloatPtr,
                                shape s: AttentionShape) {
        let T = s.time, HS = s.headSize, QKV = s.qkvChannels, OC = s.outChannels
        let scale = 1 / Float(HS).squareRoot()
        BLAS.withThreads(1) {
            // One work item per (b, kv head): the query heads of a group accumulate into the same dk, dv.
            parallelFor(s.batch * s.kvHeads) { item in
                let b = item / s.kvHeads, g = item % s.kvHeads
                let dp = FloatPtr.allocate(capacity: T * T)                              // (T, T)
                defer { dp.deallocate() }
                let base = b * T * QKV
                let k = qkv + base + (s.heads + g) * HS, v = qkv + base + (s.heads + s.kvHeads + g) * HS
                let dk = dqkv + base + (s.heads + g) * HS, dv = dqkv + base + (s.heads + s.kvHeads + g) * HS
                for h in (g * s.groupSize)..<((g + 1) * s.groupSize) {
                    let q = qkv + base + h * HS, dq = dqkv + base + h * HS
                    let p = att + (b * s.heads + h) * T * T
                    let dO = dout + b * T * OC + h * HS
                    // dp (T, T) = dO (T, HS) · vᵀ ;  dv (T, HS) += pᵀ · dO
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(HS),
                                1, dO, Int32(OC), v, Int32(QKV), 0, dp, Int32(T))
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(HS), Int32(T),
                                1, p, Int32(T), dO, Int32(OC), 1, dv, Int32(QKV))
                    // softmax backward, in place: ds = p ∘ (dp − Σ p∘dp) · scale
                    for t in 0..<T {
                        let pr = p + t * T, dr = dp + t * T
                        let dot = VectorMath.dot(pr, dr, count: T)
                        for j in 0..<T { dr[j] = pr[j] * (dr[j] - dot) * scale }
                    }
                    // dq (T, HS) += ds · k ;  dk (T, HS) += dsᵀ · q
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(HS), Int32(T),
                                1, dp, Int32(T), k, Int32(QKV), 1, dq, Int32(QKV))
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(HS), Int32(T),
                                1, dp, Int32(T), q, Int32(QKV), 1, dk, Int32(QKV))
                }
            }
        }
    }

    /// Naive reference of forward and backward (Double accumulation): returns out and dqkv.
    public static func reference(qkv: [Float], dout: [Float], lengths: [Int], shape s: AttentionShape)
        -> (out: [Float], dqkv: [Float]) {
        let T = s.time, HS = s.headSize, QKV = s.qkvChannels, OC = s.outChannels
        let scale = 1 / Double(HS).squareRoot()
        var out = [Float](repeating: 0, count: s.batch * T * OC)
        var dqkv = [Double](repeating: 0, count: s.batch * T * QKV)
        for b in 0..<s.batch {
            for h in 0..<s.heads {
                let g = h / s.groupSize
                func q(_ t: Int, _ c: Int) -> Double { Double(qkv[b * T * QKV + t * QKV + h * HS + c]) }
                func k(_ t: Int, _ c: Int) -> Double { Double(qkv[b * T * QKV + t * QKV + (s.heads + g) * HS + c]) }
                func v(_ t: Int, _ c: Int) -> Double { Double(qkv[b * T * QKV + t * QKV + (s.heads + s.kvHeads + g) * HS + c]) }
                for t in 0..<T {
                    let n = keyCount(t, lengths[b])
                    var sc = [Double](repeating: 0, count: n)
                    for j in 0..<n { for c in 0..<HS { sc[j] += q(t, c) * k(j, c) }; sc[j] *= scale }
                    let m = sc.max()!
                    var p = sc.map { Foundation.exp($0 - m) }
                    let z = p.reduce(0, +)
                    p = p.map { $0 / z }
                    let dO = (0..<HS).map { Double(dout[b * T * OC + t * OC + h * HS + $0]) }
                    var dp = [Double](repeating: 0, count: n)
                    for c in 0..<HS {
                        var o = 0.0
                        for j in 0..<n { o += p[j] * v(j, c); dp[j] += dO[c] * v(j, c) }
                        out[b * T * OC + t * OC + h * HS + c] = Float(o)
                    }
                    let dot = zip(p, dp).map(*).reduce(0, +)
                    for j in 0..<n {
                        let ds = p[j] * (dp[j] - dot) * scale
                        for c in 0..<HS {
                            dqkv[b * T * QKV + t * QKV + h * HS + c] += ds * k(j, c)
                            dqkv[b * T * QKV + j * QKV + (s.heads + g) * HS + c] += ds * q(t, c)
                            dqkv[b * T * QKV + j * QKV + (s.heads + s.kvHeads + g) * HS + c] += p[j] * dO[c]
                        }
                    }
                }
            }
        }
        return (out, dqkv.map { Float($0) })
    }
}

import Foundation

extension BLAS {
    /// Runs `body` with OpenBLAS limited to `n` threads, for regions that parallelise over many small
    /// products themselves; restores the previous count afterwards.
    public static func withThreads<R>(_ n: Int, _ body: () throws -> R) rethrows -> R {
        let previous = threads
        if previous == n { return try body() }
        setThreads(n)
        defer { setThreads(previous) }
        return try body()
    }
}
