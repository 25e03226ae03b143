// Tests of the CAN dual (MoCAN / PeCAN), its solver, pseudo-labels, the Safe-RLHF λ update and the score file,
// against the oracles of algorithms.md §1.7 and §5.5.

import Foundation
import XCTest
import Alignment
import Tensors

final class DualTests: XCTestCase {
    // MARK: Oracle inputs (algorithms.md §1.7, transcribed exactly)

    /// Oracle A: one prompt, exact expectations (weights = π_ref), one constraint.
    private func oracleA(margin: Double = 0.3) throws -> DualProblem {
        let prompt = DualPrompt(rewards: [1.0, 2.0, 0.5], utilities: [[0.5, -1.0, 1.5]], weights: [0.5, 0.3, 0.2])
        return try DualProblem(prompts: [prompt], beta: 0.5, bounds: .margins([margin]))
    }

    /// Oracle B: one prompt, exact expectations, two constraints.
    private func oracleB() throws -> DualProblem {
        let prompt = DualPrompt(rewards: [2, 1, 0, 0.5], utilities: [[-1, 0.5, 1, 0], [0, -0.5, 0.5, 1]],
                                weights: [0.4, 0.3, 0.2, 0.1])
        return try DualProblem(prompts: [prompt], beta: 1, bounds: .margins([0.4, 0.2]))
    }

    /// Oracle C: N = 2 prompts × K = 4 samples, uniform weights, β = 0.1.
    private func oracleCPrompts() -> [DualPrompt] {
        [DualPrompt(rewards: [1, 0, 2, -1], utilities: [[0, 1, -2, 1.5]]),
         DualPrompt(rewards: [0.5, 1.5, -0.5, 0], utilities: [[1, -1, 2, 0.5]])]
    }

    private func oracleC(margin: Double = 0.5) throws -> DualProblem {
        try DualProblem(prompts: oracleCPrompts(), beta: 0.1, bounds: .margins([margin]))
    }

    /// Random scores with correlated reward and utilities (helpfulness and safety pulling apart).
    private func randomProblem(prompts: Int, samples: Int, constraints: Int, beta: Double, seed: UInt64,
                               margin: Double = 0.3) throws -> DualProblem {
        var rng = SplitMix64(seed: seed)
        var list: [DualPrompt] = []
        for _ in 0..<prompts {
            let offset = rng.nextNormal()
            var rewards: [Double] = []
            var utilities = [[Double]](repeating: [], count: constraints)
            for _ in 0..<samples {
                let r = offset + rng.nextNormal()
                rewards.append(r)
                for i in 0..<constraints { utilities[i].append(-0.5 * r + rng.nextNormal() + 0.2 * Double(i)) }
            }
            list.append(DualPrompt(rewards: rewards, utilities: utilities))
        }
        return try DualProblem(prompts: list, beta: beta,
                               bounds: .margins([Double](repeating: margin, count: constraints)))
    }

    // MARK: Oracle A

    func testOracleADualValueGradientAndOptimum() throws {
        let problem = try oracleA()
        assertClose(problem.scores.referenceMeans[0], 0.25, 1e-15, "E_ref[g]")
        assertClose(problem.thresholds[0], 0.55, 1e-15, "threshold")
        assertClose(problem.value(at: [0]), 1.51307, 1e-5, "D(0)")
        assertClose(problem.gradient(at: [0])[0], -1.21529, 1e-5, "D'(0)")
        assertClose(problem.value(at: [1]), 1.02163, 1e-5, "D(1)")
        assertClose(problem.gradient(at: [1])[0], 0.277646, 1e-5, "D'(1)")

        let solution = try problem.solve()
        assertClose(solution.lambda[0], 0.794176, 1e-5, "λ*")
        assertClose(solution.dual, 0.991705, 1e-5, "D(λ*)")
        XCTAssertLessThan(abs(solution.gradient[0]), 1e-10, "D'(λ*) vanishes")
        assertClose(solution.improvement[0], 0.3, 1e-10, "improvement = margin (tight)")
        assertClose(solution.expectedReward, 1.02304, 1e-5, "E*[r]")
        assertClose(solution.klDivergence, 0.0626788, 1e-6, "KL(π*‖π_ref)")
        assertClose(solution.objective, solution.expectedReward - 0.5 * solution.klDivergence, 1e-12,
                    "objective = E[r] − βKL")
        assertClose(solution.objective, 0.991705, 1e-5, "objective = primal optimum")
        assertClose(problem.hessian(at: solution.lambda)[0], 1.53634, 1e-5, "D''(λ*)")

        let policy = problem.policyWeights(at: solution.lambda)[0]
        for (p, expected) in zip(policy, [0.469552, 0.192179, 0.338269]) { assertClose(p, expected, 1e-5, "π*") }
        let expectedUtility = zip(policy, [0.5, -1.0, 1.5]).map { $0 * $1 }.reduce(0, +)
        assertClose(expectedUtility, 0.55, 1e-10, "E*[g] (tight)")

        let unconstrained = problem.evaluate(at: [0])
        for (p, expected) in zip(problem.policyWeights(at: [0])[0], [0.179193, 0.794439, 0.0263685]) {
            assertClose(p, expected, 1e-5, "π_r")
        }
        assertClose(unconstrained.expectedUtilities[0], -0.665290, 1e-5, "E_{π_r}[g]")
        assertClose(unconstrained.expectedReward, 1.78125, 1e-5, "E_{π_r}[r]")
    }

