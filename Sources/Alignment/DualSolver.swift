// Minimising the empirical CAN dual over λ ≥ 0 (algorithms.md §1.2–§1.3) and the margin ↔ λ maps.
//
// Projected Newton (Bertsekas' two-metric projection): coordinates at the bound λ_i = 0 whose gradient pushes
// outwards are held at 0, the free block takes the Newton step H_FF d_F = −g_F, and a backtracking (Armijo) line
// search runs along the projected arc max(λ + t·d, 0). When the Newton step fails to descend, a projected-gradient
// step with the same line search is used instead. Unlike the official fixed-step PGD this cannot oscillate (oracle C),
// and λ is exactly 0 for an inactive constraint because the projection clips it there.

import Foundation

/// Stopping rules and limits of the dual solver.
public struct DualSolverOptions: Sendable, Equatable {
    /// Stop when the projected gradient ‖λ − max(λ − ∇D̂, 0)‖_∞ is at most this.
    public var gradientTolerance: Double
    /// Stop when a step changes λ by at most stepTolerance·(1 + ‖λ‖_∞) in every coordinate (and the projected
    /// gradient is at most `stallGradientTolerance`).
    public var stepTolerance: Double
    /// Give up after this many Newton/gradient iterations.
    public var maxIterations: Int
    /// Start here (default: λ = 0, which returns λ* = 0 at once when no constraint is active).
    public var initialLambda: [Double]?
    /// Once ‖λ‖_∞ exceeds this, the solver checks whether D̂ decreases without bound along λ (infeasible margins).
    public var divergenceCheckLambda: Double
    /// When λ stops moving before `gradientTolerance` is met (D̂ flat to rounding), the point is accepted only if
    /// its projected gradient is at most this; otherwise `notConverged` is thrown.
    public var stallGradientTolerance: Double

    /// Creates options; the defaults suit scores of order 1–100 and β ≥ 1e-3.
    public init(gradientTolerance: Double = 1e-10, stepTolerance: Double = 1e-14, maxIterations: Int = 200,
                initialLambda: [Double]? = nil, divergenceCheckLambda: Double = 1e6,
                stallGradientTolerance: Double = 1e-7) {
        self.gradientTolerance = gradientTolerance
        self.stepTolerance = stepTolerance
        self.maxIterations = maxIterations
        self.initialLambda = initialLambda
        self.divergenceCheckLambda = divergenceCheckLambda
        self.stallGradientTolerance = stallGradientTolerance
    }
}

/// Why the solver stopped successfully.
public enum DualStopReason: String, Sendable, Codable {
    /// The projected gradient fell below the tolerance.
    case gradient
    /// λ stopped moving (to the step tolerance), or no step could lower D̂ in floating point.
    case step
}

/// The minimiser λ* of D̂ over λ ≥ 0 and what it implies.
public struct DualSolution: Sendable, Codable, Equatable {
    /// λ*, one non-negative multiplier per constraint.
    public var lambda: [Double]
    /// D̂(λ*), the estimated optimal value of the constrained problem.
    public var dual: Double
    /// ∇D̂(λ*) = E_{π*}[g] − thr: ≈ 0 for tight constraints, ≥ 0 for inactive ones (where λ_i = 0).
    public var gradient: [Double]
    /// E_{π*}[g_i] − E_ref[g_i] under the importance weights: equals the margin b_i when constraint i is tight.
    public var improvement: [Double]
    /// E_{π*}[r] − β·KL(π*‖π_ref) = D̂ − λ*ᵀ∇D̂ (§1.2 identity).
    public var objective: Double
    /// E_{π*}[r].
    public var expectedReward: Double
    /// KL(π* ‖ π_ref) averaged over prompts.
    public var klDivergence: Double
    /// Newton/gradient iterations taken.
    public var iterations: Int
    /// ‖λ* − max(λ* − ∇D̂, 0)‖_∞ at the returned point.
    public var projectedGradientNorm: Double
    /// Which rule stopped the solver.
    public var stopReason: DualStopReason
}

