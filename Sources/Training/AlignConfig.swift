// The `align` section of a run config: what the constrained-alignment pipelines (MoCAN, PeCAN,
// SACPO, primal–dual) sample, score, solve and relabel. The policy, data, optimizer and DPO settings
// of their DPO stages come from the rest of the run config.

import Foundation
import Datasets

/// A constrained-alignment method (`dualign align <method>`).
public enum AlignMethod: String, Codable, CaseIterable, Sendable {
    case mocan, pecan, sacpo
    case primalDual = "primal-dual"
    /// Safe-RLHF's PPO-Lagrangian (the `ppo` section sets PPO; λ settings below).
    case ppoLagrangian = "ppo-lag"
    case sail
    /// The DP alignment paper's pipeline: DP-SFT → DP reward model → DP-PPO on disjoint splits (the `dpRLHF` section).
    case dpRLHF = "dp-rlhf"
}

/// Which SACPO stage runs first (Remark 2 of the paper: both orders are valid).
public enum SACPOOrder: String, Codable, CaseIterable, Sendable {
    case helpfulnessFirst = "helpfulness-first"
    case safetyFirst = "safety-first"
}

/// Settings of `dualign align`.
public struct AlignConfig: Codable, Equatable, Sendable {
    /// Set by the subcommand.
    public var method: AlignMethod = .mocan
    /// Score-head model of helpfulness (`final.gguf` of `dualign train reward`).
    public var rewardModel: String = ""
    /// Score-head model of harm (`final.gguf` of `dualign train cost`); safety utility g = −cost.
    public var costModel: String = ""
    /// Prompts the reference model answers for the dual (nil: the distinct prompts of `data.datasets`).
    public var prompts: [DatasetSpec]?
    /// Prompts used at most for the dual (the first ones, in data order).
    public var maxPrompts: Int = 256
    /// K: responses sampled per prompt.
    public var samplesPerPrompt: Int = 8
    public var maxNewTokens: Int = 64
    public var temperature: Double = 1.0
    public var topP: Double = 1.0
    /// Seed of the samples (each (prompt, sample) has its own generator, so ranks do not matter).
    public var sampleSeed: UInt64 = 42
    /// Required improvement of E[g] over the reference (relative margin b); exclusive with `threshold`.
    public var margin: Double?
    /// Required absolute E[g] (threshold); exclusive with `margin`.
    public var threshold: Double?
    /// The margin as a fraction in (0, 1) of the largest the samples allow (mean over prompts of the best
    /// sample's g, minus the reference mean): a scale-free choice when the cost model's scale is unknown.
    public var marginFraction: Double?
    /// A chosen multiplier: skips the dual solve and reports the margin it guarantees.
    public var lambda: Double?
    /// Seed of the Bernoulli pseudo-labels (sampled once, recorded in the labelled pairs).
    public var labelSeed: UInt64 = 0
    /// PeCAN stage-2 label scale: 1 as the official code (targets π_ref·exp((h+λs)/β)); β as the dual implies.
    public var labelLogitScale: Double = 1.0
    /// SACPO: β/λ of the safety stage; a list runs a sweep, one model per value.
    public var betaOverLambda: [Double] = [0.05]
    public var order: SACPOOrder = .helpfulnessFirst
    /// P-SACPO: merge weights q of θ(q) = (1 − q)·θ_stage1 + q·θ_stage2 (stage 2 with the smallest β/λ); empty: none.
    public var mergeWeights: [Double] = []
    /// Primal–dual: rounds of (sample, score, λ update, relabel, DPO steps).
    public var rounds: Int = 3
    /// Primal–dual: prompts sampled from the current policy per round (K samples each), for the cost estimate.
    public var promptsPerRound: Int = 32
    /// Primal–dual: Safe-RLHF multiplier rule, log λ ← log λ + lr·(J_C − d)·λ, λ ≤ lambdaMax.
    public var lambdaInit: Double = 1.0
    public var lambdaLearningRate: Double = 0.1
    public var lambdaMax: Double = 5.0
    /// Primal–dual and PPO-Lagrangian: the cost budget d of E[cost] ≤ d.
    public var costThreshold: Double = 0
    /// PPO-Lagrangian: J_C is the mean of the last costWindow episode costs (Safe-RLHF `episode_cost_window_size`).
    public var costWindow: Int = 128
    /// Sequences decoded or scored together.
    public var batchSize: Int = 16
    /// Longest scored sequence (prompt + response tokens).
    public var scoreMaxLength: Int = 256

