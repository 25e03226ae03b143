// The noise multiplier σ that reaches a target (ε, δ) after a number of steps (Opacus'
// `accountants.utils.get_noise_multiplier`): double σ from 10 until ε(σ) ≤ target, then bisect.

import Foundation

public enum NoiseMultiplierSearch {
    /// Opacus gives up past this σ ("the privacy budget is too low").
    public static let maximumNoiseMultiplier = 1e6

    /// The steps of `epochs` epochs at sample rate q, as Opacus counts them: int(epochs / q) (truncated).
    public static func steps(epochs: Double, sampleRate: Double) throws -> Int {
        try PrivacyError.checkSampleRate(sampleRate)
        guard sampleRate > 0, epochs > 0, epochs.isFinite else {
            throw PrivacyError(.invalidParameter, field: "epochs",
                               "epochs = \(epochs) and q = \(sampleRate) must both be > 0 to count steps.")
        }
        let steps = (epochs / sampleRate).rounded(.towardZero)
        guard steps < Double(Int32.max) else {
            throw PrivacyError(.invalidParameter, field: "epochs", "\(epochs) epochs at q = \(sampleRate) are \(steps) steps; too many.")
        }
        return Int(steps)
    }

    /// The σ whose ε after `steps` steps at rate q is at most `targetEpsilon` and within `tolerance` of it:
    /// σ_high = 20, 40, … until ε(σ_high) ≤ target, then bisection on [0, σ_high] until target − ε(σ_high) ≤
    /// tolerance; returns σ_high (the private end).
    /// - Throws: `.budgetUnreachable` when even σ > 10⁶ does not reach the target (the target is too small
    ///   for this δ, q and number of steps); accountant errors (e.g. PRV at a mesh it cannot represent).
    public static func noiseMultiplier(targetEpsilon: Double, delta: Double, sampleRate: Double, steps: Int,
                                       mechanism: AccountantMechanism, tolerance: Double = 0.01) throws -> Double {
        guard targetEpsilon > 0, targetEpsilon.isFinite else {
            throw PrivacyError(.invalidParameter, field: "epsilon", "target ε = \(targetEpsilon) must be a finite number > 0.")
        }
        try PrivacyError.checkDelta(delta)
        try PrivacyError.checkSampleRate(sampleRate)
        guard sampleRate > 0 else {
            throw PrivacyError(.invalidParameter, field: "sampleRate", "q = 0 touches no data: any σ meets any ε; give q > 0.")
        }
        guard steps >= 1 else {
            throw PrivacyError(.invalidParameter, field: "steps", "steps = \(steps) must be at least 1.")
        }
        guard tolerance > 0 else {
            throw PrivacyError(.invalidParameter, field: "tolerance", "the ε tolerance \(tolerance) must be > 0 (Opacus: 0.01).")
        }
        func epsilon(_ sigma: Double) throws -> Double {
            let accountant = try makeAccountant(mechanism, history: [
                PrivacySegment(noiseMultiplier: sigma, sampleRate: sampleRate, steps: steps)])
            return try accountant.epsilon(delta: delta)
        }

        var sigmaLow = 0.0, sigmaHigh = 10.0
        var epsilonHigh = Double.infinity
        while epsilonHigh > targetEpsilon {
            sigmaHigh *= 2
            epsilonHigh = try epsilon(sigmaHigh)
            if sigmaHigh > maximumNoiseMultiplier {
                throw PrivacyError(.budgetUnreachable, field: "epsilon",
                                   "ε = \(targetEpsilon) at δ = \(delta) cannot be met with q = \(sampleRate) over \(steps) steps "
                                   + "even with σ = \(sigmaHigh) (ε = \(epsilonHigh)); raise ε or δ, or lower the sample rate or the "
                                   + "number of steps.")
            }
        }
        var iterations = 0
        while targetEpsilon - epsilonHigh > tolerance {
            let sigma = (sigmaLow + sigmaHigh) / 2
            let eps = try epsilon(sigma)
            if eps < targetEpsilon { sigmaHigh = sigma; epsilonHigh = eps } else { sigmaLow = sigma }
            iterations += 1
            if iterations > 200 {
                throw PrivacyError(.numericalFailure, field: "noiseMultiplier",
                                   "the σ bisection did not reach tolerance \(tolerance) (ε(σ) = \(epsilonHigh) at σ = \(sigmaHigh)); "
                                   + "use a larger tolerance or another accountant.")
            }
        }
        return sigmaHigh
    }
}
