// Tests of the Safe-RLHF reward- and cost-model losses against the oracles of algorithms.md §5.4.

import Foundation
import XCTest
import Alignment

final class ScoreModelLossTests: XCTestCase {
    /// §5.4: R_better = 1.3, R_worse = 0.2 ⇒ 0.287335, and 0.288200 with regularization 0.001.
    func testRewardModelMatchesOracle() {
        let plain = rewardModelLoss(better: [1.3], worse: [0.2], regularization: 0)
        assertClose(plain.loss, 0.287335, tolerance: 5e-7, "reward-model loss")
        // dL/dR_better = −σ(−1.1), dL/dR_worse = +σ(−1.1).
        let pull = 1 / (1 + exp(1.1))
        assertClose(plain.dBetter[0], -pull, tolerance: 1e-15, "reward-model dL/dR_better")
        assertClose(plain.dWorse[0], pull, tolerance: 1e-15, "reward-model dL/dR_worse")
        assertClose(plain.metrics["accuracy"], 1, tolerance: 0, "reward-model accuracy")

        let regularized = rewardModelLoss(better: [1.3], worse: [0.2], regularization: 0.001)
        assertClose(regularized.loss, 0.288200, tolerance: 5e-7, "regularized reward-model loss")
    }

    /// §5.4: safer (safe) C = −0.8, unsafer (unsafe) C = 1.1 ⇒ 0.797823 (0.798748 with reg 0.001);
    /// both unsafe with C_safer = 0.5, C_unsafer = 1.5 ⇒ 0.988752.
    func testCostModelMatchesOracles() throws {
        let plain = try costModelLoss(safer: [-0.8], unsafer: [1.1], saferIsSafe: [true], unsaferIsSafe: [false],
                                      regularization: 0)
        assertClose(plain.loss, 0.797823, tolerance: 5e-7, "cost-model loss (safe vs unsafe)")
        assertClose(plain.metrics["accuracy"], 1, tolerance: 0, "cost-model accuracy (safe vs unsafe)")
        assertClose(plain.metrics["safety_accuracy"], 1, tolerance: 0, "cost-model safety_accuracy (safe vs unsafe)")

        let regularized = try costModelLoss(safer: [-0.8], unsafer: [1.1], saferIsSafe: [true], unsaferIsSafe: [false],
                                            regularization: 0.001)
        assertClose(regularized.loss, 0.798748, tolerance: 5e-7, "regularized cost-model loss (safe vs unsafe)")

        let bothUnsafe = try costModelLoss(safer: [0.5], unsafer: [1.5], saferIsSafe: [false], unsaferIsSafe: [false],
                                           regularization: 0)
        assertClose(bothUnsafe.loss, 0.988752, tolerance: 5e-7, "cost-model loss (both unsafe)")
    }

    /// Batches average the per-pair losses and count accuracies over pairs (and over answers for safety).
    func testBatchMetrics() throws {
        let reward = rewardModelLoss(better: [1.3, 0.1], worse: [0.2, 0.5], regularization: 0)
        let first = rewardModelLoss(better: [1.3], worse: [0.2], regularization: 0)
        let second = rewardModelLoss(better: [0.1], worse: [0.5], regularization: 0)
        assertClose(reward.loss, (first.loss + second.loss) / 2, tolerance: 1e-15, "reward-model batch loss")
        assertClose(reward.metrics["accuracy"], 0.5, tolerance: 0, "reward-model batch accuracy")

        // Pair 0: correct order, both signs right. Pair 1: wrong order; safer safe but C = 0.3 > 0 (wrong sign),
        // unsafer unsafe with C = 0.2 > 0 (right sign). So accuracy 1/2 and safety accuracy 3/4.
        let cost = try costModelLoss(safer: [-0.8, 0.3], unsafer: [1.1, 0.2], saferIsSafe: [true, true],
                                     unsaferIsSafe: [false, false], regularization: 0)
        assertClose(cost.metrics["accuracy"], 0.5, tolerance: 0, "cost-model batch accuracy")
        assertClose(cost.metrics["safety_accuracy"], 0.75, tolerance: 0, "cost-model batch safety_accuracy")
    }

