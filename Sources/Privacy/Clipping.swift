// Per-example clipping of DP-SGD (Abadi et al. 2016, as Opacus' DPOptimizer): each example's gradient,
// over all trainable parameters jointly, is scaled by min(1, C/(‖g_i‖ + 1e-6)), then the scaled gradients
// are summed. Legend: B examples, P parameters (flattened).

import Foundation
import Tensors

public enum PerExampleClipping {
    /// Opacus adds this to the norm before dividing (so a zero gradient gets factor 1, not a division by 0).
    public static let normStabilizer = 1e-6

    /// min(1, C/(‖g‖ + 1e-6)).
    public static func clipFactor(norm: Double, maxNorm: Double) -> Double {
        min(1, maxNorm / (norm + normStabilizer))
    }

    /// The joint L2 norm of one example's gradient from the squared norms of its parameter groups.
    public static func jointNorm(squaredNorms: [Double]) -> Double { squaredNorms.reduce(0, +).squareRoot() }

    /// Clip factors of B examples from their joint squared norms (B).
    public static func clipFactors(squaredNorms: [Double], maxNorm: Double) -> [Double] {
        squaredNorms.map { clipFactor(norm: $0.squareRoot(), maxNorm: maxNorm) }
    }

    /// out (P) += Σ_b c_b · g_b for materialised per-example gradients (B, P), through sgemm
    /// (a 1 × B by B × P product).
    public static func accumulateClippedSum(into out: FloatPtr, perExample gradients: ConstFloatPtr,
                                            factors: [Double], parameters P: Int) {
        let B = factors.count
        guard B > 0, P > 0 else { return }
        let c = factors.map(Float.init)                             // (1, B)
        c.withUnsafeBufferPointer { cp in
            Matmul.backward(dinp: out, dweight: nil, dout: cp.baseAddress!, inp: gradients, weight: gradients,
                            M: 1, N: B, K: P)
        }
    }

    /// Naive reference of `accumulateClippedSum` (in Double).
    public static func accumulateClippedSumReference(into out: FloatPtr, perExample gradients: ConstFloatPtr,
                                                     factors: [Double], parameters P: Int) {
        for p in 0..<P {
            var s = 0.0
            for (b, c) in factors.enumerated() { s += c * Double(gradients[b * P + p]) }
            out[p] += Float(s)
        }
    }

    /// Squared L2 norms of the B rows of per-example gradients (B, P), in Double.
    public static func squaredRowNorms(_ gradients: ConstFloatPtr, examples B: Int, parameters P: Int) -> [Double] {
        (0..<B).map { b in
            var s = 0.0
            for p in 0..<P { let g = Double(gradients[b * P + p]); s += g * g }
            return s
        }
    }
}

/// Where the step's Gaussian noise is added when the gradient sum is all-reduced over W ranks.
public enum NoisePlacement: String, Codable, Sendable {
    /// N(0, σ²C²) added once, on rank 0, before the all-reduce (Opacus' DistributedDPOptimizer).
    case rankZero
    /// N(0, σ²C²/W) on every rank, from independent generators; the all-reduced sum carries N(0, σ²C²).
    case perRankShares

    /// The noise standard deviation this rank adds: σC on rank 0 (else 0) or σC/√W on every rank.
    public func standardDeviation(noiseMultiplier: Double, maxNorm: Double, rank: Int, worldSize: Int) -> Double {
        let full = noiseMultiplier * maxNorm
        switch self {
        case .rankZero: return rank == 0 ? full : 0
        case .perRankShares: return full / Double(max(worldSize, 1)).squareRoot()
        }
    }
}
