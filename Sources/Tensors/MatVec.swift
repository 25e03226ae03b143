// Matrix-vector product for one row: out (N) = W (N, K) · x (K), the M = 1 case of Matmul.forward that
// batch-1 decoding runs for every projection. It is bound by memory bandwidth: each token reads every
// weight once. cblas_sgemm with M = 1 first copies W into its packed layout (a second pass over all of
// it); here each task of `parallelFor` reads its own block of rows of W once, as one sequential run,
// against x (in L1). Reading one row at a time matters on this machine: the same loop over two or four
// interleaved rows (two or four memory streams per thread) ran 2–3× slower, and so does sgemv.
// Legend: N output features (rows of W), K input features.
//
// Forward only (decoding needs no gradient). `forwardBLAS` is OpenBLAS's sgemv, kept so that
// `dualign bench --kind generate --matvec blas` can compare the two.

import COpenBLAS

public enum MatVec {
    /// Which implementation `forward` runs.
    public enum Implementation: String, CaseIterable, Sendable {
        /// One row at a time in 8-lane float vectors, blocks of rows split over `parallelFor`.
        case simd
        /// cblas_sgemv (OpenBLAS threads).
        case blas
    }

    /// The implementation `forward` uses (the benchmark switches it; everything else keeps the default).
    nonisolated(unsafe) public static var implementation = Implementation.simd

    /// Rows per task of `parallelFor`: small enough to balance two threads on the 576-row projections,
    /// large enough that a task streams ≥ 150 KB.
    static let blockRows = 64

    /// Forward: out (N) = weight (N, K) · x (K); adds into out when `accumulate`.
    public static func forward(_ out: FloatPtr, _ weight: ConstFloatPtr, _ x: ConstFloatPtr, N: Int, K: Int,
                               accumulate: Bool = false) {
        guard N > 0 else { return }
        if implementation == .blas { return forwardBLAS(out, weight, x, N: N, K: K, accumulate: accumulate) }
        let blocks = (N + blockRows - 1) / blockRows
        parallelFor(blocks, minimumPerThread: 2) { b in
            let start = b * blockRows
            rows(out, weight, x, from: start, to: Swift.min(N, start + blockRows), K: K, accumulate: accumulate)
        }
    }

    /// out[n] (+)= W[n, :] · x for n in start..<end, one row after the other so that the task reads one
    /// sequential run of memory; four accumulators along K hide the latency of the additions.
    @inline(__always)
    static func rows(_ out: FloatPtr, _ weight: ConstFloatPtr, _ x: ConstFloatPtr, from start: Int, to end: Int, K: Int,
                     accumulate: Bool) {
        let xr = UnsafeRawPointer(x)
        for n in start..<end {
            let w = UnsafeRawPointer(weight + n * K)
            var a0 = Float8.zero, a1 = Float8.zero, a2 = Float8.zero, a3 = Float8.zero
            var k = 0
            while k + 32 <= K {
                let o = k * 4
                a0 += w.loadUnaligned(fromByteOffset: o, as: Float8.self) * xr.loadUnaligned(fromByteOffset: o, as: Float8.self)
                a1 += w.loadUnaligned(fromByteOffset: o + 32, as: Float8.self) * xr.loadUnaligned(fromByteOffset: o + 32, as: Float8.self)
                a2 += w.loadUnaligned(fromByteOffset: o + 64, as: Float8.self) * xr.loadUnaligned(fromByteOffset: o + 64, as: Float8.self)
                a3 += w.loadUnaligned(fromByteOffset: o + 96, as: Float8.self) * xr.loadUnaligned(fromByteOffset: o + 96, as: Float8.self)
                k += 32
            }
            while k + 8 <= K {
                a0 += w.loadUnaligned(fromByteOffset: k * 4, as: Float8.self) * xr.loadUnaligned(fromByteOffset: k * 4, as: Float8.self)
                k += 8
            }
            var s = ((a0 + a1) + (a2 + a3)).sum()
            while k < K { s += weight[n * K + k] * x[k]; k += 1 }
            out[n] = accumulate ? out[n] + s : s
        }
    }

    /// The same product through OpenBLAS's sgemv.
    public static func forwardBLAS(_ out: FloatPtr, _ weight: ConstFloatPtr, _ x: ConstFloatPtr, N: Int, K: Int,
                                   accumulate: Bool = false) {
        guard N > 0 else { return }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(N), Int32(K), 1, weight, Int32(K), x, 1, accumulate ? 1 : 0, out, 1)
    }

    /// Naive reference of `forward` (accumulates in Double).
    public static func forwardReference(_ out: FloatPtr, _ weight: ConstFloatPtr, _ x: ConstFloatPtr, N: Int, K: Int,
                                        accumulate: Bool = false) {
        for n in 0..<N {
            var s = 0.0
            for k in 0..<K { s += Double(weight[n * K + k]) * Double(x[k]) }
            out[n] = accumulate ? out[n] + Float(s) : Float(s)
        }
    }
}
