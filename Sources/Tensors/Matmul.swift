// Matrix multiply: out = inp · Wᵀ (+ bias-free), the linear layer of every projection.
// Legend: M rows (B·T or selected positions), K input features, N output features.
// Forward and backward through cblas_sgemm; naive references beside them for tests.

import COpenBLAS

public enum Matmul {
    /// Forward: out (M, N) = inp (M, K) · weight (N, K)ᵀ; accumulates into out when `accumulate`.
    public static func forward(_ out: FloatPtr, _ inp: ConstFloatPtr, _ weight: ConstFloatPtr,
                               M: Int, N: Int, K: Int, accumulate: Bool = false,
                               ldInp: Int? = nil, ldOut: Int? = nil) {
        guard M > 0, N > 0 else { return }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(M), Int32(N), Int32(K),
                    1, inp, Int32(ldInp ?? K), weight, Int32(K), accumulate ? 1 : 0, out, Int32(ldOut ?? N))
    }

    /// Backward: dinp (M, K) += dout (M, N) · weight (N, K); dweight (N, K) += dout ᵀ · inp.
    /// Either gradient may be nil when it is not needed; `overwriteInput` stores dinp instead of adding.
    public static func backward(dinp: FloatPtr?, dweight: FloatPtr?, dout: ConstFloatPtr,
                                inp: ConstFloatPtr, weight: ConstFloatPtr, M: Int, N: Int, K: Int,
                                ldInp: Int? = nil, ldOut: Int? = nil, overwriteInput: Bool = false) {
        guard M > 0, N > 0 else { return }
        let lo = Int32(ldOut ?? N), li = Int32(ldInp ?? K)
        if let dinp {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(M), Int32(K), Int32(N),
                        1, dout, lo, weight, Int32(K), overwriteInput ? 0 : 1, dinp, li)
        }
        if let dweight {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(N), Int32(K), Int32(M),
                        1, dout, lo, inp, li, 1, dweight, Int32(K))
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
