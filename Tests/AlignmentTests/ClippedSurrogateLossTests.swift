// Tests of PPO's clipped policy and value losses, their gradients and statistics (ppo-dp.md §4 oracles, central
// finite differences) and of the ratio guard.

import Foundation
import XCTest
import Alignment

final class ClippedSurrogateLossTests: XCTestCase {
    // MARK: Oracles

    /// ε = 0.2: (ρ = 1.5, A = 1) ⇒ −1.2 and (ρ = 0.5, A = −1) ⇒ 0.8, both on the clipped branch (gradient 0).
    func testClippedPolicyLossMatchesOracle() throws {
        for (ratio, advantage, expected) in [(1.5, 1.0, -1.2), (0.5, -1.0, 0.8)] {
            let result = try clippedPolicyLoss(logProbs: [log(ratio)], oldLogProbs: [0], advantages: [advantage], clipRange: 0.2)
            assertClose(result.loss, expected, tolerance: 1e-12, "policy loss at ρ \(ratio), A \(advantage)")
            assertClose(result.dLogProbs[0], 0, tolerance: 0, "∂loss/∂log π on the clipped branch (ρ \(ratio))")
            assertClose(result.metrics["policy/clipfrac_avg"], 1, tolerance: 0, "clipfrac (ρ \(ratio))")
            assertClose(result.metrics["val/ratio"], ratio, tolerance: 1e-12, "val/ratio (ρ \(ratio))")
            assertClose(result.metrics["policy/approxkl_avg"], 0.5 * log(ratio) * log(ratio), tolerance: 1e-15,
                        "approxkl = ½(log ρ)²")
        }
        // The pessimistic max keeps the unclipped term when it is larger: (ρ = 1.5, A = −1) ⇒ 1.5, ∂ = −Aρ = 1.5;
        // inside the interval (ρ = 1.1, A = 2) ⇒ −2.2, ∂ = −2.2.
        for (ratio, advantage, expected) in [(1.5, -1.0, 1.5), (1.1, 2.0, -2.2)] {
            let result = try clippedPolicyLoss(logProbs: [log(ratio) - 3], oldLogProbs: [-3], advantages: [advantage], clipRange: 0.2)
            assertClose(result.loss, expected, tolerance: 1e-12, "policy loss at ρ \(ratio), A \(advantage)")
            assertClose(result.dLogProbs[0], expected, tolerance: 1e-12, "∂loss/∂log π = −Aρ (ρ \(ratio), A \(advantage))")
            assertClose(result.metrics["policy/clipfrac_avg"], 0, tolerance: 0, "clipfrac (ρ \(ratio), A \(advantage))")
        }
        // Both oracle tokens in one mini-batch: the masked mean, clipfrac 1, and policykl = mean(−log ρ).
        let both = try clippedPolicyLoss(logProbs: [log(1.5), log(0.5)], oldLogProbs: [0, 0], advantages: [1, -1], clipRange: 0.2)
        assertClose(both.loss, (-1.2 + 0.8) / 2, tolerance: 1e-12, "mean policy loss of the two oracle tokens")
        assertClose(both.metrics["loss/policy_avg"], -0.2, tolerance: 1e-12, "loss/policy_avg")
        assertClose(both.metrics["policy/policykl_avg"], -(log(1.5) + log(0.5)) / 2, tolerance: 1e-15, "policy/policykl_avg")
    }

    /// V̂ = 1, V_old = 0, R = 2, ε_v = 0.2 ⇒ ½·max(1, 3.24) = 1.62, clipped branch (gradient 0).
    func testClippedValueLossMatchesOracle() throws {
        let result = try clippedValueLoss(values: [1], oldValues: [0], returns: [2], clipRange: 0.2)
        assertClose(result.loss, 1.62, tolerance: 1e-12, "value loss")
        assertClose(result.dValues[0], 0, tolerance: 0, "∂loss/∂V on the clipped branch")
        assertClose(result.metrics["val/clipfrac_avg"], 1, tolerance: 0, "val/clipfrac_avg")
        assertClose(result.metrics["val/error"], 1, tolerance: 1e-15, "val/error = (V − R)²")
        // Inside the interval: V = 0.1 ⇒ ½·1.9² = 1.805, ∂ = V − R = −1.9.
        let inside = try clippedValueLoss(values: [0.1], oldValues: [0], returns: [2], clipRange: 0.2)
        assertClose(inside.loss, 1.805, tolerance: 1e-12, "value loss inside the clip interval")
        assertClose(inside.dValues[0], -1.9, tolerance: 1e-12, "∂loss/∂V inside the clip interval")
        // Outside but the unclipped error larger: V = 3, V_old = 2.5, R = 0 ⇒ clip 2.7; ½·9 = 4.5, ∂ = 3.
        let larger = try clippedValueLoss(values: [3], oldValues: [2.5], returns: [0], clipRange: 0.2)
        assertClose(larger.loss, 4.5, tolerance: 1e-12, "value loss, unclipped branch larger")
        assertClose(larger.dValues[0], 3, tolerance: 1e-12, "∂loss/∂V, unclipped branch larger")
        assertClose(larger.metrics["val/clipfrac_avg"], 0, tolerance: 0, "val/clipfrac_avg, unclipped branch larger")
    }