/// Why the dual could not be minimised.
public enum DualSolverError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// D̂ has no finite minimiser: the margins ask for more improvement than any reweighting of the samples gives.
    ///
    /// `largestMargins[i]` = mean_n max_k g_i − E_ref[g_i] is the most constraint i alone allows. When every margin is
    /// below its own limit, `jointly` is true: the constraints cannot all be met together.
    case infeasibleMargins(margins: [Double], largestMargins: [Double], thresholds: [Double],
                           largestThresholds: [Double], jointly: Bool)
    /// The iteration limit was reached before the projected gradient was small.
    case notConverged(iterations: Int, projectedGradientNorm: Double, lambda: [Double])

    public var description: String {
        switch self {
        case .infeasibleMargins(let margins, let largest, let thresholds, let largestThresholds, let jointly):
            func list(_ v: [Double]) -> String { v.count == 1 ? "\(v[0])" : "[" + v.map { "\($0)" }.joined(separator: ", ") + "]" }
            if jointly {
                return "dual: the margins \(list(margins)) (thresholds \(list(thresholds))) are each below their own "
                    + "largest allowed margin \(list(largest)), but no reweighting of the samples meets them together, "
                    + "so the dual has no finite minimiser (λ → ∞); lower one or more margins."
            }
            let bad = margins.indices.filter { thresholds[$0] >= largestThresholds[$0] }
            let detail = bad.map { i in
                (margins.count == 1 ? "" : "constraint \(i): ")
                    + "margin \(margins[i]) (threshold \(thresholds[i])) is not below the largest margin the samples allow, "
                    + "\(largest[i]) (threshold \(largestThresholds[i]) = mean over prompts of the best sample's utility)"
            }.joined(separator: "; ")
            return "dual: infeasible: \(detail). The dual has no finite minimiser (λ → ∞); choose a margin below "
                + "\(list(largest)) or sample more responses per prompt."
        case .notConverged(let iterations, let norm, let lambda):
            return "dual: no convergence after \(iterations) iterations (projected gradient \(norm), λ = \(lambda)); "
                + "raise maxIterations or loosen gradientTolerance, or check the scores for extreme values."
        }
    }

    public var errorDescription: String? { description }
}

/// Projected Newton with backtracking line search for min_{λ ≥ 0} D̂(λ).
public struct DualSolver: Sendable {
    /// The stopping rules and limits.
    public var options: DualSolverOptions

    /// Creates a solver.
    public init(options: DualSolverOptions = DualSolverOptions()) {
        self.options = options
    }

