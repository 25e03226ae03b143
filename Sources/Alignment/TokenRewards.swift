// Per-token rewards of PPO for language models: a KL penalty on every response token plus the score-model
// output on the last one (ppo-dp.md §4; algorithms.md §5.5 for the Safe-RLHF cost stream).
//
//     reward stream (TRL, Safe-RLHF):  r_t = −β·k_t + 1[t = last]·score
//     cost stream   (Safe-RLHF):       c_t = +β·k_t + 1[t = last]·cost
//     optional clamp (Safe-RLHF `clip_range_score`, 50):  r_t ← clamp(r_t, −clip, +clip), after the score is added
//
// with the per-token KL estimate k_t at the sampled token:
//     k1 = log π − log π_ref                       (TRL's default; Safe-RLHF's only choice)
//     k3 = (ρ − 1) − log ρ,  ρ = π_ref / π          (TRL `kl_estimator: k3`; ≥ 0, unbiased, lower variance)
//
// The penalty carries no gradient: it enters the advantages, which the policy loss treats as constants.

import Foundation

/// Which per-token estimate of KL(π‖π_ref) the penalty uses.
public enum KLEstimator: String, Codable, CaseIterable, Sendable {
    /// k1 = log π − log π_ref.
    case k1
    /// k3 = (ρ − 1) − log ρ with ρ = π_ref/π, evaluated as expm1(log ρ) − log ρ.
    case k3

    /// The estimate at one sampled token.
    public func estimate(logProb: Double, referenceLogProb: Double) -> Double {
        switch self {
        case .k1:
            return logProb - referenceLogProb
        case .k3:
            let logRatio = referenceLogProb - logProb
            return expm1(logRatio) - logRatio
        }
    }
}

/// Which stream to build: the reward (penalised by KL) or Safe-RLHF's cost (KL added).
public enum TokenRewardStream: String, Codable, CaseIterable, Sendable {
    /// r_t = −β·k_t, plus the reward-model score at the last token.
    case reward
    /// c_t = +β·k_t, plus the cost-model score at the last token.
    case cost
}

/// The KL coefficient, estimator and optional clamp of the per-token rewards.
public struct TokenRewardConfig: Codable, Equatable, Sendable {
    /// β (TRL `kl_coef` / the KL controller's value; Safe-RLHF `kl_coeff`); must be ≥ 0.
    public var klCoefficient: Double
    /// The per-token KL estimate.
    public var estimator: KLEstimator
    /// Clamp every token's reward to ±`scoreClip` (Safe-RLHF `clip_range_score` = 50); nil for none (TRL).
    public var scoreClip: Double?

    /// Creates a configuration (TRL's behaviour when `scoreClip` is nil).
    public init(klCoefficient: Double, estimator: KLEstimator = .k1, scoreClip: Double? = nil) {
        self.klCoefficient = klCoefficient
        self.estimator = estimator
        self.scoreClip = scoreClip
    }

    /// Throws `.invalidParameter` for a negative or non-finite β or a non-positive clamp.
    public func validate() throws {
        try requireParameter(klCoefficient, "token rewards: klCoefficient (β)", "a finite number ≥ 0 (e.g. 0.05)") { $0 >= 0 }
        if let scoreClip {
            try requireParameter(scoreClip, "token rewards: scoreClip", "a finite number > 0 (Safe-RLHF uses 50) or absent") { $0 > 0 }
        }
    }
}

/// Per-token rewards of a rollout batch and the statistics TRL logs about them.
public struct TokenRewards: Sendable {
    /// The reward (or cost) stream, flat in the layout's order.   // (N)
    public var rewards: [Double]
    /// The per-token KL estimate k_t.                               // (N)
    public var kl: [Double]
    /// Σ_t k_t of each sequence (TRL feeds their mean to the adaptive KL controller).  // (S)
    public var klPerSequence: [Double]
    /// Means over sequences. Reward stream: `objective/kl`, `objective/non_score_reward` (Σ_t −β·k_t),
    /// `objective/scores`, `objective/rlhf_reward` (scores + non-score reward). Cost stream: `objective/kl`,
    /// `objective/costs`, `objective/cost_with_kl_penalty` (Σ_t c_t after the clamp).
    public var metrics: [String: Double]
}

