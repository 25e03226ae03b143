// Gram matrices X·Xᵀ, the symmetric product of ghost norms (Privacy's per-example gradient norms): only
// the upper triangle is formed (cblas_ssyrk), half the work of a general product.
// Legend: L rows, K features.

import COpenBLAS

public enum Gram {
    /// The upper triangle (i ≤ j) of out (L, L) = X·Xᵀ for X (L, K) with row stride K; out's row stride is
    /// `ldOut`, and its strict lower triangle is not written.
    public static func upper(_ out: FloatPtr, _ x: ConstFloatPtr, rows L: Int, features K: Int, ldOut: Int? = nil) {
        guard L > 0 else { return }
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(L), Int32(K), 1, x, Int32(K), 0, out, Int32(ldOut ?? L))
    }

    /// Naive reference of `upper` (in Double; writes the upper triangle only).
    public static func upperReference(_ out: FloatPtr, _ x: ConstFloatPtr, rows L: Int, features K: Int, ldOut: Int? = nil) {
        let ld = ldOut ?? L
        for i in 0..<L {
            for j in i..<L {
                var s = 0.0
                for k in 0..<K { s += Double(x[i * K + k]) * Double(x[j * K + k]) }
                out[i * ld + j] = Float(s)
            }
        }
    }
}
