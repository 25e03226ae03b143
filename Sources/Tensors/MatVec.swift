// Matrix-vector product for one row: out (N) = W (N, K) · x (K), the M = 1 case of Matmul.forward that
// batch-1 decoding runs for every projection. It is bound by memory bandwidth: each token reads every
// weight once. cblas_sgemm with M = 1 first copies W into its packed layout (a second pass over all of
// it); here each task streams its own block of rows of W once, four rows at a time against x (in L1).
// Legend: N output features (rows of W), K input features.
//
// Forward only (decoding needs no gradient). `forwardBLAS` is OpenBLAS's sgemv, kept so that
// `dualign bench --kind generate --matvec blas` can compare the two.

import COpenBLAS

public enum MatVec {
    /// Which implementation `forward` runs.
    public enum Implementation: String, CaseIterable, Sendable {
        /// Four rows per pass in 8-lane float vectors, row blocks split over `parallelFor`.
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

    /// out[n] (+)= W[n, :] · x for n in start..<end: four rows share each load of x.
    @inline(__always)
    static func rows(_ out: FloatPtr, _ weight: ConstFloatPtr, _ x: ConstFloatPtr, from start: Int, to end: Int, K: Int,
                     accumulate: Bool) {
        let K8 = K & ~7
        let xr = UnsafeRawPointer(x)
        var n = start
        while n + 4 <= end {
            let w0 = UnsafeRawPointer(weight + n * K), w1 = UnsafeRawPointer(weight + (n + 1) * K)
            let w2 = UnsafeRawPointer(weight + (n + 2) * K), w3 = UnsafeRawPointer(weight + (n + 3) * K)
            var a0 = Float8.zero, a1 = Float8.zero, a2 = Float8.zero, a3 = Float8.zero
            var k = 0
            while k < K8 {
                let o = k * 4
                let v = xr.loadUnaligned(fromByteOffset: o, as: Float8.self)
                a0 += w0.loadUnaligned(fromByteOffset: o, as: Float8.self) * v
                a1 += w1.loadUnaligned(fromByteOffset: o, as: Float8.self) * v
                a2 += w2.loadUnaligned(fromByteOffset: o, as: Float8.self) * v
                a3 += w3.loadUnaligned(fromByteOffset: o, as: Float8.self) * v
                k += 8
            }
            var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
            while k < K {
                let v = x[k]
                s0 += weight[n * K + k] * v
                s1 += weight[(n + 1) * K + k] * v
                s2 += weight[(n + 2) * K + k] * v
                s3 += weight[(n + 3) * K + k] * v
                k += 1
            }
            if accumulate {
                out[n] += s0; out[n + 1] += s1; out[n + 2] += s2; out[n + 3] += s3
            } else {
                out[n] = s0; out[n + 1] = s1; out[n + 2] = s2; out[n + 3] = s3
            }
            n += 4
        }
        while n < end {
            let s = VectorMath.dot(weight + n * K, x, count: K)
            if accumulate { out[n] += s } else { out[n] = s }
            n += 1
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