/// Builds the per-token reward (or cost) stream of a batch of sampled responses.
///
/// - Parameters:
///   - logProbs: log π of each sampled response token under the rollout policy.   // (N)
///   - referenceLogProbs: log π_ref of the same tokens.                            // (N)
///   - scores: the score model's output for each sequence (reward or cost).       // (S)
///   - layout: the sequences' lengths; every sequence needs at least one token.
///   - config: β, the KL estimator and the optional clamp.
///   - stream: `.reward` (−β·k) or `.cost` (+β·k).
/// - Throws: `PolicyGradientError` for mismatched lengths, non-finite values, an empty sequence or a bad config.
public func tokenRewards(logProbs: [Double], referenceLogProbs: [Double], scores: [Double], layout: SequenceLayout,
                         config: TokenRewardConfig, stream: TokenRewardStream = .reward) throws -> TokenRewards {
    let function = "token rewards"
    try config.validate()
    try requireCount(logProbs, layout.tokenCount, function, "logProbs")
    try requireCount(referenceLogProbs, layout.tokenCount, function, "referenceLogProbs")
    try requireCount(scores, layout.sequenceCount, function, "scores")
    try requireFinite(logProbs, function, "logProbs")
    try requireFinite(referenceLogProbs, function, "referenceLogProbs")
    try requireFinite(scores, function, "scores")
    guard layout.sequenceCount > 0 else { throw PolicyGradientError.noValidTokens(function: function) }

    let beta = config.klCoefficient
    let sign: Double = stream == .reward ? -1 : 1
    var rewards = [Double](repeating: 0, count: layout.tokenCount)   // (N)
    var kl = [Double](repeating: 0, count: layout.tokenCount)        // (N)
    var klPerSequence = [Double](repeating: 0, count: layout.sequenceCount)  // (S)
    var penaltySum = 0.0, streamSum = 0.0

    for s in 0..<layout.sequenceCount {
        let range = layout.range(of: s)
        guard let last = range.last else { throw PolicyGradientError.emptySequence(function: function, index: s) }
        for t in range {
            let k = config.estimator.estimate(logProb: logProbs[t], referenceLogProb: referenceLogProbs[t])
            kl[t] = k
            klPerSequence[s] += k
            rewards[t] = sign * beta * k
            penaltySum += sign * beta * k
        }
        rewards[last] += scores[s]
        if let clip = config.scoreClip {
            for t in range { rewards[t] = min(max(rewards[t], -clip), clip) }
        }
        for t in range { streamSum += rewards[t] }
    }

    let n = Double(layout.sequenceCount)
    let meanScore = scores.reduce(0, +) / n
    var metrics: [String: Double] = ["objective/kl": klPerSequence.reduce(0, +) / n]
    switch stream {
    case .reward:
        metrics["objective/non_score_reward"] = penaltySum / n
        metrics["objective/scores"] = meanScore
        metrics["objective/rlhf_reward"] = meanScore + penaltySum / n
    case .cost:
        metrics["objective/costs"] = meanScore
        metrics["objective/cost_with_kl_penalty"] = streamSum / n
    }
    return TokenRewards(rewards: rewards, kl: kl, klPerSequence: klPerSequence, metrics: metrics)
}

/// Per-sequence form of `tokenRewards`: one array of token log-probs per response.
public func tokenRewards(logProbs: [[Double]], referenceLogProbs: [[Double]], scores: [Double],
                         config: TokenRewardConfig, stream: TokenRewardStream = .reward) throws -> [[Double]] {
    let layout = SequenceLayout(of: logProbs)
    try requireCount(referenceLogProbs, logProbs.count, "token rewards", "referenceLogProbs (sequences)")
    for (i, ref) in referenceLogProbs.enumerated() {
        try requireCount(ref, logProbs[i].count, "token rewards", "referenceLogProbs[\(i)]")
    }
    let result = try tokenRewards(logProbs: logProbs.flatMap { $0 }, referenceLogProbs: referenceLogProbs.flatMap { $0 },
                                  scores: scores, layout: layout, config: config, stream: stream)
    return try layout.split(result.rewards)
}