    /// Minimises `problem`'s dual; throws `DualSolverError.infeasibleMargins` when no finite minimiser exists.
    public func solve(_ problem: DualProblem) throws -> DualSolution {
        let m = problem.constraintCount
        let scores = problem.scores
        let thresholds = problem.thresholds
        let largestMargins = scores.largestMargins
        func infeasible(jointly: Bool) -> DualSolverError {
            .infeasibleMargins(margins: problem.margins, largestMargins: largestMargins, thresholds: thresholds,
                               largestThresholds: scores.largestThresholds, jointly: jointly)
        }
        // Each constraint alone: as λ_i → ∞ the gradient tends to mean_n max_k g_i − thr_i from below, so a
        // threshold at or above mean_n max_k g_i leaves D̂ decreasing for ever (exact for m = 1).
        for i in 0..<m where thresholds[i] >= scores.largestThresholds[i] {
            throw infeasible(jointly: false)
        }

        var lambda = [Double](repeating: 0, count: m)
        if let start = options.initialLambda {
            try problem.validateLambda(start)
            lambda = start
        }
        var current = problem.evaluate(at: lambda)
        var iterations = 0
        var stopReason: DualStopReason? = nil

        while true {
            let projected = projectedGradient(lambda, current.gradient)
            let pgNorm = projected.map(abs).max() ?? 0
            if pgNorm <= options.gradientTolerance { stopReason = .gradient; break }
            if iterations >= options.maxIterations {
                if isUnbounded(problem, along: lambda) { throw infeasible(jointly: true) }
                throw DualSolverError.notConverged(iterations: iterations, projectedGradientNorm: pgNorm, lambda: lambda)
            }
            iterations += 1

            // ε-active set: at (or within ε of) the bound with the gradient pushing outwards.
            let epsilon = min(1e-12, pgNorm)
            let active = (0..<m).map { lambda[$0] <= epsilon && current.gradient[$0] > 0 }
            var next: DualEvaluation? = nil
            if let direction = newtonDirection(current, active: active) {
                next = lineSearch(problem, from: current, direction: direction, pgNorm: pgNorm)
            }
            if next == nil {
                next = lineSearch(problem, from: current, direction: gradientDirection(current, active: active),
                                  pgNorm: pgNorm)
            }
            guard let accepted = next else {   // nothing lowers D̂ in floating point
                if pgNorm <= options.stallGradientTolerance { stopReason = .step; break }
                if isUnbounded(problem, along: lambda) { throw infeasible(jointly: true) }
                throw DualSolverError.notConverged(iterations: iterations, projectedGradientNorm: pgNorm, lambda: lambda)
            }

            let step = zip(accepted.lambda, lambda).map { abs($0 - $1) }.max() ?? 0
            lambda = accepted.lambda
            current = accepted
            let size = lambda.max() ?? 0
            if size > options.divergenceCheckLambda, isUnbounded(problem, along: lambda) {
                throw infeasible(jointly: true)
            }
            if !size.isFinite { throw infeasible(jointly: true) }
            if step <= options.stepTolerance * (1 + size) {
                let norm = projectedGradient(lambda, current.gradient).map(abs).max() ?? 0
                if norm <= options.stallGradientTolerance { stopReason = .step; break }
            }
        }

        let gradient = current.gradient
        var lambdaDotGradient = 0.0
        for i in 0..<m { lambdaDotGradient += lambda[i] * gradient[i] }
        let pgNorm = projectedGradient(lambda, gradient).map(abs).max() ?? 0
        return DualSolution(
            lambda: lambda, dual: current.value, gradient: gradient,
            improvement: zip(current.expectedUtilities, scores.referenceMeans).map { $0 - $1 },
            objective: current.value - lambdaDotGradient,
            expectedReward: current.expectedReward, klDivergence: current.klDivergence,
            iterations: iterations, projectedGradientNorm: pgNorm, stopReason: stopReason ?? .step)
    }

    /// λ − max(λ − g, 0): zero exactly at a KKT point of min D̂ over λ ≥ 0.
    private func projectedGradient(_ lambda: [Double], _ gradient: [Double]) -> [Double] {
        zip(lambda, gradient).map { l, g in l - max(l - g, 0) }
    }

    /// Whether D̂ has no finite minimiser along the ray through λ (recession slope ≤ 0).
    private func isUnbounded(_ problem: DualProblem, along lambda: [Double]) -> Bool {
        let size = lambda.max() ?? 0
        guard size > 0, size.isFinite else { return !size.isFinite }
        let direction = lambda.map { $0 / size }
        return problem.scores.recessionSlope(direction: direction, thresholds: problem.thresholds) <= 1e-12
    }

    /// Newton direction on the free coordinates (active ones are sent to 0), or nil if the free Hessian is singular.
    private func newtonDirection(_ at: DualEvaluation, active: [Bool]) -> [Double]? {
        let m = at.gradient.count
        let free = (0..<m).filter { !active[$0] }
        var direction = (0..<m).map { active[$0] ? -at.lambda[$0] : 0 }
        guard !free.isEmpty else { return direction }
        let f = free.count
        var block = [Double](repeating: 0, count: f * f)
        var trace = 0.0
        for (a, i) in free.enumerated() {
            for (b, j) in free.enumerated() { block[a * f + b] = at.hessian(i, j) }
            trace += at.hessian(i, i)
        }
        guard trace > 0, trace.isFinite else { return nil }
        // Cholesky with a growing diagonal shift if the (PSD) block is numerically singular.
        var shift = 0.0
        for _ in 0..<8 {
            if let solution = choleskySolve(block, f, shift: shift, rhs: free.map { -at.gradient[$0] }) {
                for (a, i) in free.enumerated() { direction[i] = solution[a] }
                return direction
            }
            shift = shift == 0 ? 1e-12 * trace / Double(f) : shift * 100
        }
        return nil
    }

