// The DPO family of pairwise preference losses (DPO, conservative DPO, IPO, hinge) on sequence log-probs.
//
// Math: algorithms.md §5.1 (DPO / cDPO) and §5.2 (IPO); hinge follows TRL's `relu(1 − β·logits)`.
// Everything is accumulated in Double: the losses are driven by differences of nearly equal sums.

import Foundation

/// Which member of the DPO family to optimise.
public enum PreferenceLossType: String, CaseIterable, Codable, Sendable {
    /// DPO: −log σ(βh), or conservative DPO with label smoothing ε: −(1−ε) log σ(βh) − ε log σ(−βh).
    case sigmoid
    /// IPO: (h − 1/(2β))².
    case ipo
    /// SLiC-style hinge: max(0, 1 − βh).
    case hinge
}

/// Hyper-parameters of a DPO-family loss.
public struct PreferenceLossConfig: Codable, Equatable, Sendable {
    /// The KL coefficient β (τ for IPO); must be positive.
    public var beta: Double
    /// Which loss of the family to use.
    public var type: PreferenceLossType
    /// Conservative-DPO label smoothing ε in [0, 0.5); only valid with `.sigmoid`.
    public var labelSmoothing: Double
    /// When true the reference log-probs are treated as zero (reference-free DPO).
    public var referenceFree: Bool

    /// Creates a configuration; call `validate()` before training with it.
    public init(beta: Double, type: PreferenceLossType = .sigmoid, labelSmoothing: Double = 0, referenceFree: Bool = false) {
        self.beta = beta
        self.type = type
        self.labelSmoothing = labelSmoothing
        self.referenceFree = referenceFree
    }

    /// Throws a `PreferenceLossConfigError` describing the fix if the configuration is unusable.
    public func validate() throws {
        guard beta > 0, beta.isFinite else {
            throw PreferenceLossConfigError.nonPositiveBeta(beta)
        }
        guard labelSmoothing >= 0, labelSmoothing < 0.5 else {
            throw PreferenceLossConfigError.labelSmoothingOutOfRange(labelSmoothing)
        }
        if labelSmoothing != 0 && type != .sigmoid {
            throw PreferenceLossConfigError.labelSmoothingRequiresSigmoid(type)
        }
    }
}

/// Why a `PreferenceLossConfig` was rejected.
public enum PreferenceLossConfigError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// β was zero, negative or not finite.
    case nonPositiveBeta(Double)
    /// Label smoothing was outside [0, 0.5).
    case labelSmoothingOutOfRange(Double)
    /// Label smoothing was requested for a loss other than `.sigmoid`.
    case labelSmoothingRequiresSigmoid(PreferenceLossType)

    public var description: String {
        switch self {
        case .nonPositiveBeta(let beta):
            return "preference loss: beta is \(beta) but must be a finite number > 0; set beta to e.g. 0.1."
        case .labelSmoothingOutOfRange(let epsilon):
            return "preference loss: label smoothing is \(epsilon) but must be in [0, 0.5); "
                + "use 0 for plain DPO or a small value such as 0.1 for conservative DPO."
        case .labelSmoothingRequiresSigmoid(let type):
            return "preference loss: label smoothing (conservative DPO) only applies to the 'sigmoid' loss, "
                + "not '\(type.rawValue)'; set the loss type to 'sigmoid' or label smoothing to 0."
        }
    }

    public var errorDescription: String? { description }
}

/// The mean loss over a batch of preference pairs, its gradients and TRL-named metrics.
public struct PreferenceLossResult: Sendable {
    /// The loss averaged over pairs.
    public var loss: Double
    /// Each pair's own loss (their mean is `loss`).
    public var losses: [Double]
    /// ∂(mean loss)/∂(policy log-prob of pair i's chosen response).
    public var dPolicyChosen: [Double]
    /// ∂(mean loss)/∂(policy log-prob of pair i's rejected response).
    public var dPolicyRejected: [Double]
    /// Means over pairs under TRL's names: `rewards/chosen`, `rewards/rejected`, `rewards/margins`,
    /// `rewards/accuracies`, `logps/chosen`, `logps/rejected`.
    public var metrics: [String: Double]