    /// The official fixed-step PGD λ ← max(λ − 0.5·D'(λ), 0) from 0, using our gradient.
    func testOracleAProjectedGradientIterates() throws {
        let problem = try oracleA()
        var lambda = 0.0
        for expected in [0.607645, 0.763334, 0.787422, 0.792629, 0.793818, 0.794093] {
            lambda = max(lambda - 0.5 * problem.gradient(at: [lambda])[0], 0)
            assertClose(lambda, expected, 1e-5, "PGD iterate")
        }
    }

    func testOracleAMarginSweepIsMonotoneWithExactZeroWhenInactive() throws {
        let base = try oracleA()
        var previous = -1.0
        for margin in stride(from: -1.0, through: 1.2, by: 0.1) {
            let lambda = try base.lambdaForMargin([margin])[0]
            XCTAssertGreaterThanOrEqual(lambda, previous, "λ*(b) non-decreasing at b = \(margin)")
            previous = lambda
        }
        let inactive = try oracleA(margin: -1).solve()
        XCTAssertEqual(inactive.lambda, [0], "inactive constraint ⇒ λ* = 0 exactly")
        XCTAssertEqual(inactive.iterations, 0)
        XCTAssertGreaterThan(inactive.gradient[0], 0)
        assertClose(inactive.improvement[0], -0.665290 - 0.25, 1e-5, "π* = π_r")
    }

    // MARK: Oracle B

    func testOracleBTwoConstraintsTightAtOptimum() throws {
        let problem = try oracleB()
        assertClose(problem.scores.referenceMeans[0], -0.05, 1e-15, "E_ref[g1]")
        assertClose(problem.scores.referenceMeans[1], 0.05, 1e-15, "E_ref[g2]")
        let solution = try problem.solve()
        XCTAssertGreaterThan(solution.lambda[0], 0)
        XCTAssertGreaterThan(solution.lambda[1], 0)
        XCTAssertLessThan(abs(solution.gradient[0]), 1e-10, "KKT: ∂D/∂λ1 = 0")
        XCTAssertLessThan(abs(solution.gradient[1]), 1e-10, "KKT: ∂D/∂λ2 = 0")
        assertClose(solution.improvement[0], 0.4, 1e-10, "constraint 1 tight")
        assertClose(solution.improvement[1], 0.2, 1e-10, "constraint 2 tight")
        XCTAssertLessThan(solution.projectedGradientNorm, 1e-10)

        // Second method 1: scipy L-BFGS-B (python3, scipy 1.17.1) on the same dual.
        assertClose(solution.lambda[0], 1.43078024, 1e-7, "λ1* vs L-BFGS-B")
        assertClose(solution.lambda[1], 1.27475678, 1e-7, "λ2* vs L-BFGS-B")
        assertClose(solution.dual, 0.5050465038, 1e-9, "D* vs L-BFGS-B")
        // Second method 2: plain projected gradient descent with step 1/trace(H) ≤ 1/L.
        var lambda = [0.0, 0.0]
        for _ in 0..<20_000 {
            let g = problem.gradient(at: lambda)
            lambda = [max(lambda[0] - 0.5 * g[0], 0), max(lambda[1] - 0.5 * g[1], 0)]
        }
        assertClose(solution.lambda[0], lambda[0], 1e-8, "λ1* vs PGD")
        assertClose(solution.lambda[1], lambda[1], 1e-8, "λ2* vs PGD")
        // Primal check: the objective equals E_{π*}[r] − β KL and the dual value (zero gradient).
        assertClose(solution.objective, solution.expectedReward - solution.klDivergence, 1e-12, "objective identity")
        assertClose(solution.objective, solution.dual, 1e-10, "strong duality at a tight optimum")
    }

    // MARK: Oracle C

