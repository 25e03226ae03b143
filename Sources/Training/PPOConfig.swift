// The `ppo` section of a run config: rollouts (prompts per batch, sampling), the per-token reward (KL
// coefficient, controller, estimator, clamps), GAE, whitening, the clipped losses and their guard, and where
// the value function lives. The optimizer section's globalBatchSize is PPO's mini-batch (episodes per
// optimizer step); `ppoEpochs` passes over each rollout batch take rolloutBatchSize / globalBatchSize
// mini-batches each. Defaults follow TRL (ppo-dp.md §4); Safe-RLHF's PPO-Lagrangian values are in
// docs/ppo.md and the recipe.

import Foundation
import Alignment

/// How advantages are normalised before the policy loss.
public enum PPOWhitening: String, Codable, CaseIterable, Sendable {
    /// Over every response token of the rollout batch, all ranks (TRL's `masked_whiten`, moments all-reduced).
    case batch
    /// Each episode by its own moments (keeps an episode's advantages independent of the others').
    case sequence
    /// Not at all (Safe-RLHF).
    case none
}

/// Where PPO's value function lives.
public enum PPOCriticKind: String, Codable, CaseIterable, Sendable {
    /// Value heads on the policy's trunk (TRL's `AutoModelForCausalLMWithValueHead`), trained by the same step
    /// with weight `valueCoefficient`.
    case head
    /// A separate critic model per stream (Safe-RLHF; TRL's current `value_model`), initialised from a score
    /// model (its score head becomes the value head) and trained with its own AdamW.
    case model
}

/// PPO's settings (`ppo:` in a run config).
public struct PPOConfig: Codable, Equatable, Sendable {
    /// The reward model (a score head; `final.gguf` of `dualign train reward`) of `dualign train ppo`;
    /// `dualign align ppo-lag` uses `align.rewardModel` and `align.costModel`.
    public var rewardModel: String = ""
    /// Prompts (episodes) per rollout batch over all ranks (TRL `batch_size`).
    public var rolloutBatchSize: Int = 64
    /// Passes over each rollout batch (TRL `ppo_epochs` / `num_ppo_epochs`).
    public var ppoEpochs: Int = 4
    /// New tokens per response at most.
    public var maxNewTokens: Int = 64
    /// Sampling: temperature, top-k (0: all), top-p (1: all). Log-probs are the policy's own (temperature 1).
    public var temperature: Double = 1.0
    public var topK: Int = 0
    public var topP: Double = 1.0
    /// Sequences decoded (and scored) together on a rank.
    public var generationBatchSize: Int = 16
    /// Token ids that end a response besides the chat template's end of turn and the tokenizer's EOS.
    public var stopTokenIDs: [Int]?
    /// β: the fixed KL coefficient, or the adaptive controller's initial value (current TRL 0.05; 2023 TRL 0.2).
    public var klCoefficient: Double = 0.05
    /// `fixed` or TRL's `adaptive` controller (β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon)).
    public var klController: KLController.Kind = .fixed
    public var klTarget: Double = 6
    public var klHorizon: Double = 10_000
    /// The per-token KL estimate: k1 = log π − log π_ref (TRL's default, Safe-RLHF) or k3.
    public var klEstimator: KLEstimator = .k1
    /// Clamp every token's reward to ±scoreClip after the score is added (Safe-RLHF `clip_range_score` 50); nil: none.
    public var scoreClip: Double?
    /// Subtracted from the score of a response that no stop token ended (TRL `missing_eos_penalty`); nil: none.
    public var missingEOSPenalty: Double?
    /// GAE's γ and λ.
    public var gamma: Double = 1
    public var gaeLambda: Double = 0.95
    public var whitening: PPOWhitening = .batch
    /// ε of the clipped policy loss (TRL `cliprange`, Safe-RLHF `clip_range_ratio`).
    public var clipRange: Double = 0.2
    /// ε_v of the clipped value loss (TRL `cliprange_value` 0.2, Safe-RLHF `clip_range_value` 5).
    public var clipRangeValue: Double = 0.2
    /// Weight of the value loss in the policy's step when the critic is a head on the trunk (TRL `vf_coef`).
    public var valueCoefficient: Double = 0.1
    /// Skip a mini-batch whose mean ratio exceeds this (TRL `ratio_threshold`).
    public var ratioThreshold: Double = 10
    /// Value heads on the policy trunk (`head`) or separate critic models (`model`).
    public var critic: PPOCriticKind = .head
    /// A separate critic's initial model (nil: the reward model; PPO-Lagrangian's cost critic starts from the cost model).
    public var criticModel: String?
    /// A separate critic's learning rate (constant; Safe-RLHF's critic_lr 5e-6).
    public var criticLearningRate: Float = 5e-6