    /// An unranked pair (both safe, neither less harmful) trains the sign terms only:
    /// C = −0.8 and 0.4 ⇒ −log σ(0.8) − log σ(−0.4) = 1.284116, dC = σ(C) for each; accuracy counts ranked pairs.
    func testUnrankedPairTrainsSignsOnly() throws {
        let unranked = try costModelLoss(safer: [-0.8], unsafer: [0.4], saferIsSafe: [true], unsaferIsSafe: [true],
                                         ranked: [false], regularization: 0)
        assertClose(unranked.loss, 1.284116, tolerance: 5e-7, "unranked cost-model loss")
        assertClose(unranked.dSafer[0], 1 / (1 + exp(0.8)), tolerance: 1e-15, "unranked dL/dC_safer = σ(−0.8)")
        assertClose(unranked.dUnsafer[0], 1 / (1 + exp(-0.4)), tolerance: 1e-15, "unranked dL/dC_unsafer = σ(0.4)")
        assertClose(unranked.metrics["rankedPairs"], 0, tolerance: 0, "no ranked pair")
        assertClose(unranked.metrics["safety_accuracy"], 0.5, tolerance: 0, "one of two signs right")
        assertClose(unranked.metrics["unranked_safety_accuracy"], 0.5, tolerance: 0, "one of two unranked signs right")
        // Beside a ranked pair: the batch loss is the mean, accuracy is the ranked pair's alone.
        let ranked = try costModelLoss(safer: [0.3], unsafer: [0.2], saferIsSafe: [true], unsaferIsSafe: [false],
                                       regularization: 0)
        let both = try costModelLoss(safer: [-0.8, 0.3], unsafer: [0.4, 0.2], saferIsSafe: [true, true],
                                     unsaferIsSafe: [true, false], ranked: [false, true], regularization: 0)
        assertClose(both.loss, (unranked.loss + ranked.loss) / 2, tolerance: 1e-15, "mixed batch loss")
        assertClose(both.metrics["accuracy"], 0, tolerance: 0, "the ranked pair is in the wrong order")
        assertClose(both.metrics["rankedPairs"], 1, tolerance: 0, "one ranked pair")
        assertClose(both.metrics["safety_accuracy"], 0.5, tolerance: 0, "2 of 4 signs right (C = −0.8 and 0.2)")
        assertClose(both.metrics["unranked_safety_accuracy"], 0.5, tolerance: 0, "the unranked pair's signs alone")
        XCTAssertNil(ranked.metrics["unranked_safety_accuracy"], "no unranked pair, no unranked accuracy")
    }

    /// A pair whose safer answer is unsafe while the other is safe is rejected, naming the pair.
    func testCostModelRejectsInvertedSafetyLabels() {
        XCTAssertThrowsError(try costModelLoss(safer: [0.1, 0.2, 0.3], unsafer: [0.4, 0.5, 0.6],
                                               saferIsSafe: [true, false, false], unsaferIsSafe: [false, true, false],
                                               regularization: 0),
                             "pair 1 has an unsafe safer answer and a safe unsafer one") { error in
            XCTAssertEqual(error as? CostModelLabelError, .saferAnswerUnsafe(pairIndex: 1), "error for inverted labels")
            XCTAssertTrue("\(error)".contains("pair 1"), "message '\(error)' should name pair 1")
        }
        // Both safe, both unsafe and safe-vs-unsafe are all accepted.
        XCTAssertNoThrow(try costModelLoss(safer: [0.1, 0.2, 0.3], unsafer: [0.4, 0.5, 0.6],
                                           saferIsSafe: [true, false, true], unsaferIsSafe: [true, false, false],
                                           regularization: 0), "consistent safety labels")
    }

