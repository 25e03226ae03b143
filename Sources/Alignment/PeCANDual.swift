// The PeCAN dual (algorithms.md §1.4): the CAN dual built from log-probs of a helpfulness-DPO policy π_h and
// safety-DPO policies π_s instead of reward and cost models.
//
// With h = ℓ_h − ℓ_ref and s = ℓ_s − ℓ_ref on K samples y ∼ π_ref per prompt (the notebook's convention):
//
//     D_P(λ)    = mean_n LME_k(h + λᵀs) + λᵀ(KL̂ − b/β),   KL̂_i = mean_{n,k}(ℓ_ref − ℓ_{s_i})
//     ∇D_P(λ)   = mean_n Σ_k softmax_k(h + λᵀs) s + KL̂ − b/β
//
// Since E_ref[s_i] = −KL̂_i, this is exactly the MoCAN dual with r = h, g = s, β = 1 and margins b/β, so it reuses
// `DualProblem` and `DualSolver`; all of its values are in log-ratio (reward/β) units.

import Foundation

/// One prompt's sequence log-probs of K reference samples under π_ref, π_h and one π_s per constraint.
public struct PeCANPrompt: Sendable, Equatable {
    /// ℓ_ref(y_k|x).
    public var referenceLogProbs: [Double]
    /// ℓ_h(y_k|x) under the helpfulness-DPO policy.
    public var helpfulLogProbs: [Double]
    /// ℓ_{s_i}(y_k|x) under each safety-DPO policy (one list of K values per constraint).
    public var safeLogProbs: [[Double]]

    /// Creates a prompt's log-probs for m safety policies.
    public init(referenceLogProbs: [Double], helpfulLogProbs: [Double], safeLogProbs: [[Double]]) {
        self.referenceLogProbs = referenceLogProbs
        self.helpfulLogProbs = helpfulLogProbs
        self.safeLogProbs = safeLogProbs
    }

    /// Creates a prompt's log-probs for one safety policy.
    public init(referenceLogProbs: [Double], helpfulLogProbs: [Double], safeLogProbs: [Double]) {
        self.init(referenceLogProbs: referenceLogProbs, helpfulLogProbs: helpfulLogProbs, safeLogProbs: [safeLogProbs])
    }
}

/// The PeCAN dual over λ ≥ 0 with margins b (in reward units) at KL coefficient β.
public struct PeCANDual: Sendable {
    /// The KL coefficient β of the DPO policies.
    public let beta: Double
    /// The margins b_i in reward units.
    public let margins: [Double]
    /// KL̂_i = mean_n mean_k (ℓ_ref − ℓ_{s_i}), the estimate of KL(π_ref ‖ π_{s_i}).
    public let klEstimates: [Double]
    /// The equivalent MoCAN dual: rewards h, utilities s, β = 1, margins b/β.
    public let problem: DualProblem

    /// Builds the dual; throws a `DualProblemError` for mismatched lengths, non-finite log-probs or β ≤ 0.
    public init(prompts: [PeCANPrompt], beta: Double, margins: [Double]) throws {
        guard beta > 0, beta.isFinite else { throw DualProblemError.nonPositiveBeta(beta) }
        var converted: [DualPrompt] = []
        converted.reserveCapacity(prompts.count)
        for (n, prompt) in prompts.enumerated() {
            let k = prompt.referenceLogProbs.count
            guard prompt.helpfulLogProbs.count == k else {
                throw DualProblemError.lengthMismatch(prompt: n, field: "helpful log-probs", expected: k,
                                                      actual: prompt.helpfulLogProbs.count)
            }
            for (i, list) in prompt.safeLogProbs.enumerated() where list.count != k {
                throw DualProblemError.lengthMismatch(prompt: n, field: "safe log-probs[\(i)]", expected: k, actual: list.count)
            }
            for (j, l) in prompt.referenceLogProbs.enumerated() where !l.isFinite {
                throw DualProblemError.nonFinite(prompt: n, field: "reference log-probs", index: j)
            }
            let h = zip(prompt.helpfulLogProbs, prompt.referenceLogProbs).map { $0 - $1 }
            let s = prompt.safeLogProbs.map { list in zip(list, prompt.referenceLogProbs).map { $0 - $1 } }
            converted.append(DualPrompt(rewards: h, utilities: s))
        }
        let scores = try DualScores(prompts: converted)
        guard margins.count == scores.constraintCount else {
            throw DualProblemError.countMismatch(what: "margin(s)", expected: scores.constraintCount, actual: margins.count)
        }
        self.beta = beta
        self.margins = margins
        self.klEstimates = scores.referenceMeans.map { -$0 }
        self.problem = try DualProblem(scores: scores, beta: 1, bounds: .margins(margins.map { $0 / beta }))
    }

    /// D_P(λ) = mean_n LME_k(h + λᵀs) + λᵀ(KL̂ − b/β).
    public func value(at lambda: [Double]) -> Double { problem.value(at: lambda) }

    /// ∇D_P(λ) = mean_n Σ_k softmax_k(h + λᵀs) s + KL̂ − b/β (the notebook's `grad`).
    public func gradient(at lambda: [Double]) -> [Double] { problem.gradient(at: lambda) }

    /// softmax_k(h + λᵀs) on each prompt's samples.
    public func policyWeights(at lambda: [Double]) -> [[Double]] { problem.policyWeights(at: lambda) }

    /// λ* = argmin_{λ ≥ 0} D_P. The solution's improvement is E_π[s] − E_ref[s] in log-ratio units (b/β when
    /// tight); multiply by β for the safety improvement in reward units.
    public func solve(options: DualSolverOptions = DualSolverOptions()) throws -> DualSolution {
        try problem.solve(options: options)
    }
}
