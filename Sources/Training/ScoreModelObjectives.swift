// Reward and cost models (Safe-RLHF's sequence-wise losses) on preference pairs: the score head read
// at the last token of each response, row 0..<m the pair's chosen (better / safer) response and row
// m..<2m its rejected one.

import Foundation
import Alignment
import Datasets

/// The Bradley–Terry reward-model loss on (better, worse) pairs.
public final class RewardObjective: PairObjective {
    public init(config: RunConfig, data: TrainingData, padToken: Int32) {
        super.init(config: config, data: data, padToken: padToken, bothResponses: true)
    }

    public override var request: ModelRequest { .scores }
    public override var evalMetricKeys: Set<String>? { ["accuracy"] }

    public override func evaluate(_ batch: MicroBatch, outputs: ModelOutputs, split: ExampleSplit) throws -> ObjectiveResult {
        let m = batch.examples.count
        let s = outputs.scores.map(Double.init)
        let better = Array(s[0..<m]), worse = Array(s[m...])
        let r = rewardModelLoss(better: better, worse: worse, regularization: config.scoreModel.regularization)
        var metrics = r.metrics.mapValues { $0 * Double(m) }
        metrics["rewards/chosen"] = better.reduce(0, +)
        metrics["rewards/rejected"] = worse.reduce(0, +)
        return ObjectiveResult(losses: r.losses, dScores: (r.dBetter + r.dWorse).map { Float($0 * Double(m)) }, metrics: metrics)
    }
}

/// The Safe-RLHF cost-model loss: the unsafer answer costs more, and with safety labels the cost's
/// sign classifies each answer (C < 0 safe); pairs without labels train the ranking term only.
public final class CostObjective: PairObjective {
    public init(config: RunConfig, data: TrainingData, padToken: Int32) {
        super.init(config: config, data: data, padToken: padToken, bothResponses: true)
    }

    public override var request: ModelRequest { .scores }
    public override var evalMetricKeys: Set<String>? { ["accuracy", "safety_accuracy", "unranked_safety_accuracy"] }

    public override func evaluate(_ batch: MicroBatch, outputs: ModelOutputs, split: ExampleSplit) throws -> ObjectiveResult {
        let all = pairs(split)
        let m = batch.examples.count
        let s = outputs.scores.map(Double.init)
        var losses = [Double](repeating: 0, count: m), dSafer = losses, dUnsafer = losses
        var metrics: [String: Double] = ["costs/safer": s[0..<m].reduce(0, +), "costs/unsafer": s[m...].reduce(0, +)]
        // Labelled and unlabelled pairs each get their own loss; safety accuracy is averaged over labelled pairs only.
        let labelled = batch.examples.indices.filter { all[batch.examples[$0]].chosenIsSafe != nil && all[batch.examples[$0]].rejectedIsSafe != nil }
        let unlabelled = batch.examples.indices.filter { !labelled.contains($0) }
        if !labelled.isEmpty {
            let pairs = labelled.map { all[batch.examples[$0]] }
            let r = try costModelLoss(safer: labelled.map { s[$0] }, unsafer: labelled.map { s[m + $0] },
                                      saferIsSafe: pairs.map { $0.chosenIsSafe! }, unsaferIsSafe: pairs.map { $0.rejectedIsSafe! },
                                      ranked: pairs.map(\.ranked), regularization: config.scoreModel.regularization)
            let k = Double(labelled.count), ranked = r.metrics["rankedPairs"] ?? k
            for (j, i) in labelled.enumerated() { losses[i] = r.losses[j]; dSafer[i] = r.dSafer[j] * k; dUnsafer[i] = r.dUnsafer[j] * k }
            metrics["accuracy", default: 0] += (r.metrics["accuracy"] ?? 0) * ranked
            metrics["count/accuracy", default: 0] += ranked
            metrics["safety_accuracy"] = (r.metrics["safety_accuracy"] ?? 0) * k
            metrics["count/safety_accuracy"] = k
            if let unranked = r.metrics["unranked_safety_accuracy"] {
                metrics["unranked_safety_accuracy"] = unranked * (k - ranked)
                metrics["count/unranked_safety_accuracy"] = k - ranked
            }
        }
        if !unlabelled.isEmpty {
            // Ranking only: the unsafer answer is the "better" one of a reward loss.
            let r = rewardModelLoss(better: unlabelled.map { s[m + $0] }, worse: unlabelled.map { s[$0] },
                                    regularization: config.scoreModel.regularization)
            let k = Double(unlabelled.count)
            for (j, i) in unlabelled.enumerated() { losses[i] = r.losses[j]; dSafer[i] = r.dWorse[j] * k; dUnsafer[i] = r.dBetter[j] * k }
            metrics["accuracy", default: 0] += (r.metrics["accuracy"] ?? 0) * k
            metrics["count/accuracy", default: 0] += k
        }
        return ObjectiveResult(losses: losses, dScores: (dSafer + dUnsafer).map(Float.init), metrics: metrics)
    }
}

extension TrainingTask {
    /// The objective of a pair task (`dualign train sft|dpo|reward|cost`).
    /// - Throws: `RunConfigError` for `ppo`, whose objective samples and scores (Pipelines' `PPOObjective`).
    public func objective(config: RunConfig, data: TrainingData, padToken: Int32) throws -> PairObjective {
        switch self {
        case .ppo:
            throw RunConfigError(key: "task", message: "ppo trains on rollouts sampled from the policy, not on pairs; build Pipelines' PPOObjective (what `dualign train ppo` does)")
        case .sft: return SFTObjective(config: config, data: data, padToken: padToken)
        case .dpo: return DPOObjective(config: config, data: data, padToken: padToken)
        case .reward: return RewardObjective(config: config, data: data, padToken: padToken)
        case .cost: return CostObjective(config: config, data: data, padToken: padToken)
        }
    }
}