    // MARK: Gradients

    /// Central finite differences of the loss match ∂loss/∂log π and ∂loss/∂V on a random masked batch
    /// (tokens within 1e-3 of a kink are moved off it, so the loss is smooth at every point checked).
    func testGradientsMatchFiniteDifferences() throws {
        var rng = LCG(seed: 7)
        let n = 40
        var oldLogProbs = [Double](), logProbs = [Double](), advantages = [Double](), mask = [Bool]()
        var oldValues = [Double](), values = [Double](), returns = [Double]()
        let epsilon = 0.2, valueClip = 0.3
        for _ in 0..<n {
            let old = -3 * rng.unit() - 0.1
            var logRatio = (rng.unit() - 0.5) * 0.9
            for kink in [log(1 - epsilon), log(1 + epsilon)] where abs(logRatio - kink) < 1e-3 { logRatio += 3e-3 }
            oldLogProbs.append(old)
            logProbs.append(old + logRatio)
            advantages.append((rng.unit() - 0.5) * 4)
            mask.append(rng.unit() > 0.2)
            let vOld = (rng.unit() - 0.5) * 2
            var v = vOld + (rng.unit() - 0.5) * 1.2
            for kink in [vOld - valueClip, vOld + valueClip] where abs(v - kink) < 1e-3 { v += 3e-3 }
            oldValues.append(vOld)
            values.append(v)
            returns.append((rng.unit() - 0.5) * 3)
        }
        let policy = try clippedPolicyLoss(logProbs: logProbs, oldLogProbs: oldLogProbs, advantages: advantages,
                                           mask: mask, clipRange: epsilon)
        let value = try clippedValueLoss(values: values, oldValues: oldValues, returns: returns, mask: mask, clipRange: valueClip)
        XCTAssertGreaterThan(policy.metrics["policy/clipfrac_avg"]!, 0.1, "the batch exercises the clipped branch")
        XCTAssertLessThan(policy.metrics["policy/clipfrac_avg"]!, 0.9, "the batch exercises the unclipped branch")
        XCTAssertGreaterThan(value.metrics["val/clipfrac_avg"]!, 0.05, "the batch exercises the clipped value branch")
        let delta = 1e-6, tolerance = 1e-8
        for t in 0..<n {
            var up = logProbs, down = logProbs
            up[t] += delta
            down[t] -= delta
            let numeric = (try clippedPolicyLoss(logProbs: up, oldLogProbs: oldLogProbs, advantages: advantages, mask: mask, clipRange: epsilon).loss
                - (try clippedPolicyLoss(logProbs: down, oldLogProbs: oldLogProbs, advantages: advantages, mask: mask, clipRange: epsilon).loss))
                / (2 * delta)
            assertClose(policy.dLogProbs[t], numeric, tolerance: tolerance, "∂policy loss/∂log π[\(t)] vs finite difference")

            var vUp = values, vDown = values
            vUp[t] += delta
            vDown[t] -= delta
            let numericV = (try clippedValueLoss(values: vUp, oldValues: oldValues, returns: returns, mask: mask, clipRange: valueClip).loss
                - (try clippedValueLoss(values: vDown, oldValues: oldValues, returns: returns, mask: mask, clipRange: valueClip).loss))
                / (2 * delta)
            assertClose(value.dValues[t], numericV, tolerance: tolerance, "∂value loss/∂V[\(t)] vs finite difference")
            if !mask[t] {
                XCTAssertEqual(policy.dLogProbs[t], 0, "masked token \(t) has no policy gradient")
                XCTAssertEqual(value.dValues[t], 0, "masked token \(t) has no value gradient")
            }
        }
    }

    /// A mini-batch split over two "ranks" with normalizer = the global valid count gives the same summed loss and
    /// the same per-token gradients as one rank.
    func testNormalizerMakesShardsSumToTheWholeBatch() throws {
        let logProbs = [-1.0, -0.5, -2.2, -0.1, -0.9, -1.4]
        let oldLogProbs = [-1.1, -0.2, -2.0, -0.4, -0.9, -1.0]
        let advantages = [0.5, -1.2, 2.0, 0.3, -0.7, 1.1]
        let mask = [true, true, false, true, true, true]
        let whole = try clippedPolicyLoss(logProbs: logProbs, oldLogProbs: oldLogProbs, advantages: advantages, mask: mask, clipRange: 0.2)
        var loss = 0.0, gradient = [Double]()
        for shard in [0..<2, 2..<6] {
            let part = try clippedPolicyLoss(logProbs: Array(logProbs[shard]), oldLogProbs: Array(oldLogProbs[shard]),
                                             advantages: Array(advantages[shard]), mask: Array(mask[shard]), clipRange: 0.2,
                                             normalizer: 5)
            loss += part.loss
            gradient += part.dLogProbs
        }
        assertClose(loss, whole.loss, tolerance: 1e-15, "sum of shard losses vs whole")
        for t in gradient.indices { assertClose(gradient[t], whole.dLogProbs[t], tolerance: 1e-15, "shard gradient[\(t)] vs whole") }
    }