    func testOracleCEmpiricalDual() throws {
        let problem = try oracleC()
        assertClose(problem.thresholds[0], 0.875, 1e-15, "thr = mean(S) + 0.5")
        assertClose(problem.gradient(at: [0])[0], -2.37491, 1e-5, "∇D̂(0)")
        let solution = try problem.solve()
        assertClose(solution.lambda[0], 0.948537, 1e-5, "λ*")
        assertClose(solution.dual, 0.302634, 1e-5, "D̂(λ*)")
        assertClose(solution.improvement[0], 0.5, 1e-10, "improvement = margin")
        assertClose(solution.expectedReward, 0.374416, 1e-5, "weighted reward")
        assertClose(problem.evaluate(at: solution.lambda).expectedUtilities[0], 0.875, 1e-10, "weighted safety (tight)")
        let weights = problem.policyWeights(at: solution.lambda)
        for (p, expected) in zip(weights[0], [0.624623, 0.373353, 7.93727e-5, 0.0019449]) {
            assertClose(p, expected, 1e-5, "prompt 1 weights")
        }
        for (p, expected) in zip(weights[1], [0.625817, 7.95245e-5, 0.374066, 3.67496e-5]) {
            assertClose(p, expected, 1e-5, "prompt 2 weights")
        }
        XCTAssertLessThan(solution.iterations, 30)
    }

    /// The official fixed step (lr = 1 from λ0 = 1) oscillates on oracle C; the Newton solver converges from anywhere.
    func testOracleCFixedStepOscillatesButSolverConverges() throws {
        let problem = try oracleC()
        var lambda = 1.0
        for expected in [0.873389, 1.02897, 0.83002] {
            lambda = max(lambda - 1 * problem.gradient(at: [lambda])[0], 0)
            assertClose(lambda, expected, 1e-5, "lr = 1 iterate")
        }
        for start in [0.0, 0.5, 1.0, 5.0, 50.0, 1000.0] {
            let solution = try problem.solve(options: DualSolverOptions(initialLambda: [start]))
            assertClose(solution.lambda[0], 0.948537, 1e-5, "λ* from λ0 = \(start)")
            XCTAssertLessThan(solution.projectedGradientNorm, 1e-10, "converged from λ0 = \(start)")
        }
    }

    // MARK: Oracle D (PeCAN)

    func testOracleDPeCANDual() throws {
        let prompt = PeCANPrompt(referenceLogProbs: [-10, -12, -11, -9.5], helpfulLogProbs: [-9, -12.5, -10, -10],
                                 safeLogProbs: [-10.5, -12.5, -10, -11])
        let dual = try PeCANDual(prompts: [prompt], beta: 0.1, margins: [0.05])
        assertClose(dual.klEstimates[0], 0.375, 1e-15, "KL̂")
        XCTAssertEqual(dual.problem.scores.promptCount, 1)
        assertClose(dual.gradient(at: [0])[0], -0.103032, 1e-5, "grad(0)")
        let solution = try dual.solve()
        assertClose(solution.lambda[0], 0.140106, 1e-5, "λ*")
        for (p, expected) in zip(dual.policyWeights(at: solution.lambda)[0], [0.377221, 0.0841694, 0.465444, 0.0731656]) {
            assertClose(p, expected, 1e-5, "softmax(h + λ*s)")
        }
        assertClose(solution.improvement[0] * 0.1, 0.05, 1e-10, "β·(E_π[s] − E_ref[s]) = b when tight")
        // D_P(λ) = LME(h + λs) + λ(KL̂ − b/β).
        let h = [1.0, -0.5, 1, -0.5], s = [-0.5, -0.5, 1, -1.5], l = 0.3
        let lme = log(zip(h, s).map { exp($0 + l * $1) }.reduce(0, +) / 4)
        assertClose(dual.value(at: [l]), lme + l * (0.375 - 0.5), 1e-14, "D_P")
    }

    // MARK: Oracle E (pseudo-labels)

