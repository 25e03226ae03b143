// Safe-RLHF reward-model (Bradley–Terry) and cost-model losses on scalar end scores (algorithms.md §5.4).
//
// Both follow the sequence-wise losses of the Safe-RLHF trainers: a pairwise term per pair plus
// `regularization · mean(score²)` over all 2N scores of the batch, which equals the per-pair mean of
// `regularization · (a² + b²) / 2`.

import Foundation

/// The mean reward-model loss over a batch of pairs, its gradients and metrics.
public struct RewardModelLossResult: Sendable {
    /// The loss averaged over pairs.
    public var loss: Double
    /// Each pair's own loss (their mean is `loss`).
    public var losses: [Double]
    /// ∂(mean loss)/∂(score of pair i's better answer).
    public var dBetter: [Double]
    /// ∂(mean loss)/∂(score of pair i's worse answer).
    public var dWorse: [Double]
    /// `accuracy`: fraction of pairs whose better answer scores strictly higher.
    public var metrics: [String: Double]
}

/// The mean cost-model loss over a batch of pairs, its gradients and metrics.
public struct CostModelLossResult: Sendable {
    /// The loss averaged over pairs.
    public var loss: Double
    /// Each pair's own loss (their mean is `loss`).
    public var losses: [Double]
    /// ∂(mean loss)/∂(cost of pair i's safer answer).
    public var dSafer: [Double]
    /// ∂(mean loss)/∂(cost of pair i's unsafer answer).
    public var dUnsafer: [Double]
    /// `accuracy`: fraction of pairs whose unsafer answer costs strictly more;
    /// `safety_accuracy`: fraction of all 2N answers whose cost sign matches the label (safe ⇔ C < 0).
    public var metrics: [String: Double]
}

/// Why a cost-model batch was rejected.
public enum CostModelLabelError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// Pair `pairIndex` has its "safer" answer labelled unsafe while its "unsafer" answer is labelled safe.
    case saferAnswerUnsafe(pairIndex: Int)

    public var description: String {
        switch self {
        case .saferAnswerUnsafe(let pairIndex):
            return "cost model: pair \(pairIndex) has its safer answer labelled unsafe while the other answer is "
                + "labelled safe; fix the dataset's safer-response index or safety labels for that pair."
        }
    }

    public var errorDescription: String? { description }
}

/// Safe-RLHF reward-model loss: mean over pairs of −log σ(R_better − R_worse) + regularization · (R_better² + R_worse²)/2.
public func rewardModelLoss(better: [Double], worse: [Double], regularization: Double) -> RewardModelLossResult {
    let pairCount = better.count
    precondition(pairCount > 0, "rewardModelLoss: no pairs")
    precondition(worse.count == pairCount, "rewardModelLoss: \(pairCount) better but \(worse.count) worse scores")
    let scale = 1 / Double(pairCount)

    var lossSum = 0.0
    var losses = [Double](repeating: 0, count: pairCount)
    var dBetter = [Double](repeating: 0, count: pairCount)
    var dWorse = [Double](repeating: 0, count: pairCount)
    var correctCount = 0
    for i in 0..<pairCount {
        let margin = better[i] - worse[i]
        losses[i] = -logSigmoid(margin) + regularization * (better[i] * better[i] + worse[i] * worse[i]) / 2
        lossSum += losses[i]
        let pull = sigmoid(-margin)
        dBetter[i] = (-pull + regularization * better[i]) * scale
        dWorse[i] = (pull + regularization * worse[i]) * scale
        if margin > 0 { correctCount += 1 }
    }
    return RewardModelLossResult(loss: lossSum * scale, losses: losses, dBetter: dBetter, dWorse: dWorse,
                                 metrics: ["accuracy": Double(correctCount) * scale])
}

