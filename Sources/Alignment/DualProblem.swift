// The empirical CAN dual (algorithms.md §1.2–§1.3): scores of reference samples, the dual function D̂(λ),
// its gradient and Hessian.
//
// For prompt n with K_n reference samples, reward r_{n,k}, utilities g_{i,n,k} (i = 1..m) and normalised weights
// w_{n,k} (the reference probabilities when expectations are exact, 1/K_n for i.i.d. samples):
//
//     a_{n,k}(λ) = log w_{n,k} + (r_{n,k} + λᵀ g_{n,k}) / β
//     D̂(λ)      = β · mean_n LSE_k a_{n,k}(λ) − λᵀ thr                 (= β·mean_n log Σ_k w e^{(r + λᵀ(g − thr))/β})
//     ∇D̂(λ)     = mean_n Σ_k p_{n,k} (g_{n,k} − thr),   p_{n,·} = softmax_k a_{n,·}(λ)
//     ∇²D̂(λ)    = (1/β) · mean_n Cov_{p_n}[g]
//
// Everything is Double and every log-sum-exp is shifted by its maximum, so logits of several hundred are safe.

import Foundation

/// The scores of one prompt's reference samples: K rewards, m utility lists of K values and optional weights.
public struct DualPrompt: Sendable, Equatable {
    /// Reward r_k of each sample (helpfulness-model score).
    public var rewards: [Double]
    /// Utilities g_{i,k}: one list of K values per constraint (safety is the negated cost-model score).
    public var utilities: [[Double]]
    /// Optional non-negative weights w_k (reference probabilities); nil means uniform 1/K. Normalised per prompt.
    public var weights: [Double]?

    /// Creates a prompt's scores.
    public init(rewards: [Double], utilities: [[Double]], weights: [Double]? = nil) {
        self.rewards = rewards
        self.utilities = utilities
        self.weights = weights
    }
}

/// Why dual inputs (scores, β, bounds or a multiplier) were rejected.
public enum DualProblemError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// No prompts were given.
    case noPrompts
    /// A prompt had no samples.
    case noSamples(prompt: Int)
    /// A prompt had no utility lists (m = 0).
    case noConstraints(prompt: Int)
    /// A prompt's number of utility lists differs from the first prompt's.
    case constraintCountMismatch(prompt: Int, expected: Int, actual: Int)
    /// A utility or weight list's length differs from the number of rewards.
    case lengthMismatch(prompt: Int, field: String, expected: Int, actual: Int)
    /// A score or weight was NaN or infinite.
    case nonFinite(prompt: Int, field: String, index: Int)
    /// A weight was negative, or all of a prompt's weights were zero.
    case invalidWeights(prompt: Int, detail: String)
    /// β was zero, negative or not finite.
    case nonPositiveBeta(Double)
    /// The number of margins, thresholds or multipliers differs from the number of constraints.
    case countMismatch(what: String, expected: Int, actual: Int)
    /// A margin, threshold or multiplier was NaN or infinite.
    case nonFiniteValue(what: String, index: Int)
    /// A multiplier was negative.
    case negativeLambda(index: Int, value: Double)

    public var description: String {
        switch self {
        case .noPrompts:
            return "dual: no prompts; give the scores of at least one prompt's reference samples."
        case .noSamples(let prompt):
            return "dual: prompt \(prompt) has no samples; give at least one reward (and its utilities) per prompt."
        case .noConstraints(let prompt):
            return "dual: prompt \(prompt) has no utility lists; give one list of utilities per constraint (m ≥ 1)."
        case .constraintCountMismatch(let prompt, let expected, let actual):
            return "dual: prompt \(prompt) has \(actual) utility lists but the first prompt has \(expected); "
                + "every prompt needs the same constraints in the same order."
        case .lengthMismatch(let prompt, let field, let expected, let actual):
            return "dual: prompt \(prompt): \(field) has \(actual) values but there are \(expected) rewards; "
                + "give one value per sample."
        case .nonFinite(let prompt, let field, let index):
            return "dual: prompt \(prompt): \(field)[\(index)] is not a finite number; drop or rescore that sample."
        case .invalidWeights(let prompt, let detail):
            return "dual: prompt \(prompt): \(detail); weights must be ≥ 0 with a positive sum (or omit them for uniform)."
        case .nonPositiveBeta(let beta):
            return "dual: beta is \(beta) but must be a finite number > 0; use the KL coefficient of stage 2, e.g. 0.1."
        case .countMismatch(let what, let expected, let actual):
            return "dual: \(actual) \(what) given but the scores have \(expected) constraint(s); give one per constraint."
        case .nonFiniteValue(let what, let index):
            return "dual: \(what) \(index) is not a finite number; give a finite value."
        case .negativeLambda(let index, let value):
            return "dual: lambda \(index) is \(value) but multipliers must be ≥ 0; give a non-negative value."
        }
    }

    public var errorDescription: String? { description }
}