    func testOracleEPseudoLabels() {
        // MoCAN: g = −c.
        assertClose(pseudoLabelProbability(r0: 1.2, g0: -2.0, r1: 0.4, g1: 1.0, lambda: 0.75), 0.809998, 1e-6, "MoCAN")
        // PeCAN: r = h, g = s; official scale 1 and β-scaled.
        assertClose(pseudoLabelProbability(r0: 0.3, g0: -0.5, r1: -0.2, g1: 0.4, lambda: 0.75), 0.543639, 1e-6, "PeCAN")
        assertClose(pseudoLabelProbability(r0: 0.3, g0: -0.5, r1: -0.2, g1: 0.4, lambda: 0.75, scale: 0.1),
                    0.504375, 1e-6, "PeCAN β-scaled")
        assertClose(pseudoLabelProbability(r0: 0, g0: [0, 0], r1: 1, g1: [2, -1], lambda: [0.5, 2]),
                    1 / (1 + exp(0.0)), 1e-15, "two constraints: 1 + 1 − 2 = 0")
        XCTAssertEqual(pseudoLabelProbability(r0: 0, g0: 0, r1: 1e6, g1: 0, lambda: 1), 1)
        XCTAssertEqual(pseudoLabelProbability(r0: 1e6, g0: 0, r1: 0, g1: 0, lambda: 1), 0)

        var rng = SplitMix64(seed: 42)
        var again = SplitMix64(seed: 42)
        var ones = 0
        let draws = 100_000
        for _ in 0..<draws {
            let label = pseudoLabel(r0: 1.2, g0: -2.0, r1: 0.4, g1: 1.0, lambda: 0.75, rng: &rng)
            let repeated = pseudoLabel(r0: 1.2, g0: -2.0, r1: 0.4, g1: 1.0, lambda: 0.75, rng: &again)
            XCTAssertEqual(label, repeated, "same seed, same labels")
            assertClose(label.probability, 0.809998, 1e-6, "label probability")
            if label.prefersSecond { ones += 1 }
        }
        // Binomial standard deviation √(p(1−p)/n) ≈ 0.00124; allow 5σ.
        assertClose(Double(ones) / Double(draws), 0.809998, 0.0062, "Bernoulli frequency")
    }

    func testSplitMix64MatchesReferenceStream() {
        // Reference stream of SplitMix64 seeded with 1234567 (Vigna's splitmix64.c).
        var rng = SplitMix64(seed: 1_234_567)
        XCTAssertEqual(rng.next(), 6_457_827_717_110_365_317)
        XCTAssertEqual(rng.next(), 3_203_168_211_198_807_973)
        let u = rng.nextUnit()
        XCTAssertTrue(u >= 0 && u < 1)
    }

    // MARK: Multi-constraint behaviour

    func testInactiveConstraintGivesExactlyZeroMultiplier() throws {
        let base = try randomProblem(prompts: 30, samples: 16, constraints: 2, beta: 0.5, seed: 7)
        let problem = try base.with(bounds: .margins([0.3, -2.0]))
        let solution = try problem.solve()
        XCTAssertGreaterThan(solution.lambda[0], 0, "constraint 1 active")
        XCTAssertEqual(solution.lambda[1], 0, "constraint 2 inactive ⇒ λ2 = 0 exactly")
        XCTAssertGreaterThan(solution.gradient[1], 0, "slack of the inactive constraint")
        XCTAssertLessThan(abs(solution.gradient[0]), 1e-10)
        assertClose(solution.improvement[0], 0.3, 1e-10, "active constraint tight")
        XCTAssertGreaterThan(solution.improvement[1], -2.0)
    }

    func testThreeConstraintsAllTight() throws {
        let problem = try randomProblem(prompts: 40, samples: 32, constraints: 3, beta: 0.2, seed: 11, margin: 0.25)
        let solution = try problem.solve()
        for i in 0..<3 {
            XCTAssertGreaterThan(solution.lambda[i], 0)
            XCTAssertLessThan(abs(solution.gradient[i]), 1e-10)
            assertClose(solution.improvement[i], 0.25, 1e-10, "constraint \(i) tight")
        }
    }

    func testThresholdsAreEquivalentToMargins() throws {
        let problem = try oracleC()
        let viaThreshold = try problem.with(bounds: .thresholds([0.875])).solve()
        assertClose(viaThreshold.lambda[0], try problem.solve().lambda[0], 1e-14, "thr = E_ref[g] + b")
        assertClose(try problem.with(bounds: .thresholds([0.875])).margins[0], 0.5, 1e-15, "margin from threshold")
    }

    func testWeightsAreNormalisedPerPromptAndZeroWeightsIgnored() throws {
        let a = try DualProblem(prompts: [DualPrompt(rewards: [1, 2, 0.5, 9], utilities: [[0.5, -1, 1.5, 9]],
                                                     weights: [5, 3, 2, 0])],
                                beta: 0.5, bounds: .margins([0.3]))
        let b = try oracleA()
        XCTAssertEqual(a.scores.referenceMeans[0], b.scores.referenceMeans[0], accuracy: 1e-15)
        XCTAssertEqual(a.scores.largestMargins[0], 1.25, accuracy: 1e-15, "max over the support only")
        assertClose(try a.solve().lambda[0], 0.794176, 1e-5, "zero-weight sample has no effect")
        XCTAssertEqual(a.policyWeights(at: [0.5])[0][3], 0)
    }

