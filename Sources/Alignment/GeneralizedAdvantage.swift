// Generalized advantage estimation (Schulman et al. 2016) per sequence, as TRL and Safe-RLHF compute it
// (ppo-dp.md §4):
//
//     δ_t = r_t + γ·V_{t+1} − V_t        (V after the last token = 0: the episode ends there)
//     A_t = δ_t + γ·λ·A_{t+1}            (computed backwards, A after the last token = 0)
//     R_t = A_t + V_t                    (the value targets)
//
// TRL's defaults are γ = 1, λ = 0.95; Safe-RLHF uses the same. Each sequence is independent.

import Foundation

/// Advantages and returns of a batch, flat in the layout's order.
public struct AdvantageEstimate: Sendable, Equatable {
    /// A_t.   // (N)
    public var advantages: [Double]
    /// R_t = A_t + V_t.   // (N)
    public var returns: [Double]
}

/// Computes GAE advantages and returns backwards over every sequence of a ragged batch.
///
/// - Parameters:
///   - rewards: the per-token reward stream (e.g. from `tokenRewards`).   // (N)
///   - values: the critic's V_t at the same tokens (the rollout's values). // (N)
///   - layout: the sequences' lengths.
///   - gamma: discount γ ∈ [0, 1].
///   - lambda: GAE λ ∈ [0, 1].
/// - Throws: `PolicyGradientError` for mismatched lengths, non-finite inputs or γ, λ outside [0, 1].
public func generalizedAdvantages(rewards: [Double], values: [Double], layout: SequenceLayout,
                                  gamma: Double = 1, lambda: Double = 0.95) throws -> AdvantageEstimate {
    let function = "GAE"
    try requireParameter(gamma, "GAE: gamma", "in [0, 1] (TRL and Safe-RLHF use 1)") { $0 >= 0 && $0 <= 1 }
    try requireParameter(lambda, "GAE: lambda", "in [0, 1] (TRL and Safe-RLHF use 0.95)") { $0 >= 0 && $0 <= 1 }
    try requireCount(rewards, layout.tokenCount, function, "rewards")
    try requireCount(values, layout.tokenCount, function, "values")
    try requireFinite(rewards, function, "rewards")
    try requireFinite(values, function, "values")

    var advantages = [Double](repeating: 0, count: layout.tokenCount)   // (N)
    var returns = [Double](repeating: 0, count: layout.tokenCount)      // (N)
    for s in 0..<layout.sequenceCount {
        let range = layout.range(of: s)
        var nextValue = 0.0, nextAdvantage = 0.0
        for t in range.reversed() {
            let delta = rewards[t] + gamma * nextValue - values[t]
            let a = delta + gamma * lambda * nextAdvantage
            advantages[t] = a
            returns[t] = a + values[t]
            nextValue = values[t]
            nextAdvantage = a
        }
    }
    return AdvantageEstimate(advantages: advantages, returns: returns)
}

/// Per-sequence form of `generalizedAdvantages`: one array of rewards and values per sequence.
public func generalizedAdvantages(rewards: [[Double]], values: [[Double]], gamma: Double = 1,
                                  lambda: Double = 0.95) throws -> (advantages: [[Double]], returns: [[Double]]) {
    let layout = SequenceLayout(of: rewards)
    try requireCount(values, rewards.count, "GAE", "values (sequences)")
    for (i, v) in values.enumerated() { try requireCount(v, rewards[i].count, "GAE", "values[\(i)]") }
    let estimate = try generalizedAdvantages(rewards: rewards.flatMap { $0 }, values: values.flatMap { $0 },
                                             layout: layout, gamma: gamma, lambda: lambda)
    return (try layout.split(estimate.advantages), try layout.split(estimate.returns))
}