    /// Central finite differences of both mean losses match every analytic gradient (relative 1e-6).
    func testGradientsMatchFiniteDifferences() throws {
        let delta = 1e-5
        let tolerance = 1e-6
        let regularization = 0.01

        let better = [1.3, 0.1, -2.0]
        let worse = [0.2, 0.5, -1.0]
        let reward = rewardModelLoss(better: better, worse: worse, regularization: regularization)
        for i in 0..<better.count {
            var up = better, down = better
            up[i] += delta
            down[i] -= delta
            let numeric = (rewardModelLoss(better: up, worse: worse, regularization: regularization).loss
                - rewardModelLoss(better: down, worse: worse, regularization: regularization).loss) / (2 * delta)
            assertRelativelyClose(reward.dBetter[i], numeric, tolerance: tolerance, "reward-model dL/dR_better[\(i)]")

            var upWorse = worse, downWorse = worse
            upWorse[i] += delta
            downWorse[i] -= delta
            let numericWorse = (rewardModelLoss(better: better, worse: upWorse, regularization: regularization).loss
                - rewardModelLoss(better: better, worse: downWorse, regularization: regularization).loss) / (2 * delta)
            assertRelativelyClose(reward.dWorse[i], numericWorse, tolerance: tolerance, "reward-model dL/dR_worse[\(i)]")
        }

        let safer = [-0.8, 0.5, 0.3, -1.2]
        let unsafer = [1.1, 1.5, 0.2, -0.4]
        let saferIsSafe = [true, false, true, true]
        let unsaferIsSafe = [false, false, false, true]
        func costLoss(_ s: [Double], _ u: [Double]) throws -> Double {
            try costModelLoss(safer: s, unsafer: u, saferIsSafe: saferIsSafe, unsaferIsSafe: unsaferIsSafe,
                              regularization: regularization).loss
        }
        let cost = try costModelLoss(safer: safer, unsafer: unsafer, saferIsSafe: saferIsSafe,
                                     unsaferIsSafe: unsaferIsSafe, regularization: regularization)
        for i in 0..<safer.count {
            var up = safer, down = safer
            up[i] += delta
            down[i] -= delta
            let numeric = (try costLoss(up, unsafer) - costLoss(down, unsafer)) / (2 * delta)
            assertRelativelyClose(cost.dSafer[i], numeric, tolerance: tolerance, "cost-model dL/dC_safer[\(i)]")

            var upUnsafer = unsafer, downUnsafer = unsafer
            upUnsafer[i] += delta
            downUnsafer[i] -= delta
            let numericUnsafer = (try costLoss(safer, upUnsafer) - costLoss(safer, downUnsafer)) / (2 * delta)
            assertRelativelyClose(cost.dUnsafer[i], numericUnsafer, tolerance: tolerance, "cost-model dL/dC_unsafer[\(i)]")
        }
    }

    // MARK: Helpers

    /// Asserts |actual − expected| ≤ tolerance, naming the quantity, the difference and the tolerance.
    private func assertClose(_ actual: Double?, _ expected: Double, tolerance: Double, _ name: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        guard let actual else {
            XCTFail("\(name): missing (expected \(expected))", file: file, line: line)
            return
        }
        let difference = abs(actual - expected)
        XCTAssertTrue(difference <= tolerance,
                      "\(name): got \(actual), expected \(expected); |difference| \(difference) > absolute tolerance \(tolerance)",
                      file: file, line: line)
    }

    /// Asserts |actual − expected| ≤ tolerance · max(|expected|, 1e-12), naming the quantity and the relative difference.
    private func assertRelativelyClose(_ actual: Double, _ expected: Double, tolerance: Double, _ name: String,
                                       file: StaticString = #filePath, line: UInt = #line) {
        let relative = abs(actual - expected) / max(abs(expected), 1e-12)
        XCTAssertTrue(relative <= tolerance,
                      "\(name): got \(actual), expected \(expected); relative difference \(relative) > relative tolerance \(tolerance)",
                      file: file, line: line)
    }
}
