// The `dpRLHF` section of a run config: the stages of `dualign align dp-rlhf` (algorithms.md §3.1), each with its
// share of the private data (disjoint, so each stage spends the whole dp.epsilon: parallel composition), its
// step budget, learning rate and expected batch. The rest (model, data, LoRA, dp, ppo) comes from the run config.
//
//   dpRLHF:
//     sft:    {fraction: 0.4, maxSteps: 40, learningRate: 3.0e-4, expectedBatchSize: 64}
//     reward: {fraction: 0.3, maxSteps: 40, learningRate: 2.0e-4, expectedBatchSize: 64}
//     ppo:    {fraction: 0.3, maxSteps: 20, learningRate: 1.0e-4, expectedBatchSize: 32}
//     splitSeed: 0
//     rewardModel: ""        # a public reward model instead of stage 2 (the paper's no-human-in-the-loop case)

import Foundation

/// One private stage: its fraction of the data's prompts, steps, learning rate and expected batch q·N (the
/// global batch when dp is off, the ε = ∞ baseline).
public struct PrivateStageSettings: Codable, Equatable, Sendable {
    public var fraction: Double
    public var maxSteps: Int
    public var learningRate: Float
    public var expectedBatchSize: Int

    public init(fraction: Double, maxSteps: Int, learningRate: Float, expectedBatchSize: Int) {
        self.fraction = fraction; self.maxSteps = maxSteps; self.learningRate = learningRate; self.expectedBatchSize = expectedBatchSize
    }
}

/// Settings of `dualign align dp-rlhf`.
public struct PrivateRLHFSettings: Codable, Equatable, Sendable {
    public var sft = PrivateStageSettings(fraction: 0.4, maxSteps: 40, learningRate: 3e-4, expectedBatchSize: 64)
    public var reward = PrivateStageSettings(fraction: 0.3, maxSteps: 40, learningRate: 2e-4, expectedBatchSize: 64)
    public var ppo = PrivateStageSettings(fraction: 0.3, maxSteps: 20, learningRate: 1e-4, expectedBatchSize: 32)
    /// Seed of the split's assignment hash.
    public var splitSeed: UInt64 = 0
    /// A reward model trained on public data: no private reward stage (its share goes unused). "": stage 2 trains one.
    public var rewardModel: String = ""

    public init() {}

    /// The stages in order with their settings and names in the split file.
    public var stages: [(name: String, settings: PrivateStageSettings)] { [("sft", sft), ("reward", reward), ("ppo", ppo)] }

    /// Checks every stage; errors name the key.
    public func validate() throws {
        for (name, s) in stages {
            func fail(_ key: String, _ m: String) -> RunConfigError { RunConfigError(key: "dpRLHF.\(name).\(key)", message: m) }
            if !(s.fraction > 0 && s.fraction <= 1) { throw fail("fraction", "must be in (0, 1], got \(s.fraction)") }
            if s.maxSteps < 1 { throw fail("maxSteps", "must be at least 1") }
            if !(s.learningRate > 0) { throw fail("learningRate", "must be positive") }
            if s.expectedBatchSize < 1 { throw fail("expectedBatchSize", "must be at least 1") }
        }
        let total = stages.map(\.settings.fraction).reduce(0, +)
        if total > 1 + 1e-9 {
            throw RunConfigError(key: "dpRLHF.sft.fraction", message: "the stages' fractions add up to \(total) > 1: a row would be in two stages; lower them")
        }
    }
}
