// SAIL's per-row loss and its gradients with respect to the policy's sequence log-probs (algorithms.md §4.2–§4.4).
//
// Row i with margin h = (ℓ_θ(y_w) − ℓ_ref(y_w)) − (ℓ_θ(y_l) − ℓ_ref(y_l)) and route c:
//     SAIL-DP rows: h ← −h with probability 1 − σ(βh) (seeded coin, no gradient through it)
//     z = β·h
//     L_i = −log σ(z) − ½·k_c·(log σ(z))²        k = ρ (SAIL-DP), π (SAIL-PP), 0 (SAIL-PR, DPO)
//     ∂L_i/∂z = −σ(−z)·(1 + k_c·log σ(z))
// plus, on SAIL-PP (coefficient π) and SAIL-PR (coefficient γ) rows, a score-function term that is a gradient
// only (it adds nothing to the reported loss), for y ∈ {y_w, y_l}:
//     codeFaithful:  ∂L_i/∂ℓ_θ(y) += −coef·log σ(z) / ℓ_θ(y)      (the authors' tensor hook)
//     scoreFunction: ∂L_i/∂ℓ_θ(y) += −coef·log σ(z)              (the textbook form)
// The batch loss is Σ_i L_i / N (N = the row count, or `normalizer` for a data-parallel batch) and every gradient,
// the score term included, carries the same 1/N. (The authors' hook is added to the gradient of the per-device
// mean loss without the 1/N, so its weight there grows with the per-device batch size; see docs/sail.md.)

import Foundation

/// The loss of a SAIL batch, its gradients, the SAIL-DP coin decisions and metrics.
public struct SAILLossResult: Sendable {
    /// Σ_i L_i / N (the score-function term has no value, only a gradient).
    public var loss: Double
    /// ∂/∂ℓ_θ(y_w) of each row, score-function term included.   // (B)
    public var dPolicyChosen: [Double]
    /// ∂/∂ℓ_θ(y_l) of each row, score-function term included.   // (B)
    public var dPolicyRejected: [Double]
    /// Whether each row's preference was flipped (SAIL-DP rows only; false elsewhere).   // (B)
    public var flipped: [Bool]
    /// Means over rows: TRL's `rewards/chosen`, `rewards/rejected`, `rewards/margins`, `rewards/accuracies`,
    /// `logps/chosen`, `logps/rejected` (of the pair as given, before any flip, as the authors log them), and
    /// `sail/routes/{dpo,ddp,dpp,dpr}` (fraction of rows per route), `sail/ddp_flips` (fraction of rows flipped),
    /// `sail/ddp_flip_probability` (Σ over SAIL-DP rows of 1 − σ(βh), divided by the row count).
    public var metrics: [String: Double]
}