    // MARK: Ratio guard and errors

    func testRatioGuardSkipsExplodingMiniBatches() throws {
        let guardrail = try PPORatioGuard()
        XCTAssertEqual(guardrail.threshold, 10, "TRL's default ratio_threshold")
        let calm = try PPORatioGuard.ratioMoments(logProbs: [-1, -2], oldLogProbs: [-1.1, -1.9])
        XCTAssertFalse(try guardrail.skips(reduced: calm), "mean ratio ≈ 1 is kept")
        // ρ = [30, 1] ⇒ mean 15.5 > 10; masking the exploding token keeps the batch.
        let wild = try PPORatioGuard.ratioMoments(logProbs: [log(30), 0], oldLogProbs: [0, 0])
        assertClose(wild[0] / wild[1], 15.5, tolerance: 1e-12, "mean ratio")
        XCTAssertTrue(try guardrail.skips(reduced: wild), "mean ratio 15.5 exceeds 10")
        let masked = try PPORatioGuard.ratioMoments(logProbs: [log(30), 0], oldLogProbs: [0, 0], mask: [false, true])
        XCTAssertFalse(try guardrail.skips(reduced: masked), "masked tokens do not count")
        // Two ranks' moments summed decide as one: [30, 1] and [1, 1] ⇒ 33/4 = 8.25 ≤ 10.
        let other = try PPORatioGuard.ratioMoments(logProbs: [0, 0], oldLogProbs: [0, 0])
        XCTAssertFalse(try guardrail.skips(reduced: [wild[0] + other[0], wild[1] + other[1]]), "global mean 8.25 is kept")
        // An overflowing ratio is +∞: skipped by the guard, and the loss refuses it with a typed error.
        let overflow = try PPORatioGuard.ratioMoments(logProbs: [800], oldLogProbs: [0])
        XCTAssertTrue(try guardrail.skips(reduced: overflow), "an infinite ratio is skipped")
        XCTAssertThrowsError(try clippedPolicyLoss(logProbs: [800], oldLogProbs: [0], advantages: [1], clipRange: 0.2)) { error in
            XCTAssertEqual(error as? PolicyGradientError, .ratioOverflow(index: 0, logRatio: 800))
        }
        XCTAssertThrowsError(try PPORatioGuard(threshold: 0.5))
    }

    func testBadInputsAreTypedErrors() {
        XCTAssertThrowsError(try clippedPolicyLoss(logProbs: [0, 0], oldLogProbs: [0], advantages: [0, 0], clipRange: 0.2)) { error in
            XCTAssertEqual(error as? PolicyGradientError,
                           .lengthMismatch(function: "clipped policy loss", field: "oldLogProbs", count: 1, expected: 2))
        }
        XCTAssertThrowsError(try clippedPolicyLoss(logProbs: [0], oldLogProbs: [0], advantages: [.infinity], clipRange: 0.2)) { error in
            XCTAssertEqual(error as? PolicyGradientError,
                           .nonFinite(function: "clipped policy loss", field: "advantages", index: 0, value: .infinity))
        }
        XCTAssertThrowsError(try clippedPolicyLoss(logProbs: [0], oldLogProbs: [0], advantages: [1], mask: [false], clipRange: 0.2)) { error in
            XCTAssertEqual(error as? PolicyGradientError, .noValidTokens(function: "clipped policy loss"))
        }
        XCTAssertThrowsError(try clippedPolicyLoss(logProbs: [0], oldLogProbs: [0], advantages: [1], clipRange: -0.1))
        XCTAssertThrowsError(try clippedValueLoss(values: [0], oldValues: [0], returns: [0, 1], clipRange: 0.2))
        XCTAssertThrowsError(try clippedValueLoss(values: [0], oldValues: [0], returns: [1], clipRange: 0.2, normalizer: 0))
    }

    // MARK: Helpers

    /// A small deterministic generator for test inputs.
    private struct LCG {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func unit() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) * 0x1p-53
        }
    }

    private func assertClose(_ actual: Double?, _ expected: Double, tolerance: Double, _ name: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        guard let actual else { return XCTFail("\(name): missing", file: file, line: line) }
        XCTAssertTrue(abs(actual - expected) <= tolerance,
                      "\(name): got \(actual), expected \(expected), |diff| \(abs(actual - expected)) > tolerance \(tolerance)",
                      file: file, line: line)
    }
}
