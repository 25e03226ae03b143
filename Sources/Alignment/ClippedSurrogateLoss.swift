// PPO's clipped policy and value losses with their gradients and TRL's statistics (ppo-dp.md §4):
//
//     ρ_t = exp(log π_t − log π_old,t)
//     policy loss = Σ_t m_t · max(−A_t·ρ_t, −A_t·clip(ρ_t, 1 − ε, 1 + ε)) / N
//     value loss  = ½ · Σ_t m_t · max((V_t − R_t)², (clip(V_t, V_old,t − ε_v, V_old,t + ε_v) − R_t)²) / N
//
// N is the number of valid tokens of the mini-batch (TRL's `masked_mean`); pass `normalizer` = the global count
// when a mini-batch is spread over ranks, so the summed gradients equal one rank's. Total = policy + vf_coef·value.
//
// Gradients follow PyTorch's autograd exactly: the branch of the max with the larger value takes the gradient, a
// tie splits it in halves, and clamp passes the gradient when its input lies inside the closed interval. Hence
// ∂/∂log π_t = −A_t·ρ_t/N on the unclipped branch and 0 when the clipped branch is strictly larger (then ρ is
// outside the interval); likewise ∂/∂V_t = (V_t − R_t)/N or 0.
//
// Statistics under TRL's names (means over valid tokens): `loss/policy_avg`, `policy/approxkl_avg`
// (½·mean((log ρ)²)), `policy/policykl_avg` (mean(−log ρ)), `policy/clipfrac_avg` (fraction where the clipped
// term is strictly larger), `val/ratio` (mean ρ); `loss/value_avg`, `val/clipfrac_avg`, `val/vpred`, `val/error`
// (mean (V − R)²). Entropy is not computed here.
//
// Ratio guard (TRL's `ratio_threshold`, default 10): a mini-batch whose mean ratio exceeds the threshold is skipped
// (TRL zeroes both losses). Check it BEFORE the loss, on the all-reduced ratio sum and count, so every rank skips
// the same mini-batch; `clippedPolicyLoss` throws `.ratioOverflow` if a ratio overflows a Double.

import Foundation

/// The clipped policy loss of a mini-batch, its gradient and statistics.
public struct ClippedPolicyLossResult: Sendable {
    /// Σ_t m_t·max(−Aρ, −A·clip(ρ)) / normalizer.
    public var loss: Double
    /// ∂loss/∂log π_t (0 at masked tokens).   // (N)
    public var dLogProbs: [Double]
    /// Number of valid tokens here (weights for averaging the metrics across ranks).
    public var tokenCount: Int
    /// Means over this call's valid tokens: `loss/policy_avg`, `policy/approxkl_avg`, `policy/policykl_avg`,
    /// `policy/clipfrac_avg`, `val/ratio`.
    public var metrics: [String: Double]
}

/// The clipped value loss of a mini-batch, its gradient and statistics.
public struct ClippedValueLossResult: Sendable {
    /// ½·Σ_t m_t·max((V − R)², (clip(V) − R)²) / normalizer.
    public var loss: Double
    /// ∂loss/∂V_t (0 at masked tokens).   // (N)
    public var dValues: [Double]
    /// Number of valid tokens here.
    public var tokenCount: Int
    /// Means over this call's valid tokens: `loss/value_avg`, `val/clipfrac_avg`, `val/vpred`, `val/error`.
    public var metrics: [String: Double]
}

/// The gradient of max(a, b) with respect to a shared input, given each branch's derivative: PyTorch's rule
/// (the larger branch; half of each on a tie).
@inline(__always)
private func maxBranchDerivative(_ a: Double, _ b: Double, _ da: Double, _ db: Double) -> Double {
    if a > b { return da }
    if b > a { return db }
    return 0.5 * (da + db)
}

/// The divisor of a masked mean: `normalizer` if given (must be > 0), else the local valid-token count.
private func resolveNormalizer(_ normalizer: Double?, validCount: Int, _ function: String) throws -> Double {
    if let normalizer {
        try requireParameter(normalizer, "\(function): normalizer", "a finite number > 0 (the mini-batch's valid-token count)") { $0 > 0 }
        return normalizer
    }
    guard validCount > 0 else { throw PolicyGradientError.noValidTokens(function: function) }
    return Double(validCount)
}