/// Validated, flattened scores of N prompts' reference samples with m constraints.
///
/// Weights are normalised per prompt; zero-weight samples are kept but lie outside the reference support and are
/// ignored by every expectation and maximum.
public struct DualScores: Sendable {
    /// Number of prompts N.
    public let promptCount: Int
    /// Number of constraints m.
    public let constraintCount: Int
    /// Total number of samples over all prompts.
    public let sampleCount: Int
    /// E_ref[g_i] = mean_n Σ_k w_{n,k} g_{i,n,k} for each constraint.
    public let referenceMeans: [Double]
    /// mean_n max_k g_{i,n,k} (over samples with positive weight): the largest threshold constraint i alone allows.
    public let largestThresholds: [Double]

    /// Sample offsets: prompt n owns samples offsets[n]..<offsets[n+1].
    let offsets: [Int]
    /// Reward of each sample.
    let rewards: [Double]
    /// Utilities, sample-major: utilities[s·m + i].
    let utilities: [Double]
    /// log of the normalised weight of each sample (−∞ for zero weight).
    let logWeights: [Double]
    /// The largest K_n.
    let maxSamplesPerPrompt: Int

    /// The largest margin constraint i alone allows: mean_n max_k g_i − E_ref[g_i]. Margins at or above it are infeasible.
    public var largestMargins: [Double] {
        zip(largestThresholds, referenceMeans).map { $0 - $1 }
    }

    /// Validates and flattens the prompts; throws a `DualProblemError` naming the prompt (0-based) and field.
    public init(prompts: [DualPrompt]) throws {
        guard let first = prompts.first else { throw DualProblemError.noPrompts }
        let m = first.utilities.count
        var offsets = [0]
        offsets.reserveCapacity(prompts.count + 1)
        var rewards: [Double] = []
        var utilities: [Double] = []
        var logWeights: [Double] = []
        let total = prompts.reduce(0) { $0 + $1.rewards.count }
        rewards.reserveCapacity(total)
        utilities.reserveCapacity(total * m)
        logWeights.reserveCapacity(total)
        var referenceSums = [Double](repeating: 0, count: m)
        var maxSums = [Double](repeating: 0, count: m)
        var maxK = 0

        for (n, prompt) in prompts.enumerated() {
            let k = prompt.rewards.count
            guard k > 0 else { throw DualProblemError.noSamples(prompt: n) }
            guard !prompt.utilities.isEmpty else { throw DualProblemError.noConstraints(prompt: n) }
            guard prompt.utilities.count == m else {
                throw DualProblemError.constraintCountMismatch(prompt: n, expected: m, actual: prompt.utilities.count)
            }
            for (j, r) in prompt.rewards.enumerated() where !r.isFinite {
                throw DualProblemError.nonFinite(prompt: n, field: "rewards", index: j)
            }
            for (i, list) in prompt.utilities.enumerated() {
                guard list.count == k else {
                    throw DualProblemError.lengthMismatch(prompt: n, field: "utilities[\(i)]", expected: k, actual: list.count)
                }
                for (j, g) in list.enumerated() where !g.isFinite {
                    throw DualProblemError.nonFinite(prompt: n, field: "utilities[\(i)]", index: j)
                }
            }
            var weights = [Double](repeating: 1 / Double(k), count: k)
            if let given = prompt.weights {
                guard given.count == k else {
                    throw DualProblemError.lengthMismatch(prompt: n, field: "weights", expected: k, actual: given.count)
                }
                for (j, w) in given.enumerated() {
                    guard w.isFinite else { throw DualProblemError.nonFinite(prompt: n, field: "weights", index: j) }
                    guard w >= 0 else {
                        throw DualProblemError.invalidWeights(prompt: n, detail: "weights[\(j)] is \(w) (negative)")
                    }
                }
                let sum = given.reduce(0, +)
                guard sum > 0, sum.isFinite else {
                    throw DualProblemError.invalidWeights(prompt: n, detail: "the weights sum to \(sum)")
                }
                weights = given.map { $0 / sum }
            }

            maxK = max(maxK, k)
            rewards.append(contentsOf: prompt.rewards)
            for j in 0..<k {
                logWeights.append(weights[j] > 0 ? log(weights[j]) : -.infinity)
                for i in 0..<m { utilities.append(prompt.utilities[i][j]) }
            }
            for i in 0..<m {
                var mean = 0.0
                var best = -Double.infinity
                for j in 0..<k where weights[j] > 0 {
                    mean += weights[j] * prompt.utilities[i][j]
                    best = max(best, prompt.utilities[i][j])
                }
                referenceSums[i] += mean
                maxSums[i] += best
            }
            offsets.append(rewards.count)
        }

        let n = Double(prompts.count)
        self.promptCount = prompts.count
        self.constraintCount = m
        self.sampleCount = rewards.count
        self.referenceMeans = referenceSums.map { $0 / n }
        self.largestThresholds = maxSums.map { $0 / n }
        self.offsets = offsets
        self.rewards = rewards
        self.utilities = utilities
        self.logWeights = logWeights
        self.maxSamplesPerPrompt = maxK
    }

