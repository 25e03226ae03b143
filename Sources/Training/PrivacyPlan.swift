// A private run's resolved DP-SGD settings (from the `dp` section and the data) and the budget check that
// refuses a run whose (ε, δ) cannot be met, naming what to change.

import Foundation
import Privacy

/// The numbers a private run trains with.
public struct PrivacyPlan: Equatable, Sendable {
    /// N: training examples (the Poisson sample is drawn from 0..<N every step).
    public var datasetSize: Int
    /// q.
    public var sampleRate: Double
    /// Optimizer steps of the whole run.
    public var steps: Int
    public var delta: Double
    /// C.
    public var clip: Double
    /// σ.
    public var noiseMultiplier: Double
    /// Whether σ was searched for from `targetEpsilon` (rather than given).
    public var derivedNoiseMultiplier: Bool
    public var accountant: AccountantMechanism
    public var noise: NoiseSourceState.Mode
    public var physicalBatchSize: Int
    public var targetEpsilon: Double?
    public var maxGradNorm: Double?
    /// The ε the whole run spends by its last step (at δ, by the accountant).
    public var plannedEpsilon: Double

    /// q·N: the divisor of the noised gradient sum.
    public var expectedBatchSize: Double { sampleRate * Double(datasetSize) }

    /// Resolves `config.dp` against N training examples: q, δ, the steps (maxSteps, or int(epochs / q) as
    /// Opacus counts them), σ (given, or the accountant's search for the target ε), and the ε the run spends.
    /// - Throws: `RunConfigError` naming the key to change when the target cannot be met or a value is out of range.
    public static func resolve(_ config: RunConfig, datasetSize N: Int) throws -> PrivacyPlan {
        let dp = config.dp
        precondition(dp.isEnabled, "PrivacyPlan.resolve needs dp.epsilon or dp.noiseMultiplier")
        let q: Double
        if let rate = dp.sampleRate { q = rate } else {
            let expected = dp.expectedBatchSize ?? Double(config.optimizer.globalBatchSize)
            guard expected <= Double(N) else {
                throw RunConfigError(key: dp.expectedBatchSize != nil ? "dp.expectedBatchSize" : "optimizer.globalBatchSize",
                                     message: "an expected batch of \(expected) examples is more than the \(N) training examples; lower it")
            }
            q = expected / Double(N)
        }
        let delta = dp.delta ?? 1 / Double(N)
        guard delta < 1 else {
            throw RunConfigError(key: "dp.delta", message: "the default δ = 1/N is 1 for a single training example; add data or give dp.delta")
        }
        let steps: Int
        if config.optimizer.maxSteps > 0 { steps = config.optimizer.maxSteps } else {
            steps = try NoiseMultiplierSearch.steps(epochs: config.optimizer.epochs, sampleRate: q)
            guard steps >= 1 else {
                throw RunConfigError(key: "optimizer.epochs", message: "\(config.optimizer.epochs) epochs at q = \(q) are no step (int(epochs / q) = 0); raise it or give optimizer.maxSteps")
            }
        }
        let mechanism = dp.mechanism
        func epsilon(_ sigma: Double, _ steps: Int) throws -> Double {
            do {
                return try makeAccountant(mechanism, history: [PrivacySegment(noiseMultiplier: sigma, sampleRate: q, steps: steps)])
                    .epsilon(delta: delta)
            } catch let error as PrivacyError {
                throw RunConfigError(key: "dp.accountant", message: "the \(mechanism.rawValue) accountant cannot compute ε for σ = \(sigma), q = \(q), \(steps) steps, δ = \(delta): \(error.message) Use another accountant (rdp is a valid, looser bound).")
            }
        }
        func searchSigma(_ target: Double) throws -> Double {
            do {
                return try NoiseMultiplierSearch.noiseMultiplier(targetEpsilon: target, delta: delta, sampleRate: q, steps: steps, mechanism: mechanism)
            } catch let error as PrivacyError where error.kind == .budgetUnreachable {
                throw RunConfigError(key: "dp.epsilon", message: "ε = \(target) at δ = \(delta) cannot be met with sample rate q = \(q) (expected batch \(q * Double(N)) of \(N)) over \(steps) steps, whatever the noise; raise dp.epsilon or dp.delta, or lower dp.expectedBatchSize (or dp.sampleRate) or optimizer.maxSteps / optimizer.epochs")
            } catch let error as PrivacyError {
                throw RunConfigError(key: "dp.accountant", message: "the σ search failed: \(error.message)")
            }
        }
        let sigma: Double
        let derived = dp.noiseMultiplier == nil
        if let given = dp.noiseMultiplier { sigma = given } else { sigma = try searchSigma(dp.epsilon!) }
        let planned = sigma == 0 ? Double.infinity : try epsilon(sigma, steps)
        if let target = dp.epsilon, !derived, !(planned <= target) {
            let needed = try searchSigma(target)
            throw RunConfigError(key: "dp.noiseMultiplier", message: "σ = \(sigma) spends ε = \(String(format: "%.4g", planned)) over \(steps) steps at q = \(q), δ = \(delta), above dp.epsilon = \(target); raise dp.noiseMultiplier to \(needed) (the \(mechanism.rawValue) accountant's σ for ε = \(target)), lower optimizer.maxSteps or the sample rate, or leave dp.noiseMultiplier out to let the run choose σ")
        }
        return PrivacyPlan(datasetSize: N, sampleRate: q, steps: steps, delta: delta, clip: dp.clipNorm, noiseMultiplier: sigma,
                           derivedNoiseMultiplier: derived, accountant: mechanism, noise: dp.noiseMode,
                           physicalBatchSize: dp.physicalBatchSize ?? config.optimizer.microBatchSize, targetEpsilon: dp.epsilon,
                           maxGradNorm: dp.maxGradNorm, plannedEpsilon: planned)
    }

    /// One line for the run log.
    public var summary: String {
        let target = targetEpsilon.map { String(format: " (target %.4g)", $0) } ?? ""
        return String(format: "dp: DP-SGD, %d steps, q = %.6g (expected batch %.4g of %d), σ = %.6g%@, C = %g, δ = %.3g; the %@ accountant gives ε = %.4g%@ for the whole run",
                      steps, sampleRate, expectedBatchSize, datasetSize, noiseMultiplier, derivedNoiseMultiplier ? " (searched)" : "", clip, delta,
                      accountant.rawValue, plannedEpsilon, target)
    }
}
