// The Gaussian-DP accountant (Opacus' `GaussianAccountant` with Poisson sampling): the central-limit
// μ of the subsampled Gaussian, then ε from the μ-GDP ↔ (ε, δ) duality. An approximation, not a bound.

import Foundation

/// μ-GDP accountant. For one segment μ = q·√(T·(e^{1/σ²} − 1)) (Bu et al. 2020, Poisson sampling);
/// segments compose as μ-GDP mechanisms do, μ² = Σ μ_k² (Opacus' GaussianAccountant refuses a change of
/// σ or q; Dualign composes them).
public struct GDPAccountant: PrivacyAccountant, Equatable {
    public static let mechanism = AccountantMechanism.gdp
    public private(set) var history: [PrivacySegment]

    public init(history: [PrivacySegment]) throws { self.history = try validatedHistory(history) }

    public mutating func step(noiseMultiplier: Double, sampleRate: Double, steps: Int) throws {
        try appendSteps(&history, noiseMultiplier: noiseMultiplier, sampleRate: sampleRate, steps: steps)
    }

    /// μ of one segment: q·√(T·(e^{1/σ²} − 1)); ∞ when σ = 0 and q > 0.
    public static func mu(_ segment: PrivacySegment) -> Double {
        if segment.sampleRate == 0 || segment.steps == 0 { return 0 }
        if segment.noiseMultiplier == 0 { return .infinity }
        let s = segment.noiseMultiplier
        return segment.sampleRate * (Double(segment.steps) * expm1(1 / (s * s))).squareRoot()
    }

    /// μ of the whole history: √(Σ μ_k²).
    public var mu: Double { history.reduce(0.0) { $0 + pow(Self.mu($1), 2) }.squareRoot() }

    /// δ(ε) of μ-GDP: Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2) (the second term in log space, so large ε do not overflow).
    public static func delta(epsilon: Double, mu: Double) -> Double {
        SpecialFunctions.normalCDF(-epsilon / mu + mu / 2)
            - exp(epsilon + SpecialFunctions.logNormalCDF(-epsilon / mu - mu / 2))
    }

    /// The ε with δ(ε) = δ for μ-GDP, by bisection (δ decreases in ε) to full precision: 0 when already
    /// δ(0) ≤ δ, ∞ when μ = ∞. Opacus brackets [0, 500] and fails beyond; the bracket here doubles until
    /// it holds the root (up to 10⁶, past which ε is reported as ∞).
    public static func epsilon(mu: Double, delta: Double) -> Double {
        if mu == 0 { return 0 }
        if mu.isInfinite { return .infinity }
        var lo = 0.0, hi = 500.0
        if Self.delta(epsilon: lo, mu: mu) <= delta { return 0 }
        while Self.delta(epsilon: hi, mu: mu) > delta {
            lo = hi
            hi *= 2
            if hi > 1e6 { return .infinity }
        }
        while hi - lo > 1e-13 * max(1, hi) {
            let mid = 0.5 * (lo + hi)
            if Self.delta(epsilon: mid, mu: mu) > delta { lo = mid } else { hi = mid }
        }
        return 0.5 * (lo + hi)
    }

    public func epsilon(delta: Double) throws -> Double {
        try PrivacyError.checkDelta(delta)
        return Self.epsilon(mu: mu, delta: delta)
    }

    public init(from decoder: Decoder) throws { try self.init(state: try AccountantState(from: decoder)) }

    public func encode(to encoder: Encoder) throws { try state.encode(to: encoder) }
}