    /// The recession slope of D̂ along a direction u ≥ 0: mean_n max_k uᵀ(g_{n,k} − thr).
    ///
    /// D̂(λ + t·u) grows like t times this slope as t → ∞, so a slope ≤ 0 means D̂ has no finite minimiser along u.
    func recessionSlope(direction u: [Double], thresholds: [Double]) -> Double {
        let m = constraintCount
        var sum = 0.0
        for n in 0..<promptCount {
            var best = -Double.infinity
            for s in offsets[n]..<offsets[n + 1] where logWeights[s] > -.infinity {
                var dot = 0.0
                for i in 0..<m { dot += u[i] * (utilities[s * m + i] - thresholds[i]) }
                best = max(best, dot)
            }
            sum += best
        }
        return sum / Double(promptCount)
    }
}

/// How each constraint's bound is given.
public enum DualBounds: Sendable, Equatable {
    /// Relative improvements b_i over the reference: threshold_i = E_ref[g_i] + b_i.
    case margins([Double])
    /// Absolute thresholds: the constraint is E_π[g_i] ≥ threshold_i.
    case thresholds([Double])
}

/// D̂, its gradient and Hessian at one λ, plus the tilted policy's expectations.
public struct DualEvaluation: Sendable {
    /// The multipliers λ evaluated at.
    public var lambda: [Double]
    /// D̂(λ).
    public var value: Double
    /// ∇D̂(λ) = E_{π_λ}[g] − thr (the constraint slack of the tilted policy π_λ).
    public var gradient: [Double]
    /// ∇²D̂(λ) = (1/β)·mean_n Cov_{π_λ}[g], row-major m × m.
    public var hessian: [Double]
    /// E_{π_λ}[r].
    public var expectedReward: Double
    /// E_{π_λ}[g_i].
    public var expectedUtilities: [Double]
    /// KL(π_λ ‖ π_ref) averaged over prompts.
    public var klDivergence: Double

    /// The Hessian entry (i, j).
    public func hessian(_ i: Int, _ j: Int) -> Double { hessian[i * gradient.count + j] }
}

/// The empirical CAN dual for m ≥ 1 constraints: scores, β and one threshold per constraint.
public struct DualProblem: Sendable {
    /// The reference samples' scores.
    public let scores: DualScores
    /// The KL coefficient β > 0.
    public let beta: Double
    /// Absolute threshold of each constraint (E_ref[g_i] + b_i when built from margins).
    public let thresholds: [Double]

    /// Number of constraints m.
    public var constraintCount: Int { scores.constraintCount }

    /// The margins b_i = threshold_i − E_ref[g_i].
    public var margins: [Double] { zip(thresholds, scores.referenceMeans).map { $0 - $1 } }