    /// Steepest-descent direction scaled by 1/trace(H) (an upper bound on the curvature), active coordinates sent to 0.
    private func gradientDirection(_ at: DualEvaluation, active: [Bool]) -> [Double] {
        let m = at.gradient.count
        var trace = 0.0
        var gradientNorm = 0.0
        for i in 0..<m where !active[i] {
            trace += at.hessian(i, i)
            gradientNorm = max(gradientNorm, abs(at.gradient[i]))
        }
        let size = max(1, at.lambda.max() ?? 0)
        // With (almost) no curvature a unit-curvature step could be tiny or huge; aim for a move of order ‖λ‖.
        let scale = trace > 1e-300 ? 1 / trace : size / max(gradientNorm, 1e-300)
        return (0..<m).map { active[$0] ? -at.lambda[$0] : -scale * at.gradient[$0] }
    }

    /// Backtracking along max(λ + t·d, 0) from t = 1 until Armijo holds; nil if no t gives a usable point.
    ///
    /// Near the optimum the predicted decrease falls below the rounding noise of D̂; a step is then accepted if it
    /// lowers the projected-gradient norm instead.
    private func lineSearch(_ problem: DualProblem, from start: DualEvaluation, direction: [Double],
                            pgNorm: Double) -> DualEvaluation? {
        let m = direction.count
        let noise = 1e-13 * max(1, abs(start.value))
        // Trust cap: no coordinate moves by more than 10·max(1, ‖λ‖_∞) in one step. Where the curvature is nearly
        // zero (weights concentrated on one sample) Newton and 1/trace(H) steps are astronomically long, and halving
        // t would never bring them back inside the region where the projection stops clipping.
        let size = start.lambda.max() ?? 0
        let length = direction.map(abs).max() ?? 0
        guard length > 0, length.isFinite else { return nil }
        var t = min(1, 10 * max(1, size) / length)
        while t * length > 1e-16 * (1 + size) {
            var trial = [Double](repeating: 0, count: m)
            var predicted = 0.0
            for i in 0..<m {
                trial[i] = max(start.lambda[i] + t * direction[i], 0)
                predicted += start.gradient[i] * (trial[i] - start.lambda[i])
            }
            if trial == start.lambda { return nil }
            guard predicted <= 0 || abs(predicted) <= noise else { t *= 0.5; continue }
            if trial.allSatisfy({ $0.isFinite }) {
                let value = problem.value(at: trial)
                if value.isFinite {
                    if value <= start.value + 1e-4 * predicted {
                        return problem.evaluate(at: trial)
                    }
                    if abs(predicted) <= noise && abs(value - start.value) <= noise {
                        let candidate = problem.evaluate(at: trial)
                        let norm = projectedGradient(trial, candidate.gradient).map(abs).max() ?? 0
                        if norm < pgNorm { return candidate }
                    }
                }
            }
            t *= 0.5
        }
        return nil
    }

    /// Solves (A + shift·I) x = rhs for a symmetric n × n A by Cholesky; nil if not positive definite.
    private func choleskySolve(_ a: [Double], _ n: Int, shift: Double, rhs: [Double]) -> [Double]? {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var s = a[i * n + j] + (i == j ? shift : 0)
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard s > 1e-300, s.isFinite else { return nil }
                    l[i * n + i] = s.squareRoot()
                } else {
                    l[i * n + j] = s / l[j * n + j]
                }
            }
        }
        var y = rhs
        for i in 0..<n {
            for k in 0..<i { y[i] -= l[i * n + k] * y[k] }
            y[i] /= l[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {
            for k in (i + 1)..<n { y[i] -= l[k * n + i] * y[k] }
            y[i] /= l[i * n + i]
        }
        return y.allSatisfy({ $0.isFinite }) ? y : nil
    }
}

extension DualProblem {
    /// Minimises this dual over λ ≥ 0 with a `DualSolver`.
    public func solve(options: DualSolverOptions = DualSolverOptions()) throws -> DualSolution {
        try DualSolver(options: options).solve(self)
    }

    /// λ* for the given margins on these scores and β (this problem's own bounds are ignored).
    ///
    /// The inverse map is `marginGuaranteed(byLambda:)`: λ* is the optimum exactly for the margins it guarantees.
    public func lambdaForMargin(_ margins: [Double], options: DualSolverOptions = DualSolverOptions()) throws -> [Double] {
        try with(bounds: .margins(margins)).solve(options: options).lambda
    }
}