/// PPO's clipped surrogate policy loss and its gradient with respect to the new log-probs.
///
/// - Parameters:
///   - logProbs: log π_θ of the sampled tokens under the policy being trained.   // (N)
///   - oldLogProbs: log π_old of the same tokens at rollout time.               // (N)
///   - advantages: A_t (whitened or not; constants here).                      // (N)
///   - mask: valid tokens; nil means all.
///   - clipRange: ε (TRL `cliprange` 0.2; Safe-RLHF `clip_range_ratio` 0.2), ≥ 0.
///   - normalizer: the divisor N; nil means this call's valid-token count.
/// - Throws: `PolicyGradientError` for mismatched lengths, non-finite inputs, no valid token, a bad ε or normalizer,
///   or a ratio that overflows (`.ratioOverflow`; run `PPORatioGuard` first).
public func clippedPolicyLoss(logProbs: [Double], oldLogProbs: [Double], advantages: [Double], mask: [Bool]? = nil,
                              clipRange: Double, normalizer: Double? = nil) throws -> ClippedPolicyLossResult {
    let function = "clipped policy loss"
    try requireParameter(clipRange, "\(function): clipRange (ε)", "a finite number ≥ 0 (TRL uses 0.2)") { $0 >= 0 }
    let n = logProbs.count
    try requireCount(oldLogProbs, n, function, "oldLogProbs")
    try requireCount(advantages, n, function, "advantages")
    let mask = try resolveMask(mask, count: n, function)
    try requireFinite(logProbs, function, "logProbs")
    try requireFinite(oldLogProbs, function, "oldLogProbs")
    try requireFinite(advantages, function, "advantages")
    let validCount = mask.reduce(0) { $0 + ($1 ? 1 : 0) }
    guard validCount > 0 else { throw PolicyGradientError.noValidTokens(function: function) }
    let divisor = try resolveNormalizer(normalizer, validCount: validCount, function)

    let low = 1 - clipRange, high = 1 + clipRange
    var dLogProbs = [Double](repeating: 0, count: n)   // (N)
    var lossSum = 0.0, squaredLogRatioSum = 0.0, negativeLogRatioSum = 0.0, ratioSum = 0.0, clippedCount = 0
    for t in 0..<n where mask[t] {
        let logRatio = logProbs[t] - oldLogProbs[t]
        let ratio = exp(logRatio)
        guard ratio.isFinite else { throw PolicyGradientError.ratioOverflow(index: t, logRatio: logRatio) }
        let a = advantages[t]
        let clipped = min(max(ratio, low), high)
        let unclippedLoss = -a * ratio
        let clippedLoss = -a * clipped
        // d/dlog π of each branch: ρ' = ρ; the clamp passes the gradient inside [low, high].
        let dUnclipped = -a * ratio
        let dClipped = (ratio >= low && ratio <= high) ? -a * ratio : 0
        lossSum += max(unclippedLoss, clippedLoss)
        dLogProbs[t] = maxBranchDerivative(unclippedLoss, clippedLoss, dUnclipped, dClipped) / divisor
        if clippedLoss > unclippedLoss { clippedCount += 1 }
        squaredLogRatioSum += logRatio * logRatio
        negativeLogRatioSum -= logRatio
        ratioSum += ratio
    }
    let m = Double(validCount)
    let metrics: [String: Double] = [
        "loss/policy_avg": lossSum / m,
        "policy/approxkl_avg": 0.5 * squaredLogRatioSum / m,
        "policy/policykl_avg": negativeLogRatioSum / m,
        "policy/clipfrac_avg": Double(clippedCount) / m,
        "val/ratio": ratioSum / m,
    ]
    return ClippedPolicyLossResult(loss: lossSum / divisor, dLogProbs: dLogProbs, tokenCount: validCount, metrics: metrics)
}