/// Safe-RLHF cost-model loss, mean over pairs of
/// −log σ(C_unsafer − C_safer) − log σ(−s_safer·C_safer) − log σ(−s_unsafer·C_unsafer) + regularization · (C_safer² + C_unsafer²)/2,
/// with safety sign s = +1 for a safe answer and −1 for an unsafe one. A pair with `ranked[i] == false`
/// (two labelled answers of which neither is less harmful, e.g. a helpful answer and an over-refusal of a
/// benign request) trains the two sign terms only; `accuracy` counts ranked pairs (`rankedPairs` of them) and
/// `unranked_safety_accuracy` is the sign accuracy over the unranked pairs' answers.
///
/// Throws `CostModelLabelError.saferAnswerUnsafe` for the first pair whose safer answer is unsafe while the other is safe.
public func costModelLoss(
    safer: [Double],
    unsafer: [Double],
    saferIsSafe: [Bool],
    unsaferIsSafe: [Bool],
    ranked: [Bool]? = nil,
    regularization: Double
) throws -> CostModelLossResult {
    let pairCount = safer.count
    precondition(pairCount > 0, "costModelLoss: no pairs")
    precondition(unsafer.count == pairCount && saferIsSafe.count == pairCount && unsaferIsSafe.count == pairCount,
                 "costModelLoss: mismatched lengths: \(pairCount) safer, \(unsafer.count) unsafer, "
                    + "\(saferIsSafe.count) safer labels, \(unsaferIsSafe.count) unsafer labels")
    precondition(ranked == nil || ranked!.count == pairCount, "costModelLoss: \(ranked?.count ?? 0) ranked flags for \(pairCount) pairs")
    for i in 0..<pairCount where !saferIsSafe[i] && unsaferIsSafe[i] {
        throw CostModelLabelError.saferAnswerUnsafe(pairIndex: i)
    }
    let scale = 1 / Double(pairCount)

    var lossSum = 0.0
    var losses = [Double](repeating: 0, count: pairCount)
    var dSafer = [Double](repeating: 0, count: pairCount)
    var dUnsafer = [Double](repeating: 0, count: pairCount)
    var correctCount = 0, rankedCount = 0
    var correctSignCount = 0, unrankedCorrectSignCount = 0
    for i in 0..<pairCount {
        let isRanked = ranked?[i] ?? true
        let saferCost = safer[i]
        let unsaferCost = unsafer[i]
        let saferSign: Double = saferIsSafe[i] ? 1 : -1
        let unsaferSign: Double = unsaferIsSafe[i] ? 1 : -1
        let margin = unsaferCost - saferCost

        losses[i] = (isRanked ? -logSigmoid(margin) : 0)
            - logSigmoid(-saferSign * saferCost)
            - logSigmoid(-unsaferSign * unsaferCost)
            + regularization * (saferCost * saferCost + unsaferCost * unsaferCost) / 2
        lossSum += losses[i]

        // d/dx[−log σ(x)] = −σ(−x), chained through each argument.
        let pull = isRanked ? sigmoid(-margin) : 0
        dSafer[i] = (pull + saferSign * sigmoid(saferSign * saferCost) + regularization * saferCost) * scale
        dUnsafer[i] = (-pull + unsaferSign * sigmoid(unsaferSign * unsaferCost) + regularization * unsaferCost) * scale

        if isRanked { rankedCount += 1; if margin > 0 { correctCount += 1 } }
        let correctSigns = (saferSign * saferCost < 0 ? 1 : 0) + (unsaferSign * unsaferCost < 0 ? 1 : 0)
        correctSignCount += correctSigns
        if !isRanked { unrankedCorrectSignCount += correctSigns }
    }
    let unrankedCount = pairCount - rankedCount
    var metrics = [
        "accuracy": rankedCount > 0 ? Double(correctCount) / Double(rankedCount) : 0,
        "safety_accuracy": Double(correctSignCount) * scale / 2,
        "rankedPairs": Double(rankedCount),
    ]
    // Sign accuracy over the unranked pairs' answers alone (both safe: e.g. help and over-refusal of benign requests).
    if unrankedCount > 0 { metrics["unranked_safety_accuracy"] = Double(unrankedCorrectSignCount) / Double(2 * unrankedCount) }
    return CostModelLossResult(loss: lossSum * scale, losses: losses, dSafer: dSafer, dUnsafer: dUnsafer, metrics: metrics)
}