/// Computes SAIL's loss and gradients for a batch of routed rows.
///
/// - Parameters:
///   - policyChosen: ℓ_θ(y_w), summed over response tokens.   // (B)
///   - policyRejected: ℓ_θ(y_l).                              // (B)
///   - referenceChosen: ℓ_ref(y_w).                           // (B)
///   - referenceRejected: ℓ_ref(y_l).                         // (B)
///   - routes: each row's route (from `SAILConfig.route`, or `.dpo` where the online buffer ran short).  // (B)
///   - globalRows: each row's position in the run's stream of rows (seeds the SAIL-DP coin).             // (B)
///   - config: β, coefficients, score-term form and seed (probabilities are not used here).
///   - normalizer: the divisor N; nil means the row count.
/// - Throws: `SAILError` for a bad config, mismatched lengths, non-finite log-probs, an empty batch, or (codeFaithful)
///   a sequence log-prob of exactly 0 on a score-term row.
public func sailLoss(policyChosen: [Double], policyRejected: [Double], referenceChosen: [Double],
                     referenceRejected: [Double], routes: [SAILRoute], globalRows: [UInt64], config: SAILConfig,
                     normalizer: Double? = nil) throws -> SAILLossResult {
    try config.validate()
    let rows = policyChosen.count
    guard rows > 0 else { throw SAILError.emptyBatch }
    let fields: [(String, [Double])] = [("policyChosen", policyChosen), ("policyRejected", policyRejected),
                                        ("referenceChosen", referenceChosen), ("referenceRejected", referenceRejected)]
    for (name, values) in fields {
        guard values.count == rows else { throw SAILError.lengthMismatch(field: name, count: values.count, expected: rows) }
        for (i, v) in values.enumerated() where !v.isFinite { throw SAILError.nonFinite(field: name, index: i, value: v) }
    }
    guard routes.count == rows else { throw SAILError.lengthMismatch(field: "routes", count: routes.count, expected: rows) }
    guard globalRows.count == rows else {
        throw SAILError.lengthMismatch(field: "globalRows", count: globalRows.count, expected: rows)
    }
    let divisor: Double
    if let normalizer {
        guard normalizer > 0, normalizer.isFinite else {
            throw SAILError.invalidParameter(name: "normalizer", value: normalizer, expected: "a finite number > 0 (the global row count)")
        }
        divisor = normalizer
    } else {
        divisor = Double(rows)
    }

    let beta = config.beta
    var dChosen = [Double](repeating: 0, count: rows)     // (B)
    var dRejected = [Double](repeating: 0, count: rows)   // (B)
    var flipped = [Bool](repeating: false, count: rows)   // (B)
    var lossSum = 0.0, flipProbabilitySum = 0.0
    var routeCounts = [SAILRoute: Int]()
    var chosenRewardSum = 0.0, rejectedRewardSum = 0.0, correct = 0

    for i in 0..<rows {
        let route = routes[i]
        routeCounts[route, default: 0] += 1
        let chosenRatio = policyChosen[i] - referenceChosen[i]
        let rejectedRatio = policyRejected[i] - referenceRejected[i]
        var h = chosenRatio - rejectedRatio
        var sign = 1.0
        if route == .dataPolicy {
            let coin = config.dataPolicyFlip(h: h, globalRow: globalRows[i])
            flipProbabilitySum += coin.probability
            if coin.flipped {
                flipped[i] = true
                sign = -1
                h = -h
            }
        }
        let z = beta * h
        let logSig = logSigmoid(z)
        let squareCoefficient: Double
        switch route {
        case .dataPolicy: squareCoefficient = config.dataPolicyCoefficient
        case .policyPolicy: squareCoefficient = config.policyPolicyCoefficient
        case .policyReward, .dpo: squareCoefficient = 0
        }
        lossSum += -logSig - 0.5 * squareCoefficient * logSig * logSig
        // ∂L/∂h' = β·∂L/∂z; h' = sign·h, and h moves with +ℓ_θ(y_w) and −ℓ_θ(y_l).
        let dLossdH = sign * beta * (-sigmoid(-z) * (1 + squareCoefficient * logSig))
        var dW = dLossdH, dL = -dLossdH

        let scoreCoefficient: Double
        switch route {
        case .policyPolicy: scoreCoefficient = config.policyPolicyCoefficient
        case .policyReward: scoreCoefficient = config.policyRewardCoefficient
        case .dataPolicy, .dpo: scoreCoefficient = 0
        }
        if scoreCoefficient != 0 {
            switch config.scoreTerm {
            case .codeFaithful:
                guard policyChosen[i] != 0 else { throw SAILError.zeroSequenceLogProb(field: "policyChosen", index: i) }
                guard policyRejected[i] != 0 else { throw SAILError.zeroSequenceLogProb(field: "policyRejected", index: i) }
                dW += -scoreCoefficient * logSig / policyChosen[i]
                dL += -scoreCoefficient * logSig / policyRejected[i]
            case .scoreFunction:
                dW += -scoreCoefficient * logSig
                dL += -scoreCoefficient * logSig
            }
        }
        dChosen[i] = dW / divisor
        dRejected[i] = dL / divisor

        chosenRewardSum += beta * chosenRatio
        rejectedRewardSum += beta * rejectedRatio
        if chosenRatio > rejectedRatio { correct += 1 }
    }

    let n = Double(rows)
    var metrics: [String: Double] = [
        "rewards/chosen": chosenRewardSum / n,
        "rewards/rejected": rejectedRewardSum / n,
        "rewards/margins": (chosenRewardSum - rejectedRewardSum) / n,
        "rewards/accuracies": Double(correct) / n,
        "logps/chosen": policyChosen.reduce(0, +) / n,
        "logps/rejected": policyRejected.reduce(0, +) / n,
        "sail/ddp_flips": Double(flipped.filter { $0 }.count) / n,
        "sail/ddp_flip_probability": flipProbabilitySum / n,
    ]
    for route in SAILRoute.allCases {
        metrics["sail/routes/\(route.codeName)"] = Double(routeCounts[route] ?? 0) / n
    }
    return SAILLossResult(loss: lossSum / divisor, dPolicyChosen: dChosen, dPolicyRejected: dRejected,
                          flipped: flipped, metrics: metrics)
}
