// The `dp` section of a run config: differentially private training by DP-SGD (Abadi et al. 2016, as
// Opacus runs it; docs/privacy.md). Off unless `epsilon` or `noiseMultiplier` is given.
//
//   dp:
//     epsilon: 4                # target ε of the whole run (σ is searched for, unless noiseMultiplier is given)
//     delta: 1.0e-5             # default 1/N for N training examples
//     clip: 1.0                 # per-example clipping norm C
//     accountant: prv           # rdp | prv | gdp
//     expectedBatchSize: 256    # q·N (default optimizer.globalBatchSize); or sampleRate: q
//     physicalBatchSize: 8      # examples per forward/backward (default optimizer.microBatchSize)
//     noise: secure             # secure (OS CSPRNG) | seeded (reproducible, NOT private: tests and exact resume)

import Foundation
import Privacy

/// DP-SGD settings as the user wrote them; `PrivacyPlan` resolves them against the data.
public struct PrivacyConfig: Codable, Equatable, Sendable {
    /// Target ε of the whole run at δ. Alone: the noise multiplier is the accountant's σ search for the
    /// configured steps and sample rate. With `noiseMultiplier`: the run refuses to start if σ does not meet it.
    public var epsilon: Double?
    /// δ; nil: 1/N for the N training examples.
    public var delta: Double?
    /// The per-example clipping norm C; nil: 1.
    public var clip: Double?
    /// The noise multiplier σ (noise std σ·C on the summed clipped gradients); nil: derived from `epsilon`.
    public var noiseMultiplier: Double?
    /// The accountant that reports ε and sizes σ; nil: prv (numerical composition, what the DP alignment paper used).
    public var accountant: AccountantMechanism?
    /// The Poisson sample rate q; nil: expectedBatchSize / N.
    public var sampleRate: Double?
    /// The expected logical batch size q·N (instead of sampleRate); nil: optimizer.globalBatchSize.
    public var expectedBatchSize: Double?
    /// Examples per forward/backward pass (the physical batch; a logical batch is cut into these); nil: optimizer.microBatchSize.
    public var physicalBatchSize: Int?
    /// Where the noise comes from: secure (default) or seeded (reproducible; not private).
    public var noise: NoiseSourceState.Mode?
    /// Clip the noised mean gradient's global norm to this before AdamW (post-processing; nil: no clipping).
    /// `optimizer.maxGradNorm` does not apply to private runs.
    public var maxGradNorm: Double?
    /// A split file (`dualign private-split`): this run trains only on its stage's rows, and the file must
    /// hold no row in two stages. nil: no split.
    public var split: String?
    /// The stage of `split` this run is; nil: the task name (sft, dpo, reward, cost).
    public var stage: String?

    public init() {}

    /// Whether DP-SGD is on: a target ε or a noise multiplier is given.
    public var isEnabled: Bool { epsilon != nil || noiseMultiplier != nil }

    /// The resolved clipping norm.
    public var clipNorm: Double { clip ?? 1 }
    /// The resolved accountant.
    public var mechanism: AccountantMechanism { accountant ?? .prv }
    /// The resolved noise mode.
    public var noiseMode: NoiseSourceState.Mode { noise ?? .secure }

    /// A value for every key (the loader's list of known keys).
    static var everyKey: PrivacyConfig {
        var c = PrivacyConfig()
        c.epsilon = 1; c.delta = 1e-5; c.clip = 1; c.noiseMultiplier = 1; c.accountant = .prv; c.sampleRate = 0.01
        c.expectedBatchSize = 1; c.physicalBatchSize = 1; c.noise = .secure; c.maxGradNorm = 1; c.split = ""; c.stage = ""
        return c
    }

    /// Checks each key alone; the error names it. Checks against the data come with `PrivacyPlan.resolve`.
    public func validate() throws {
        func fail(_ key: String, _ message: String) -> RunConfigError { RunConfigError(key: "dp." + key, message: message) }
        // A split without ε or σ is allowed: a non-private run on its stage's rows (the ε = ∞ baseline of a private pipeline).
        try validateSplit()
        guard isEnabled else {
            let set = [("delta", delta != nil), ("clip", clip != nil), ("accountant", accountant != nil), ("sampleRate", sampleRate != nil),
                       ("expectedBatchSize", expectedBatchSize != nil), ("physicalBatchSize", physicalBatchSize != nil),
                       ("noise", noise != nil), ("maxGradNorm", maxGradNorm != nil)]
                .filter(\.1).map { "dp." + $0.0 }
            if !set.isEmpty {
                throw RunConfigError(key: "dp.epsilon", message: "\(set.joined(separator: ", ")) is set but neither dp.epsilon nor "
                                     + "dp.noiseMultiplier: give a target ε (or a noise multiplier) to train privately, or remove the dp section")
            }
            return
        }
        if let e = epsilon, !(e > 0 && e.isFinite) {
            throw fail("epsilon", "must be a finite number > 0, got \(e); for a non-private run remove the dp section")
        }
        if let d = delta, !(d > 0 && d < 1) { throw fail("delta", "must lie in (0, 1), got \(d); the usual choice is 1/N (the default)") }
        if let c = clip, !(c > 0 && c.isFinite) { throw fail("clip", "the clipping norm C must be a finite number > 0, got \(c)") }
        if let s = noiseMultiplier, !(s >= 0 && s.isFinite) {
            throw fail("noiseMultiplier", "σ must be a finite number ≥ 0 (the noise std is σ·C), got \(s)")
        }
        if sampleRate != nil && expectedBatchSize != nil {
            throw fail("sampleRate", "give dp.sampleRate or dp.expectedBatchSize (= q·N), not both")
        }
        if let q = sampleRate, !(q > 0 && q <= 1) {
            throw fail("sampleRate", "q must lie in (0, 1], got \(q): the expected batch size divided by the number of training examples")
        }
        if let b = expectedBatchSize, !(b > 0 && b.isFinite) { throw fail("expectedBatchSize", "must be > 0, got \(b)") }
        if let p = physicalBatchSize, p < 1 { throw fail("physicalBatchSize", "must be at least 1, got \(p)") }
        if let m = maxGradNorm, !(m > 0) { throw fail("maxGradNorm", "must be positive, got \(m); leave it out for no clipping after the noise") }
    }

    /// Checks `split` and `stage`.
    func validateSplit() throws {
        func fail(_ key: String, _ message: String) -> RunConfigError { RunConfigError(key: "dp." + key, message: message) }
        if let s = split, s.isEmpty { throw fail("split", "name a split file written by `dualign private-split`") }
        if let s = stage {
            if s.isEmpty { throw fail("stage", "name a stage of the split file") }
            if split == nil { throw fail("stage", "a stage needs dp.split (the split file it is a stage of)") }
        }
    }
}