    public init() {}

    /// Checks the fields against the optimizer's batch layout; errors name the key and what to do.
    public func validate(optimizer o: OptimizerConfig, data: DataConfig) throws {
        func fail(_ key: String, _ m: String) -> RunConfigError { RunConfigError(key: "ppo.\(key)", message: m) }
        if rolloutBatchSize < 1 { throw fail("rolloutBatchSize", "must be at least 1") }
        if rolloutBatchSize % o.globalBatchSize != 0 {
            throw fail("rolloutBatchSize", "\(rolloutBatchSize) episodes do not split into mini-batches of optimizer.globalBatchSize \(o.globalBatchSize); use a multiple of \(o.globalBatchSize)")
        }
        if ppoEpochs < 1 { throw fail("ppoEpochs", "must be at least 1") }
        if maxNewTokens < 1 { throw fail("maxNewTokens", "must be at least 1") }
        if data.maxPromptLength + maxNewTokens > data.maxLength {
            throw fail("maxNewTokens", "data.maxPromptLength \(data.maxPromptLength) + maxNewTokens \(maxNewTokens) exceeds data.maxLength \(data.maxLength); raise maxLength or lower one of them")
        }
        if !(temperature > 0 && temperature.isFinite) { throw fail("temperature", "must be > 0, got \(temperature)") }
        if topK < 0 { throw fail("topK", "must be ≥ 0 (0: all tokens)") }
        if !(topP > 0 && topP <= 1) { throw fail("topP", "must be in (0, 1]") }
        if generationBatchSize < 1 { throw fail("generationBatchSize", "must be at least 1") }
        if !(klCoefficient >= 0 && klCoefficient.isFinite) { throw fail("klCoefficient", "must be ≥ 0, got \(klCoefficient)") }
        if klController == .adaptive {
            if !(klCoefficient > 0) { throw fail("klCoefficient", "the adaptive controller needs an initial β > 0") }
            if !(klTarget > 0 && klTarget.isFinite) { throw fail("klTarget", "must be > 0 (TRL uses 6)") }
            if !(klHorizon > 0 && klHorizon.isFinite) { throw fail("klHorizon", "must be > 0 (TRL uses 10000)") }
        }
        if let c = scoreClip, !(c > 0 && c.isFinite) { throw fail("scoreClip", "must be > 0 (Safe-RLHF uses 50) or absent") }
        if let p = missingEOSPenalty, !p.isFinite { throw fail("missingEOSPenalty", "must be a finite number or absent") }
        if !(gamma >= 0 && gamma <= 1) { throw fail("gamma", "must be in [0, 1] (TRL and Safe-RLHF use 1)") }
        if !(gaeLambda >= 0 && gaeLambda <= 1) { throw fail("gaeLambda", "must be in [0, 1] (TRL and Safe-RLHF use 0.95)") }
        if !(clipRange >= 0 && clipRange.isFinite) { throw fail("clipRange", "must be ≥ 0 (TRL uses 0.2)") }
        if !(clipRangeValue >= 0 && clipRangeValue.isFinite) { throw fail("clipRangeValue", "must be ≥ 0 (TRL 0.2, Safe-RLHF 5)") }
        if !(valueCoefficient >= 0 && valueCoefficient.isFinite) { throw fail("valueCoefficient", "must be ≥ 0 (TRL uses 0.1)") }
        if !(ratioThreshold > 1 && ratioThreshold.isFinite) { throw fail("ratioThreshold", "must be > 1 (TRL uses 10)") }
        if !(criticLearningRate > 0) { throw fail("criticLearningRate", "must be > 0 (Safe-RLHF uses 5e-6)") }
    }

    /// Optimizer steps taken on each rollout batch: ppoEpochs × rolloutBatchSize / globalBatchSize.
    public func stepsPerRollout(miniBatch: Int) -> Int { ppoEpochs * (rolloutBatchSize / miniBatch) }
}
