// A private run's DP-SGD state on each rank: the plan, the accountant (its history is the run's ε), the
// noise source (drawn on rank 0 only), the Poisson sampling of this rank's shard, and the clipped-sum engine;
// what a checkpoint saves of it and how a resume restores it.

import Foundation
import Models
import Privacy
import Tensors

/// What a checkpoint carries of a private run (in trainer.json).
public struct PrivacyCheckpointState: Codable, Equatable, Sendable {
    /// The accountant's history: the ε of the whole run, whatever the world size.
    public var accountant: AccountantState
    /// σ and q of the run's steps (kept when a resume changes the step budget).
    public var noiseMultiplier: Double
    public var sampleRate: Double
    public var delta: Double
    /// Rank 0's noise generator (seeded mode: its position, for exact resume).
    public var noise: NoiseSourceState
    /// False when the noise was seeded: the run's weights are NOT differentially private.
    public var isPrivate: Bool
    /// ε spent by the checkpoint's step.
    public var epsilon: Double

    enum CodingKeys: String, CodingKey {
        case accountant, noiseMultiplier = "noise_multiplier", sampleRate = "sample_rate", delta, noise
        case isPrivate = "private", epsilon
    }
}

/// DP-SGD on one rank.
final class PrivateTraining {
    private(set) var plan: PrivacyPlan
    private(set) var accountant: any PrivacyAccountant
    /// Rank 0 adds the step's noise from this (other ranks never draw).
    private(set) var noise: GaussianNoiseSource
    /// Seeded mode: the Poisson sample of (seed, step), the same on any world size.
    private let seededSampler: PoissonSampler?
    /// Secure mode: this rank's Bernoulli draws for its shard, from the OS CSPRNG.
    private let secureSampling: SecureRandomSource?
    let clipper: ClippedGradientSum
    private let noiseSeed: UInt64
    /// The last ε computed and the step count it was for (the accountant is not free: PRV composes numerically).
    private var cachedEpsilon: (steps: Int, value: Double)?

    init(plan: PrivacyPlan, model: Transformer, seed: UInt64) throws {
        self.plan = plan
        accountant = try makeAccountant(plan.accountant)
        noiseSeed = seed ^ 0x4450_5F4E_4F49_5345                                  // "DP_NOISE"
        switch plan.noise {
        case .secure:
            noise = .secure()
            seededSampler = nil
            secureSampling = SecureRandomSource()
        case .seeded:
            noise = .seeded(noiseSeed)
            seededSampler = try PoissonSampler(datasetSize: plan.datasetSize, sampleRate: plan.sampleRate, seed: seed ^ 0x4450_5F53_414D_504C)
            secureSampling = nil
        }
        clipper = ClippedGradientSum(model: model, maxNorm: plan.clip)
    }

    /// Whether the run's noise is private (secure mode).
    var isPrivate: Bool { noise.isPrivate }

    /// This rank's examples of step `step`: every index i ≡ rank (mod W) of 0..<N kept with probability q, so
    /// the union over ranks is a Poisson sample of the whole set with the accountant's q. Seeded: a hash of
    /// (seed, step, i), identical on any world size. Secure: fresh CSPRNG draws (the sample stays secret).
    func localSample(step: Int, rank: Int, worldSize: Int) throws -> [Int] {
        if let seededSampler { return try seededSampler.indices(step: step, rank: rank, worldSize: worldSize) }
        let source = secureSampling!, q = plan.sampleRate
        return stride(from: rank, to: plan.datasetSize, by: worldSize).filter { _ in Double(source.next() >> 11) * 0x1p-53 < q }
    }

    /// Records one completed step with the run's σ and q.
    func recordStep() throws { try accountant.step(noiseMultiplier: plan.noiseMultiplier, sampleRate: plan.sampleRate) }

    /// ε spent so far at the plan's δ.
    func spentEpsilon() throws -> Double {
        let steps = accountant.totalSteps
        guard steps > 0 else { return 0 }
        if let cached = cachedEpsilon, cached.steps == steps { return cached.value }
        do {
            let value = try accountant.epsilon(delta: plan.delta)
            cachedEpsilon = (steps, value)
            return value
        } catch let error as PrivacyError {
            throw TrainingError(message: "dp: the \(plan.accountant.rawValue) accountant failed after \(accountant.totalSteps) steps: \(error.description)")
        }
    }

