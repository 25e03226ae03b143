// MoCAN / PeCAN pseudo-preference labels for stage-2 DPO (algorithms.md §1.4).
//
// For a pair (y0, y1) with rewards r_j and utilities g_j (MoCAN: reward-model score and negated cost; PeCAN: the
// log-ratios h_j and s_j), the combined reward is w_j = r_j + λᵀg_j and the label is drawn once:
//
//     P(y1 ≻ y0) = σ( scale · (w_1 − w_0) ),   I ∼ Bernoulli(P),   chosen = y_I
//
// `scale` = 1 reproduces the official code for both variants; PeCAN's β-consistent target uses scale = β.

import Foundation

/// A sampled pseudo-preference: the probability that y1 is preferred and the drawn label.
public struct PseudoLabel: Sendable, Equatable, Codable {
    /// P(y1 ≻ y0) = σ(scale·((r1 + λᵀg1) − (r0 + λᵀg0))).
    public var probability: Double
    /// The Bernoulli draw I: true means y1 is chosen and y0 rejected.
    public var prefersSecond: Bool

    /// Creates a label.
    public init(probability: Double, prefersSecond: Bool) {
        self.probability = probability
        self.prefersSecond = prefersSecond
    }

    /// Draws I ∼ Bernoulli(probability) from `rng` (one 53-bit uniform per call).
    public static func draw<G: RandomNumberGenerator>(probability: Double, rng: inout G) -> PseudoLabel {
        let u = Double(rng.next() >> 11) * 0x1p-53
        return PseudoLabel(probability: probability, prefersSecond: u < probability)
    }
}

/// P(y1 ≻ y0) = σ(scale·((r1 + λᵀg1) − (r0 + λᵀg0))) for m constraints, computed without overflow.
public func pseudoLabelProbability(r0: Double, g0: [Double], r1: Double, g1: [Double], lambda: [Double],
                                   scale: Double = 1) -> Double {
    precondition(g0.count == lambda.count && g1.count == lambda.count,
                 "pseudoLabelProbability: \(lambda.count) multipliers but \(g0.count) and \(g1.count) utilities")
    var margin = r1 - r0
    for i in 0..<lambda.count { margin += lambda[i] * (g1[i] - g0[i]) }
    return pseudoLabelSigmoid(scale * margin)
}

/// P(y1 ≻ y0) for one constraint.
public func pseudoLabelProbability(r0: Double, g0: Double, r1: Double, g1: Double, lambda: Double,
                                   scale: Double = 1) -> Double {
    pseudoLabelProbability(r0: r0, g0: [g0], r1: r1, g1: [g1], lambda: [lambda], scale: scale)
}

/// Draws the label I ∼ Bernoulli(P(y1 ≻ y0)) from `rng` (one 53-bit uniform per call) for m constraints.
public func pseudoLabel<G: RandomNumberGenerator>(r0: Double, g0: [Double], r1: Double, g1: [Double], lambda: [Double],
                                                  scale: Double = 1, rng: inout G) -> PseudoLabel {
    PseudoLabel.draw(probability: pseudoLabelProbability(r0: r0, g0: g0, r1: r1, g1: g1, lambda: lambda, scale: scale), rng: &rng)
}

/// Draws the label I ∼ Bernoulli(P(y1 ≻ y0)) for one constraint.
public func pseudoLabel<G: RandomNumberGenerator>(r0: Double, g0: Double, r1: Double, g1: Double, lambda: Double,
                                                  scale: Double = 1, rng: inout G) -> PseudoLabel {
    pseudoLabel(r0: r0, g0: [g0], r1: r1, g1: [g1], lambda: [lambda], scale: scale, rng: &rng)
}

/// σ(z) = 1 / (1 + e^{−z}) without overflow for large |z|.
private func pseudoLabelSigmoid(_ z: Double) -> Double {
    if z >= 0 { return 1 / (1 + exp(-z)) }
    let e = exp(z)
    return e / (1 + e)
}
