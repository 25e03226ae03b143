// Overflow-free logistic functions shared by the losses (algorithms.md §0).

import Foundation

/// log σ(z) computed as `min(z, 0) − log1p(exp(−|z|))`, which never overflows.
func logSigmoid(_ z: Double) -> Double {
    min(z, 0) - log1p(exp(-abs(z)))
}

/// σ(z) = 1 / (1 + e^{−z}), evaluated without overflow for large |z|.
func sigmoid(_ z: Double) -> Double {
    if z >= 0 {
        return 1 / (1 + exp(-z))
    }
    let e = exp(z)
    return e / (1 + e)
}