    /// The state to save.
    func checkpointState() throws -> PrivacyCheckpointState {
        PrivacyCheckpointState(accountant: accountant.state, noiseMultiplier: plan.noiseMultiplier, sampleRate: plan.sampleRate,
                               delta: plan.delta, noise: noise.state, isPrivate: isPrivate, epsilon: try spentEpsilon())
    }

    /// Restores a checkpoint written after `completedSteps` steps: the accountant's history (so ε stays the
    /// whole run's, on any world size) and the noise generator. When σ was searched for and the step budget
    /// changed since, the run keeps its σ and q; the whole run's ε must still meet the target.
    /// - Throws: `RunConfigError` naming the key when the history does not fit the run or the budget is exceeded.
    func restore(_ saved: PrivacyCheckpointState, completedSteps: Int) throws {
        guard saved.accountant.mechanism == plan.accountant else {
            throw RunConfigError(key: "dp.accountant", message: "the checkpoint holds a \(saved.accountant.mechanism.rawValue) history; resume with dp.accountant: \(saved.accountant.mechanism.rawValue), or use a new outputDir")
        }
        do { accountant = try makeAccountant(plan.accountant, history: saved.accountant.history) } catch let error as PrivacyError {
            throw RunConfigError(key: "dp", message: "the checkpoint's privacy history cannot be restored: \(error.description)")
        }
        guard accountant.totalSteps == completedSteps else {
            throw RunConfigError(key: "dp", message: "the checkpoint's privacy history records \(accountant.totalSteps) steps but the checkpoint is at step \(completedSteps); it is damaged — resume from an earlier checkpoint or use a new outputDir")
        }
        guard saved.noise.mode == plan.noise else {
            throw RunConfigError(key: "dp.noise", message: "the run so far used \(saved.noise.mode.rawValue) noise; resume with dp.noise: \(saved.noise.mode.rawValue), or use a new outputDir")
        }
        if saved.noise.mode == .seeded {
            do { noise = try GaussianNoiseSource(restoring: saved.noise) } catch let error as PrivacyError {
                throw RunConfigError(key: "dp.noise", message: error.description)
            }
        }
        if saved.noiseMultiplier != plan.noiseMultiplier || saved.sampleRate != plan.sampleRate {
            guard plan.derivedNoiseMultiplier, saved.sampleRate == plan.sampleRate else {
                throw RunConfigError(key: "dp.noiseMultiplier", message: "the run so far used σ = \(saved.noiseMultiplier), q = \(saved.sampleRate); this config gives σ = \(plan.noiseMultiplier), q = \(plan.sampleRate) — restore them, or use a new outputDir")
            }
            plan.noiseMultiplier = saved.noiseMultiplier
        }
        var whole = accountant
        try whole.step(noiseMultiplier: plan.noiseMultiplier, sampleRate: plan.sampleRate, steps: max(0, plan.steps - completedSteps))
        let total = plan.noiseMultiplier == 0 ? Double.infinity : try whole.epsilon(delta: plan.delta)
        if let target = plan.targetEpsilon, !(total <= target * (1 + 1e-12)) {
            throw RunConfigError(key: "optimizer.maxSteps", message: "with σ = \(plan.noiseMultiplier) kept from the run so far, \(plan.steps) steps in all would spend ε = \(String(format: "%.4g", total)) > dp.epsilon = \(target); lower optimizer.maxSteps (or epochs) back, or raise dp.epsilon")
        }
        plan.plannedEpsilon = total
    }

    /// Adds the step's N(0, σ²C²) to the summed clipped gradients (rank 0 only, before the all-reduce).
    func addNoise(to gradients: FloatPtr, count: Int, rank: Int) {
        let std = NoisePlacement.rankZero.standardDeviation(noiseMultiplier: plan.noiseMultiplier, maxNorm: plan.clip, rank: rank, worldSize: 1)
        noise.addNoise(to: gradients, count: count, standardDeviation: std)
    }
}