    /// Margins from well inside to just below the feasibility limit, β from 0.01 to 1, m = 1 and 2, any start.
    func testSolverConvergesAcrossMarginsBetasAndStarts() throws {
        var rng = SplitMix64(seed: 2024)
        for trial in 0..<60 {
            let m = 1 + trial % 2
            let beta = [0.01, 0.1, 1.0][trial % 3]
            let base = try randomProblem(prompts: 20, samples: 16, constraints: m, beta: beta, seed: UInt64(trial))
            let fraction = [0.05, 0.3, 0.6, 0.9, 0.99][trial % 5]
            let margins = base.scores.largestMargins.map { fraction * $0 / Double(m) }
            let start = (0..<m).map { _ in [0.0, 1, 100][Int(rng.next() % 3)] }
            let problem = try base.with(bounds: .margins(margins))
            let solution = try problem.solve(options: DualSolverOptions(initialLambda: start))
            XCTAssertLessThanOrEqual(solution.projectedGradientNorm, 1e-9, "trial \(trial): β \(beta), margins \(margins)")
            for i in 0..<m where solution.lambda[i] > 0 {
                assertClose(solution.improvement[i], margins[i], 1e-8, "trial \(trial) constraint \(i) tight")
            }
            for i in 0..<m where solution.lambda[i] == 0 {
                XCTAssertGreaterThanOrEqual(solution.improvement[i], margins[i] - 1e-9, "trial \(trial) slack")
            }
        }
    }

    // MARK: Convexity and derivatives

    func testDualIsConvexAlongRandomDirections() throws {
        let problem = try randomProblem(prompts: 25, samples: 12, constraints: 3, beta: 0.1, seed: 3)
        var rng = SplitMix64(seed: 99)
        for _ in 0..<200 {
            let point = (0..<3).map { _ in 3 * rng.nextUnit() }
            let direction = (0..<3).map { _ in rng.nextNormal() }
            for step in [1e-3, 1e-2, 0.1, 1.0] {
                let plus = zip(point, direction).map { $0 + step * $1 }
                let minus = zip(point, direction).map { $0 - step * $1 }
                let second = problem.value(at: plus) - 2 * problem.value(at: point) + problem.value(at: minus)
                XCTAssertGreaterThanOrEqual(second, -1e-12, "second difference at step \(step)")
            }
        }
    }

    func testGradientAndHessianMatchFiniteDifferences() throws {
        let problem = try randomProblem(prompts: 20, samples: 10, constraints: 3, beta: 0.3, seed: 5)
        let m = 3
        let h = 1e-5
        for point in [[0.0, 0.0, 0.0], [0.4, 1.1, 0.2], [2.0, 0.1, 3.0]] {
            let evaluation = problem.evaluate(at: point)
            for i in 0..<m {
                var plus = point, minus = point
                plus[i] += h
                minus[i] -= h
                let numeric = (problem.value(at: plus) - problem.value(at: minus)) / (2 * h)
                assertClose(evaluation.gradient[i], numeric, 1e-7, "∂D/∂λ\(i)")
                let gPlus = problem.gradient(at: plus), gMinus = problem.gradient(at: minus)
                for j in 0..<m {
                    assertClose(evaluation.hessian(j, i), (gPlus[j] - gMinus[j]) / (2 * h), 1e-7, "∂²D/∂λ\(j)∂λ\(i)")
                    XCTAssertEqual(evaluation.hessian(i, j), evaluation.hessian(j, i), "Hessian symmetric")
                }
            }
        }
    }

    func testExtremeLogitsStayFinite() throws {
        // Reward-model scale scores (±1000) with a tiny β: logits of order 10⁶.
        let prompts = [DualPrompt(rewards: [1000, -1000, 500, 0], utilities: [[-5, 5, 0, 2]]),
                       DualPrompt(rewards: [-800, 200, 999, -3], utilities: [[4, -4, -1, 3]])]
        let problem = try DualProblem(prompts: prompts, beta: 1e-3, bounds: .margins([2]))
        XCTAssertTrue(problem.value(at: [0]).isFinite)
        let solution = try problem.solve()
        XCTAssertTrue(solution.lambda[0].isFinite && solution.dual.isFinite)
        assertClose(solution.improvement[0], 2, 1e-8, "tight")
    }

    // MARK: Infeasibility