    /// Creates the dual of `scores` at KL coefficient `beta` with the given margins or thresholds.
    public init(scores: DualScores, beta: Double, bounds: DualBounds) throws {
        guard beta > 0, beta.isFinite else { throw DualProblemError.nonPositiveBeta(beta) }
        let m = scores.constraintCount
        let values: [Double]
        let what: String
        switch bounds {
        case .margins(let b): values = b; what = "margin(s)"
        case .thresholds(let t): values = t; what = "threshold(s)"
        }
        guard values.count == m else { throw DualProblemError.countMismatch(what: what, expected: m, actual: values.count) }
        for (i, v) in values.enumerated() where !v.isFinite {
            throw DualProblemError.nonFiniteValue(what: what == "margin(s)" ? "margin" : "threshold", index: i)
        }
        self.scores = scores
        self.beta = beta
        switch bounds {
        case .margins(let b): self.thresholds = zip(scores.referenceMeans, b).map { $0 + $1 }
        case .thresholds(let t): self.thresholds = t
        }
    }

    /// Convenience: validates `prompts` and creates the dual.
    public init(prompts: [DualPrompt], beta: Double, bounds: DualBounds) throws {
        try self.init(scores: DualScores(prompts: prompts), beta: beta, bounds: bounds)
    }

    /// The same scores and β with other margins or thresholds.
    public func with(bounds: DualBounds) throws -> DualProblem {
        try DualProblem(scores: scores, beta: beta, bounds: bounds)
    }

    /// D̂(λ) only (one pass over the samples).
    public func value(at lambda: [Double]) -> Double {
        accumulate(lambda, order: .value).value
    }

    /// ∇D̂(λ).
    public func gradient(at lambda: [Double]) -> [Double] {
        accumulate(lambda, order: .gradient).gradient
    }

    /// ∇²D̂(λ), row-major m × m.
    public func hessian(at lambda: [Double]) -> [Double] {
        accumulate(lambda, order: .hessian).hessian
    }

    /// D̂, gradient, Hessian and the tilted policy's expectations at λ.
    public func evaluate(at lambda: [Double]) -> DualEvaluation {
        accumulate(lambda, order: .hessian)
    }

    /// The tilted policy π_λ on each prompt's samples: softmax_k(log w + (r + λᵀg)/β), one array per prompt.
    public func policyWeights(at lambda: [Double]) -> [[Double]] {
        checkLambdaCount(lambda)
        let m = constraintCount
        var result: [[Double]] = []
        result.reserveCapacity(scores.promptCount)
        for n in 0..<scores.promptCount {
            let range = scores.offsets[n]..<scores.offsets[n + 1]
            let a = range.map { s -> Double in
                var z = scores.rewards[s]
                for i in 0..<m { z += lambda[i] * scores.utilities[s * m + i] }
                return scores.logWeights[s] + z / beta
            }
            let top = a.max()!
            let e = a.map { exp($0 - top) }
            let sum = e.reduce(0, +)
            result.append(e.map { $0 / sum })
        }
        return result
    }

    /// E_{π_λ}[g_i] − E_ref[g_i]: the improvement over the reference that the tilted policy π_λ achieves.
    ///
    /// By KKT this is the margin for which λ is the dual optimum (for m = 1 it is non-decreasing in λ); it does not
    /// depend on the problem's own thresholds.
    public func marginGuaranteed(byLambda lambda: [Double]) throws -> [Double] {
        try validateLambda(lambda)
        let evaluation = accumulate(lambda, order: .gradient)
        return zip(evaluation.expectedUtilities, scores.referenceMeans).map { $0 - $1 }
    }

    /// Throws unless λ has m finite, non-negative entries.
    func validateLambda(_ lambda: [Double]) throws {
        guard lambda.count == constraintCount else {
            throw DualProblemError.countMismatch(what: "lambda value(s)", expected: constraintCount, actual: lambda.count)
        }
        for (i, l) in lambda.enumerated() {
            guard l.isFinite else { throw DualProblemError.nonFiniteValue(what: "lambda", index: i) }
            guard l >= 0 else { throw DualProblemError.negativeLambda(index: i, value: l) }
        }
    }

    private func checkLambdaCount(_ lambda: [Double]) {
        precondition(lambda.count == constraintCount,
                     "DualProblem: \(lambda.count) multipliers for \(constraintCount) constraint(s)")
    }