    public init() {}

    /// Checks the fields `method` uses; errors name the key.
    public func validate() throws {
        func fail(_ key: String, _ m: String) -> RunConfigError { RunConfigError(key: "align.\(key)", message: m) }
        let needsScores = method == .mocan || method == .primalDual || method == .ppoLagrangian
        if needsScores {
            if rewardModel.isEmpty { throw fail("rewardModel", "give the reward model (final.gguf of `dualign train reward`)") }
            if costModel.isEmpty { throw fail("costModel", "give the cost model (final.gguf of `dualign train cost`)") }
        }
        if method == .mocan || method == .pecan {
            let bounds = [margin, threshold, marginFraction].compactMap { $0 }.count
            if lambda == nil && bounds != 1 {
                throw fail("margin", "give exactly one of margin (improvement over the reference), threshold (absolute) or marginFraction (of the largest feasible margin), or a fixed lambda")
            }
            if let f = marginFraction, !(f > 0 && f < 1) { throw fail("marginFraction", "must be in (0, 1), got \(f)") }
            if let lambda, !(lambda >= 0 && lambda.isFinite) { throw fail("lambda", "must be finite and ≥ 0, got \(lambda)") }
        }
        if maxPrompts < 1 { throw fail("maxPrompts", "must be at least 1") }
        if samplesPerPrompt < 2 { throw fail("samplesPerPrompt", "must be at least 2 (the dual needs several samples per prompt)") }
        if maxNewTokens < 1 { throw fail("maxNewTokens", "must be at least 1") }
        if !(temperature > 0) { throw fail("temperature", "must be > 0: the dual needs samples from the reference distribution") }
        if !(topP > 0 && topP <= 1) { throw fail("topP", "must be in (0, 1]") }
        if !(labelLogitScale > 0) { throw fail("labelLogitScale", "must be > 0 (1: official code, β: the dual's target)") }
        if method == .sacpo {
            if betaOverLambda.isEmpty { throw fail("betaOverLambda", "list at least one β/λ value, e.g. [0.05]") }
            if let bad = betaOverLambda.first(where: { !($0 > 0 && $0.isFinite) }) { throw fail("betaOverLambda", "values must be > 0, got \(bad)") }
            if let bad = mergeWeights.first(where: { !($0 >= 0 && $0 <= 1) }) { throw fail("mergeWeights", "values must be in [0, 1], got \(bad)") }
        }
        if method == .ppoLagrangian && costWindow < 1 { throw fail("costWindow", "must be at least 1 (Safe-RLHF uses 128)") }
        if method == .primalDual || method == .ppoLagrangian {
            if method == .primalDual && rounds < 1 { throw fail("rounds", "must be at least 1") }
            if method == .primalDual && promptsPerRound < 1 { throw fail("promptsPerRound", "must be at least 1") }
            if !(lambdaInit > 0) { throw fail("lambdaInit", "must be > 0 (λ is updated in log space)") }
            if !(lambdaMax > 0) { throw fail("lambdaMax", "must be > 0") }
            if !(lambdaLearningRate >= 0) { throw fail("lambdaLearningRate", "must be ≥ 0") }
        }
        if batchSize < 1 { throw fail("batchSize", "must be at least 1") }
        if scoreMaxLength < 16 { throw fail("scoreMaxLength", "must be at least 16 tokens") }
    }
}