    func testInfeasibleMarginReportsLargestAllowedMargin() throws {
        // Oracle C: mean_n max_k g = (1.5 + 2)/2 = 1.75, reference mean 0.375 ⇒ largest margin 1.375.
        let feasible = try oracleC(margin: 1.3).solve()
        XCTAssertTrue(feasible.lambda[0].isFinite)
        assertClose(feasible.improvement[0], 1.3, 1e-9, "close to the limit is still solvable")
        for margin in [1.375, 1.4, 10] {
            XCTAssertThrowsError(try oracleC(margin: margin).solve()) { error in
                guard case .infeasibleMargins(let margins, let largest, _, let largestThresholds, let jointly)? =
                        error as? DualSolverError else { return XCTFail("unexpected error \(error)") }
                XCTAssertEqual(margins, [margin])
                XCTAssertEqual(largest[0], 1.375, accuracy: 1e-15)
                XCTAssertEqual(largestThresholds[0], 1.75, accuracy: 1e-15)
                XCTAssertFalse(jointly)
                XCTAssertTrue("\(error)".contains("1.375"), "message names the largest margin: \(error)")
            }
        }
        XCTAssertThrowsError(try oracleC().with(bounds: .thresholds([1.8])).solve()) { error in
            XCTAssertTrue("\(error)".contains("1.75"), "message names the largest threshold: \(error)")
        }
    }

    func testJointlyInfeasibleMarginsAreDetected() throws {
        // g2 = −g1: each margin alone is feasible, but improving both is impossible.
        let prompts = oracleCPrompts().map { p in
            DualPrompt(rewards: p.rewards, utilities: [p.utilities[0], p.utilities[0].map { -$0 }])
        }
        let problem = try DualProblem(prompts: prompts, beta: 0.1, bounds: .margins([0.2, 0.2]))
        XCTAssertTrue(problem.scores.largestMargins.allSatisfy { $0 > 0.2 })
        XCTAssertThrowsError(try problem.solve()) { error in
            guard case .infeasibleMargins(_, let largest, _, _, let jointly)? = error as? DualSolverError else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertTrue(jointly)
            XCTAssertEqual(largest.count, 2)
            XCTAssertEqual(largest[0], 1.375, accuracy: 1e-15)
        }
        // Per-constraint limits are reported for m > 1 too.
        XCTAssertThrowsError(try problem.with(bounds: .margins([0.1, 5])).solve()) { error in
            XCTAssertTrue("\(error)".contains("constraint 1"), "\(error)")
        }
    }

    // MARK: Margin ↔ λ

    func testMarginLambdaRoundTrip() throws {
        let problem = try oracleC()
        var previous = -Double.infinity
        for lambda in [0.0, 0.1, 0.5, 0.948537, 2, 4] {
            let margin = try problem.marginGuaranteed(byLambda: [lambda])
            XCTAssertGreaterThanOrEqual(margin[0], previous, "margin non-decreasing in λ")
            previous = margin[0]
            if lambda > 0 {
                assertClose(try problem.lambdaForMargin(margin)[0], lambda, 1e-8, "λ → b → λ at λ = \(lambda)")
            }
        }
        assertClose(try problem.marginGuaranteed(byLambda: [0.948537])[0], 0.5, 1e-5, "oracle C margin")
        let multi = try randomProblem(prompts: 30, samples: 24, constraints: 2, beta: 0.25, seed: 21)
        let lambda = [0.7, 1.9]
        let margins = try multi.marginGuaranteed(byLambda: lambda)
        let back = try multi.lambdaForMargin(margins)
        assertClose(back[0], lambda[0], 1e-8, "m = 2 round trip λ1")
        assertClose(back[1], lambda[1], 1e-8, "m = 2 round trip λ2")
        XCTAssertThrowsError(try problem.marginGuaranteed(byLambda: [-1])) { error in
            XCTAssertEqual(error as? DualProblemError, .negativeLambda(index: 0, value: -1))
        }
    }

    // MARK: Input validation

