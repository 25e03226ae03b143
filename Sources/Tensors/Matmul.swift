// Matrix multiply: out = inp · Wᵀ (+ bias-free), the linear layer of every projection.
// Legend: M rows (B·T or selected positions), K input features, N output features.
// Forward and backward as row-major GEMMs through the selected backend (MatmulBackend: OpenBLAS,
// oneDNN or BLIS); naive references beside them for tests.

import COpenBLAS
import CShims

public enum Matmul {
    /// The library every product runs on: DUALIGN_MATMUL if it names one, else the processor's choice
    /// (`MatmulBackend.automatic`). Commands set it from the environment and their config at start.
    nonisolated(unsafe) public static var backend: MatmulBackend =
        (try? MatmulBackend.resolve().backend) ?? MatmulBackend.automatic()

    /// Runs `body` with `backend` set to `b`, restoring the previous backend afterwards (tests, benchmarks).
    public static func withBackend<R>(_ b: MatmulBackend, _ body: () throws -> R) rethrows -> R {
        let previous = backend
        backend = b
        defer { backend = previous }
        return try body()
    }

    /// Forward: out (M, N) = inp (M, K) · weight (N, K)ᵀ; accumulates into out when `accumulate`.
    public static func forward(_ out: FloatPtr, _ inp: ConstFloatPtr, _ weight: ConstFloatPtr,
                               M: Int, N: Int, K: Int, accumulate: Bool = false,
                               ldInp: Int? = nil, ldOut: Int? = nil) {
        guard M > 0, N > 0 else { return }
        gemm(transA: false, transB: true, m: M, n: N, k: K, a: inp, lda: ldInp ?? K, b: weight, ldb: K,
             beta: accumulate ? 1 : 0, c: out, ldc: ldOut ?? N)
    }

    /// Backward: dinp (M, K) += dout (M, N) · weight (N, K); dweight (N, K) += dout ᵀ · inp.
    /// Either gradient may be nil when it is not needed; `overwriteInput` stores dinp instead of adding.
    public static func backward(dinp: FloatPtr?, dweight: FloatPtr?, dout: ConstFloatPtr,
                                inp: ConstFloatPtr, weight: ConstFloatPtr, M: Int, N: Int, K: Int,
                                ldInp: Int? = nil, ldOut: Int? = nil, overwriteInput: Bool = false) {
        guard M > 0, N > 0 else { return }
        let lo = ldOut ?? N, li = ldInp ?? K
        if let dinp {
            gemm(transA: false, transB: false, m: M, n: K, k: N, a: dout, lda: lo, b: weight, ldb: K,
                 beta: overwriteInput ? 0 : 1, c: dinp, ldc: li)
        }
        if let dweight {
            gemm(transA: true, transB: false, m: N, n: K, k: M, a: dout, lda: lo, b: inp, ldb: li,
                 beta: 1, c: dweight, ldc: K)
        }
    }

    /// c (m, n) = op(a) · op(b) + beta · c, row-major, on `backend`; op(x) = xᵀ when the flag is set
    /// (a stored (m, k) or (k, m) with leading dimension lda; b stored (k, n) or (n, k) with ldb).
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: ConstFloatPtr, lda: Int,
                            b: ConstFloatPtr, ldb: Int, beta: Float, c: FloatPtr, ldc: Int) {
        switch backend {
        case .openblas:
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        case .onednn:
            OneDNN.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                        beta: beta, c: c, ldc: ldc, threads: ThreadPool.threads)
        case .blis:
            precondition(dualign_blis_load() == 1, "Matmul.backend = .blis, but libblis.so.4 is not installed")
            // Row-major x stored (r, c) with leading dimension ld: row stride ld, column stride 1.
            dualign_blis_set_threads(Int32(ThreadPool.threads))
            dualign_blis_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, 1, a, lda, 1, b, ldb, 1, beta, c, ldc, 1)
        }
    }

    /// Naive reference of `forward` (accumulates in Double).
    public static func forwardReference(_ out: FloatPtr, _ inp: ConstFloatPtr, _ weight: ConstFloatPtr,
                                        M: Int, N: Int, K: Int) {
        for m in 0..<M {
            for n in 0..<N {
                var s = 0.0
                for k in 0..<K { s += Double(inp[m * K + k]) * Double(weight[n * K + k]) }
                out[m * N + n] = Float(s)
            }
        }
    }

    /// Naive reference of `backward` (accumulates into both gradients, in Double).
    public static func backwardReference(dinp: FloatPtr, dweight: FloatPtr, dout: ConstFloatPtr,
                                         inp: ConstFloatPtr, weight: ConstFloatPtr, M: Int, N: Int, K: Int) {
        for m in 0..<M {
            for k in 0..<K {
                var s = 0.0
                for n in 0..<N { s += Double(dout[m * N + n]) * Double(weight[n * K + k]) }
                dinp[m * K + k] += Float(s)
            }
        }
        for n in 0..<N {
            for k in 0..<K {
                var s = 0.0
                for m in 0..<M { s += Double(dout[m * N + n]) * Double(inp[m * K + k]) }
                dweight[n * K + k] += Float(s)
            }
        }
    }
}

/// BLAS thread control (OpenBLAS sizes its pool from the affinity mask; see docs/environment notes).
public enum BLAS {
    /// Sets the number of threads OpenBLAS uses.
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    /// The number of threads OpenBLAS uses.
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