    /// Creates a result from its parts.
    public init(loss: Double, losses: [Double] = [], dPolicyChosen: [Double], dPolicyRejected: [Double], metrics: [String: Double]) {
        self.loss = loss
        self.losses = losses
        self.dPolicyChosen = dPolicyChosen
        self.dPolicyRejected = dPolicyRejected
        self.metrics = metrics
    }
}

/// Computes a DPO-family loss over a batch of pairs from sequence log-probs.
///
/// For pair i, h = (policyChosen − referenceChosen) − (policyRejected − referenceRejected), with the reference
/// terms taken as 0 when `config.referenceFree`. The returned gradients are of the MEAN loss, so each pair's
/// gradient carries a factor 1/pairCount. The reference arrays are ignored (and may be empty) when reference-free.
public func preferenceLoss(
    policyChosen: [Double],
    policyRejected: [Double],
    referenceChosen: [Double],
    referenceRejected: [Double],
    config: PreferenceLossConfig
) -> PreferenceLossResult {
    let pairCount = policyChosen.count
    precondition(pairCount > 0, "preferenceLoss: no pairs")
    precondition(policyRejected.count == pairCount,
                 "preferenceLoss: \(pairCount) chosen but \(policyRejected.count) rejected policy log-probs")
    if !config.referenceFree {
        precondition(referenceChosen.count == pairCount && referenceRejected.count == pairCount,
                     "preferenceLoss: \(pairCount) pairs but \(referenceChosen.count) chosen / "
                        + "\(referenceRejected.count) rejected reference log-probs")
    }

    let beta = config.beta
    let epsilon = config.labelSmoothing
    let scale = 1 / Double(pairCount)

    var lossSum = 0.0
    var losses = [Double](repeating: 0, count: pairCount)
    var dChosen = [Double](repeating: 0, count: pairCount)
    var dRejected = [Double](repeating: 0, count: pairCount)
    var chosenRewardSum = 0.0
    var rejectedRewardSum = 0.0
    var correctCount = 0
    var chosenLogProbSum = 0.0
    var rejectedLogProbSum = 0.0

    for i in 0..<pairCount {
        let chosenRatio = config.referenceFree ? policyChosen[i] : policyChosen[i] - referenceChosen[i]
        let rejectedRatio = config.referenceFree ? policyRejected[i] : policyRejected[i] - referenceRejected[i]
        let h = chosenRatio - rejectedRatio

        let pairLoss: Double
        let dLossdH: Double
        switch config.type {
        case .sigmoid:
            let z = beta * h
            pairLoss = -(1 - epsilon) * logSigmoid(z) - epsilon * logSigmoid(-z)
            dLossdH = beta * (-(1 - epsilon) * sigmoid(-z) + epsilon * sigmoid(z))
        case .ipo:
            let residual = h - 1 / (2 * beta)
            pairLoss = residual * residual
            dLossdH = 2 * residual
        case .hinge:
            let slack = 1 - beta * h
            pairLoss = max(0, slack)
            dLossdH = slack > 0 ? -beta : 0
        }

        lossSum += pairLoss
        losses[i] = pairLoss
        dChosen[i] = dLossdH * scale
        dRejected[i] = -dLossdH * scale

        let chosenReward = beta * chosenRatio
        let rejectedReward = beta * rejectedRatio
        chosenRewardSum += chosenReward
        rejectedRewardSum += rejectedReward
        if chosenReward > rejectedReward { correctCount += 1 }
        chosenLogProbSum += policyChosen[i]
        rejectedLogProbSum += policyRejected[i]
    }

    let metrics: [String: Double] = [
        "rewards/chosen": chosenRewardSum * scale,
        "rewards/rejected": rejectedRewardSum * scale,
        "rewards/margins": (chosenRewardSum - rejectedRewardSum) * scale,
        "rewards/accuracies": Double(correctCount) * scale,
        "logps/chosen": chosenLogProbSum * scale,
        "logps/rejected": rejectedLogProbSum * scale,
    ]
    return PreferenceLossResult(loss: lossSum * scale, losses: losses, dPolicyChosen: dChosen, dPolicyRejected: dRejected, metrics: metrics)
}