    func testInvalidInputsAreRejected() throws {
        let prompts = oracleCPrompts()
        XCTAssertThrowsError(try DualProblem(prompts: prompts, beta: 0, bounds: .margins([0.5]))) { error in
            XCTAssertEqual(error as? DualProblemError, .nonPositiveBeta(0))
        }
        XCTAssertThrowsError(try DualProblem(prompts: prompts, beta: 0.1, bounds: .margins([0.5, 0.1]))) { error in
            XCTAssertEqual(error as? DualProblemError, .countMismatch(what: "margin(s)", expected: 1, actual: 2))
        }
        XCTAssertThrowsError(try DualScores(prompts: [])) { error in
            XCTAssertEqual(error as? DualProblemError, .noPrompts)
        }
        XCTAssertThrowsError(try DualScores(prompts: [DualPrompt(rewards: [1, .nan], utilities: [[0, 0]])])) { error in
            XCTAssertEqual(error as? DualProblemError, .nonFinite(prompt: 0, field: "rewards", index: 1))
        }
        XCTAssertThrowsError(try DualScores(prompts: [prompts[0], DualPrompt(rewards: [1], utilities: [[0], [1]])])) {
            XCTAssertEqual($0 as? DualProblemError, .constraintCountMismatch(prompt: 1, expected: 1, actual: 2))
        }
        XCTAssertThrowsError(try DualScores(prompts: [DualPrompt(rewards: [1, 2], utilities: [[0, 1]], weights: [0, 0])]))
        XCTAssertThrowsError(try DualScores(prompts: [DualPrompt(rewards: [1, 2], utilities: [[0, 1]], weights: [-1, 2])]))
    }

    // MARK: Safe-RLHF PPO-Lagrangian (§5.5)

    func testLagrangeMultiplierUpdateOracle() throws {
        var update = try LagrangeMultiplierUpdate()
        XCTAssertEqual(update.lambda, 1)
        assertClose(update.update(episodeCost: 0.5), 1.05127, 1e-5, "λ1 = e^0.05")
        assertClose(update.lambda, exp(0.05), 1e-15, "λ1 exact")
        assertClose(update.advantage(reward: 0.6, cost: 0.9), -0.168746, 1e-6, "A = (A_R − λA_C)/(1+λ)")
        assertClose(update.update(episodeCost: 0.5), 1.10801, 1e-5, "λ2")
        XCTAssertEqual(update.advantages(reward: [0.6], cost: [0.9]),
                       [LagrangeMultiplierUpdate.advantage(reward: 0.6, cost: 0.9, lambda: update.lambda)])

        var clamped = try LagrangeMultiplierUpdate(initialLambda: 4.9, learningRate: 1, lambdaMax: 5)
        clamped.update(episodeCost: 10)
        assertClose(clamped.lambda, 5, 1e-12, "clamped at λ_max")
        clamped.update(episodeCost: -10)
        XCTAssertGreaterThan(clamped.lambda, 0, "log-parameterised λ stays positive")

        var delayed = try LagrangeMultiplierUpdate(delaySteps: 2)
        delayed.update(episodeCost: 0.5)
        delayed.update(episodeCost: 0.5)
        XCTAssertEqual(delayed.lambda, 1, "held during the delay")
        assertClose(delayed.update(episodeCost: 0.5), 1.05127, 1e-5, "first update after the delay")

        XCTAssertThrowsError(try LagrangeMultiplierUpdate(initialLambda: 0)) { error in
            XCTAssertEqual(error as? LagrangeMultiplierError, .nonPositiveInitialLambda(0))
        }
    }

    // MARK: Score file