    /// What `accumulate` computes beyond D̂.
    enum Order: Int { case value = 0, gradient = 1, hessian = 2 }

    /// One pass (two with the Hessian) over all samples.
    func accumulate(_ lambda: [Double], order: Order) -> DualEvaluation {
        checkLambdaCount(lambda)
        let m = constraintCount
        let invBeta = 1 / beta
        let rewards = scores.rewards
        let utilities = scores.utilities
        let logWeights = scores.logWeights
        let offsets = scores.offsets

        var logits = [Double](repeating: 0, count: scores.maxSamplesPerPrompt)   // a_k
        var tilts = [Double](repeating: 0, count: scores.maxSamplesPerPrompt)    // z_k = (r + λᵀg)/β
        var expo = [Double](repeating: 0, count: scores.maxSamplesPerPrompt)     // exp(a_k − max)
        var mean = [Double](repeating: 0, count: m)

        // Neumaier-compensated sum of the per-prompt log-sum-exps (the line search compares nearby values of D̂).
        var lseSum = 0.0
        var lseCompensation = 0.0
        var rewardSum = 0.0
        var klSum = 0.0
        var utilitySums = [Double](repeating: 0, count: m)
        var hessianSum = [Double](repeating: 0, count: order == .hessian ? m * m : 0)

        for n in 0..<scores.promptCount {
            let lo = offsets[n]
            let count = offsets[n + 1] - lo
            var top = -Double.infinity
            for k in 0..<count {
                let s = lo + k
                var z = rewards[s]
                for i in 0..<m { z += lambda[i] * utilities[s * m + i] }
                z *= invBeta
                let a = logWeights[s] + z
                tilts[k] = z
                logits[k] = a
                if a > top { top = a }
            }
            var sum = 0.0
            for k in 0..<count {
                let e = exp(logits[k] - top)
                expo[k] = e
                sum += e
            }
            let lse = top + log(sum)
            let t = lseSum + lse
            if abs(lseSum) >= abs(lse) { lseCompensation += (lseSum - t) + lse } else { lseCompensation += (lse - t) + lseSum }
            lseSum = t
            if order == .value { continue }

            let invSum = 1 / sum
            var reward = 0.0
            var tilt = 0.0
            for i in 0..<m { mean[i] = 0 }
            for k in 0..<count {
                let s = lo + k
                let p = expo[k] * invSum
                if p == 0 { continue }
                reward += p * rewards[s]
                tilt += p * tilts[k]
                for i in 0..<m { mean[i] += p * utilities[s * m + i] }
            }
            rewardSum += reward
            klSum += tilt - lse
            for i in 0..<m { utilitySums[i] += mean[i] }

            if order == .hessian {
                for k in 0..<count {
                    let s = lo + k
                    let p = expo[k] * invSum
                    if p == 0 { continue }
                    for i in 0..<m {
                        let di = utilities[s * m + i] - mean[i]
                        let pdi = p * di
                        for j in 0...i {
                            hessianSum[i * m + j] += pdi * (utilities[s * m + j] - mean[j])
                        }
                    }
                }
            }
        }

        let invN = 1 / Double(scores.promptCount)
        var shift = 0.0
        for i in 0..<m { shift += lambda[i] * thresholds[i] }
        let value = beta * (lseSum + lseCompensation) * invN - shift

        var gradient = [Double](repeating: 0, count: order == .value ? 0 : m)
        var expectedUtilities = [Double](repeating: 0, count: order == .value ? 0 : m)
        if order != .value {
            for i in 0..<m {
                expectedUtilities[i] = utilitySums[i] * invN
                gradient[i] = expectedUtilities[i] - thresholds[i]
            }
        }
        if order == .hessian {
            let scale = invN * invBeta
            for i in 0..<m {
                for j in 0...i {
                    let h = hessianSum[i * m + j] * scale
                    hessianSum[i * m + j] = h
                    hessianSum[j * m + i] = h
                }
            }
        }
        return DualEvaluation(lambda: lambda, value: value, gradient: gradient, hessian: hessianSum,
                              expectedReward: rewardSum * invN, expectedUtilities: expectedUtilities,
                              klDivergence: klSum * invN)
    }
}