/// PPO's clipped value loss and its gradient with respect to the new values.
///
/// - Parameters:
///   - values: V_θ at each token from the critic being trained.   // (N)
///   - oldValues: V_old at rollout time.                         // (N)
///   - returns: the targets R_t = A_t + V_old,t from GAE.          // (N)
///   - mask: valid tokens; nil means all.
///   - clipRange: ε_v (TRL `cliprange_value` 0.2; Safe-RLHF `clip_range_value` 5), ≥ 0.
///   - normalizer: the divisor N; nil means this call's valid-token count.
/// - Throws: `PolicyGradientError` for mismatched lengths, non-finite inputs, no valid token, a bad ε_v or normalizer.
public func clippedValueLoss(values: [Double], oldValues: [Double], returns: [Double], mask: [Bool]? = nil,
                             clipRange: Double, normalizer: Double? = nil) throws -> ClippedValueLossResult {
    let function = "clipped value loss"
    try requireParameter(clipRange, "\(function): clipRange (ε_v)", "a finite number ≥ 0 (TRL uses 0.2, Safe-RLHF 5)") { $0 >= 0 }
    let n = values.count
    try requireCount(oldValues, n, function, "oldValues")
    try requireCount(returns, n, function, "returns")
    let mask = try resolveMask(mask, count: n, function)
    try requireFinite(values, function, "values")
    try requireFinite(oldValues, function, "oldValues")
    try requireFinite(returns, function, "returns")
    let validCount = mask.reduce(0) { $0 + ($1 ? 1 : 0) }
    guard validCount > 0 else { throw PolicyGradientError.noValidTokens(function: function) }
    let divisor = try resolveNormalizer(normalizer, validCount: validCount, function)

    var dValues = [Double](repeating: 0, count: n)   // (N)
    var lossSum = 0.0, clippedCount = 0, valueSum = 0.0, errorSum = 0.0
    for t in 0..<n where mask[t] {
        let v = values[t], r = returns[t]
        let low = oldValues[t] - clipRange, high = oldValues[t] + clipRange
        let clipped = min(max(v, low), high)
        let unclippedLoss = (v - r) * (v - r)
        let clippedLoss = (clipped - r) * (clipped - r)
        // ½·d/dV of each branch: (V − R), and (clip(V) − R) while V lies inside [low, high].
        let dUnclipped = v - r
        let dClipped = (v >= low && v <= high) ? clipped - r : 0
        lossSum += 0.5 * max(unclippedLoss, clippedLoss)
        dValues[t] = maxBranchDerivative(unclippedLoss, clippedLoss, dUnclipped, dClipped) / divisor
        if clippedLoss > unclippedLoss { clippedCount += 1 }
        valueSum += v
        errorSum += unclippedLoss
    }
    let m = Double(validCount)
    let metrics: [String: Double] = [
        "loss/value_avg": lossSum / m,
        "val/clipfrac_avg": Double(clippedCount) / m,
        "val/vpred": valueSum / m,
        "val/error": errorSum / m,
    ]
    return ClippedValueLossResult(loss: lossSum / divisor, dValues: dValues, tokenCount: validCount, metrics: metrics)
}

/// TRL's guard against an exploding importance ratio: skip a mini-batch whose mean ρ exceeds `threshold`.
public struct PPORatioGuard: Sendable, Equatable, Codable {
    /// TRL's `ratio_threshold` (default 10).
    public var threshold: Double

    /// Creates a guard; throws `.invalidParameter` unless threshold > 1 and finite.
    public init(threshold: Double = 10) throws {
        try requireParameter(threshold, "ratio guard: threshold", "a finite number > 1 (TRL uses 10)") { $0 > 1 }
        self.threshold = threshold
    }

    /// [Σ ρ_t, n] over valid tokens: all-reduce (sum) across ranks, then call `skips(reduced:)`.
    /// A ratio that overflows contributes +∞, which the guard treats as exceeding any threshold.
    public static func ratioMoments(logProbs: [Double], oldLogProbs: [Double], mask: [Bool]? = nil) throws -> [Double] {
        let function = "ratio guard"
        try requireCount(oldLogProbs, logProbs.count, function, "oldLogProbs")
        let mask = try resolveMask(mask, count: logProbs.count, function)
        try requireFinite(logProbs, function, "logProbs")
        try requireFinite(oldLogProbs, function, "oldLogProbs")
        var sum = 0.0, count = 0.0
        for t in logProbs.indices where mask[t] {
            sum += exp(logProbs[t] - oldLogProbs[t])
            count += 1
        }
        return [sum, count]
    }

    /// True when the mean ratio Σρ/n of the (all-reduced) moments exceeds the threshold or is not a number.
    /// Throws `.noValidTokens` when n = 0.
    public func skips(reduced: [Double]) throws -> Bool {
        try requireCount(reduced, 2, "ratio guard", "reduced ratio moments [sum, count]")
        guard reduced[1] > 0 else { throw PolicyGradientError.noValidTokens(function: "ratio guard") }
        return skips(meanRatio: reduced[0] / reduced[1])
    }

    /// True when `meanRatio` exceeds the threshold or is NaN.
    public func skips(meanRatio: Double) -> Bool { !(meanRatio <= threshold) }
}