    private func writeTemporary(_ text: String, name: String = "scores") throws -> String {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("dualtests-\(name)-\(UUID().uuidString).jsonl")
        try text.write(to: url, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    func testScoreFileParsesPromptsAndMatchesOracleC() throws {
        let text = """
        {"prompt": "a \\"quoted\\" \\u00e9 prompt", "rewards": [1, 0, 2.0, -1], "utilities": [[0, 1, -2, 1.5]]}

        {"rewards": [0.5, 1.5, -0.5, 0], "utilities": [[1, -1, 2, 0.5]], "weights": null, "meta": {"k": [1, {"x": true}]}}
        """
        let path = try writeTemporary(text + "\r\n\n")
        let prompts = try DualScoreFile.read(path: path)
        XCTAssertEqual(prompts, oracleCPrompts())
        let problem = try DualProblem(scores: DualScoreFile.readScores(path: path), beta: 0.1, bounds: .margins([0.5]))
        assertClose(try problem.solve().lambda[0], 0.948537, 1e-5, "λ* from file")

        let weighted = [DualPrompt(rewards: [1, 2, 0.5], utilities: [[0.5, -1, 1.5], [0.1, 0.2, 1e-300]],
                                   weights: [0.5, 0.3, 0.2])]
        let roundTrip = try DualScoreFile.parse(Data(DualScoreFile.format(weighted).utf8), file: "mem")
        XCTAssertEqual(roundTrip, weighted, "format/parse round trip is exact")
    }

    func testScoreFileErrorsNameFileLineAndField() throws {
        let good = #"{"rewards": [1, 2], "utilities": [[0, 1]]}"#
        func expect(_ lines: [String], _ expected: (String) -> DualScoreFileError, _ label: String,
                    file: StaticString = #filePath, line: UInt = #line) throws {
            let path = try writeTemporary(lines.joined(separator: "\n"))
            XCTAssertThrowsError(try DualScoreFile.read(path: path), label, file: file, line: line) { error in
                XCTAssertEqual(error as? DualScoreFileError, expected(path), label, file: file, line: line)
                XCTAssertTrue("\(error)".contains(path), "message names the file", file: file, line: line)
            }
        }
        try expect([good, good, #"{"rewards": [1, 2], "utilities": [[0, 1, 2]]}"#],
                   { .lengthMismatch(file: $0, line: 3, field: "utilities[0]", expected: 2, actual: 3) }, "utility length")
        try expect([good, #"{"rewards": [1, 2], "utilities": [[0, 1]], "weights": [1]}"#],
                   { .lengthMismatch(file: $0, line: 2, field: "weights", expected: 2, actual: 1) }, "weight length")
        try expect([good, #"{"rewards": [1, NaN], "utilities": [[0, 1]]}"#],
                   { .nonFinite(file: $0, line: 2, field: "rewards[1]", text: "NaN") }, "NaN")
        try expect(["", good, #"{"rewards": [1, 2], "utilities": [[0, 1], [2, 0]]}"#],
                   { .constraintCountMismatch(file: $0, line: 3, expected: 1, actual: 2, firstLine: 2) }, "m differs")
        try expect([good, #"{"rewards": [1, 2], "utilities": [[0, 1], [-Infinity, 0]]}"#],
                   { .nonFinite(file: $0, line: 2, field: "utilities[1][0]", text: "-Infinity") }, "-Infinity")
        try expect([#"{"rewards": [1, 2], "utilities": [[0, 1e999]]}"#],
                   { .nonFinite(file: $0, line: 1, field: "utilities[0][1]", text: "1e999") }, "overflow")
        try expect([good, good, good, #"{"rewards": [1, 2], "utilities": [[0, 1]]"#],
                   { .invalidJSON(file: $0, line: 4, column: 42, detail: "expected ',' or '}' in object") }, "truncated")
        try expect([good, #"{"utilities": [[0, 1]]}"#],
                   { .missingField(file: $0, line: 2, field: "rewards") }, "missing rewards")
        try expect([#"{"rewards": [1, 2]}"#], { .missingField(file: $0, line: 1, field: "utilities") }, "missing utilities")
        try expect([#"{"rewards": [1, 2], "utilities": [0, 1]}"#],
                   { .wrongType(file: $0, line: 1, field: "utilities",
                                expected: "an array of m ≥ 1 arrays of numbers, e.g. [[g_1, ..., g_K]] for one constraint") },
                   "flat utilities")
        try expect([#"{"rewards": [1, "2"], "utilities": [[0, 1]]}"#],
                   { .wrongType(file: $0, line: 1, field: "rewards[1]", expected: "a number") }, "string reward")
        try expect([good, #"{"rewards": [1, 2], "utilities": [[0, 1]], "weights": [0.5, -0.1]}"#],
                   { .invalidWeights(file: $0, line: 2, detail: "weights[1] is -0.1") }, "negative weight")
        try expect([#"[1, 2]"#], { .notAnObject(file: $0, line: 1) }, "not an object")
        try expect(["", "  ", ""], { .empty(file: $0) }, "blank file")
        try expect([], { .empty(file: $0) }, "empty file")
        XCTAssertThrowsError(try DualScoreFile.read(path: "/nonexistent/dual-scores.jsonl")) { error in
            guard case .unreadable(let file, _)? = error as? DualScoreFileError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, "/nonexistent/dual-scores.jsonl")
        }
    }

    // MARK: The CAN paper's dual size

    /// 1,000 prompts × 128 samples (the CAN paper's dual sample) converge to a stationary point
    /// (projected gradient below 1e-10); its speed is measured by `dualign bench`, not here.
    func testThousandPromptsBy128SamplesConverges() throws {
        let problem = try randomProblem(prompts: 1000, samples: 128, constraints: 1, beta: 0.1, seed: 42, margin: 1.0)
        let solution = try problem.solve()
        XCTAssertLessThan(solution.projectedGradientNorm, 1e-10)
        XCTAssertGreaterThan(solution.lambda[0], 0, "a margin of 1.0 binds the constraint")
    }

    // MARK: Helpers

    private func assertClose(_ actual: Double, _ expected: Double, _ tolerance: Double, _ name: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(actual.isFinite, "\(name): \(actual) is not finite", file: file, line: line)
        XCTAssertLessThanOrEqual(abs(actual - expected), tolerance,
                                 "\(name): got \(actual), expected \(expected) ± \(tolerance)", file: file, line: line)
    }
}
