// Tests of PPO's per-token rewards, GAE, advantage whitening and KL controller against the hand oracles of
// ppo-dp.md §4 and closed forms.

import Foundation
import XCTest
import Alignment

final class PolicyGradientTests: XCTestCase {
    // MARK: Per-token rewards (ppo-dp.md §4)

    /// β = 0.1, log-ratios [0.2, −0.1, 0.3], score 1 at the end ⇒ rewards [−0.02, 0.01, 0.97].
    func testRewardsWithKLPenaltyMatchOracle() throws {
        let layout = try SequenceLayout(lengths: [3])
        let result = try tokenRewards(logProbs: [-1.0, -2.1, -0.7], referenceLogProbs: [-1.2, -2.0, -1.0], scores: [1],
                                      layout: layout, config: TokenRewardConfig(klCoefficient: 0.1))
        assertClose(result.rewards, [-0.02, 0.01, 0.97], tolerance: 1e-12, "k1 rewards")
        assertClose(result.kl, [0.2, -0.1, 0.3], tolerance: 1e-12, "k1 per-token KL")
        assertClose(result.metrics["objective/kl"], 0.4, tolerance: 1e-12, "objective/kl (Σ_t k_t)")
        assertClose(result.metrics["objective/non_score_reward"], -0.04, tolerance: 1e-12, "objective/non_score_reward")
        assertClose(result.metrics["objective/scores"], 1, tolerance: 0, "objective/scores")
        assertClose(result.metrics["objective/rlhf_reward"], 0.96, tolerance: 1e-12, "objective/rlhf_reward")

        // Through GAE with values [0.5, 0.2, −0.1]: A = [0.370175, 0.7265, 1.07].
        let gae = try generalizedAdvantages(rewards: result.rewards, values: [0.5, 0.2, -0.1], layout: layout)
        assertClose(gae.advantages, [0.370175, 0.7265, 1.07], tolerance: 1e-12, "A from rewards with KL")
    }

    /// k3 = (ρ − 1) − log ρ with ρ = π_ref/π: log ρ = [−0.2, 0.5, 0] ⇒ k3 = [e^−0.2 − 0.8, e^0.5 − 1.5, 0].
    func testK3EstimatorMatchesClosedForm() throws {
        let layout = try SequenceLayout(lengths: [3])
        let result = try tokenRewards(logProbs: [-1.0, -2.0, -0.5], referenceLogProbs: [-1.2, -1.5, -0.5], scores: [1],
                                      layout: layout, config: TokenRewardConfig(klCoefficient: 0.1, estimator: .k3))
        let k3 = [exp(-0.2) - 0.8, exp(0.5) - 1.5, 0]
        assertClose(result.kl, k3, tolerance: 1e-15, "k3 per-token KL")
        assertClose(result.rewards, [-0.1 * k3[0], -0.1 * k3[1], 1], tolerance: 1e-15, "k3 rewards")
        // k3 ≥ 0 for any log-ratio, unlike k1.
        for logRatio in stride(from: -5.0, through: 5.0, by: 0.25) {
            XCTAssertGreaterThanOrEqual(KLEstimator.k3.estimate(logProb: 0, referenceLogProb: logRatio), 0,
                                        "k3 at log ρ = \(logRatio) must be ≥ 0")
        }
    }

    /// Safe-RLHF: cost stream +β·k plus the cost at the end; both streams clamped to ±clip after adding the score.
    func testSafeRLHFCostStreamAndClamp() throws {
        let layout = try SequenceLayout(lengths: [2, 1])
        let config = TokenRewardConfig(klCoefficient: 0.01, scoreClip: 50)
        let logProbs = [-1.0, -1.5, -0.2], reference = [-1.5, -1.0, -0.4]   // k1 = [0.5, −0.5, 0.2]
        let reward = try tokenRewards(logProbs: logProbs, referenceLogProbs: reference, scores: [3, 80],
                                      layout: layout, config: config, stream: .reward)
        assertClose(reward.rewards, [-0.005, 3.005, 50], tolerance: 1e-12, "Safe-RLHF reward stream (80 − 0.002 clamped to 50)")
        let cost = try tokenRewards(logProbs: logProbs, referenceLogProbs: reference, scores: [-2, -70],
                                    layout: layout, config: config, stream: .cost)
        assertClose(cost.rewards, [0.005, -2.005, -50], tolerance: 1e-12, "Safe-RLHF cost stream (−70 + 0.002 clamped to −50)")
        assertClose(cost.metrics["objective/costs"], -36, tolerance: 1e-12, "objective/costs")
        assertClose(cost.metrics["objective/cost_with_kl_penalty"], (0.005 - 2.005 - 50) / 2, tolerance: 1e-12,
                    "objective/cost_with_kl_penalty")
        // The KL penalty survives the Lagrangian mix: (−βk − λ·βk)/(1 + λ) = −βk (algorithms.md §5.5).
        let lambda = 1.7
        let mixed = LagrangeMultiplierUpdate.advantage(reward: reward.rewards[0], cost: cost.rewards[0], lambda: lambda)
        assertClose(mixed, -0.005, tolerance: 1e-15, "mixed KL penalty")
    }

    func testRewardsRejectBadInput() throws {
        let layout = try SequenceLayout(lengths: [2, 0])
        let config = TokenRewardConfig(klCoefficient: 0.1)
        XCTAssertThrowsError(try tokenRewards(logProbs: [0, 0], referenceLogProbs: [0, 0], scores: [1, 1],
                                              layout: layout, config: config)) { error in
            XCTAssertEqual(error as? PolicyGradientError, .emptySequence(function: "token rewards", index: 1))
        }
        let two = try SequenceLayout(lengths: [2])
        XCTAssertThrowsError(try tokenRewards(logProbs: [0, 0], referenceLogProbs: [0], scores: [1],
                                              layout: two, config: config)) { error in
            XCTAssertEqual(error as? PolicyGradientError,
                           .lengthMismatch(function: "token rewards", field: "referenceLogProbs", count: 1, expected: 2))
        }
        XCTAssertThrowsError(try tokenRewards(logProbs: [0, .nan], referenceLogProbs: [0, 0], scores: [1],
                                              layout: two, config: config)) { error in
            XCTAssertTrue("\(error)".contains("logProbs[1]"), "error names the field and index: \(error)")
        }
        XCTAssertThrowsError(try tokenRewards(logProbs: [0, 0], referenceLogProbs: [0, 0], scores: [1], layout: two,
                                              config: TokenRewardConfig(klCoefficient: -1)))
        XCTAssertThrowsError(try SequenceLayout(lengths: [1, -1])) { error in
            XCTAssertEqual(error as? PolicyGradientError, .negativeSequenceLength(index: 1, length: -1))
        }
    }

    // MARK: GAE (ppo-dp.md §4)

    /// rewards [0, 0, 1], values [0.5, 0.2, −0.1], γ = 1, λ = 0.95 ⇒ A = [0.40775, 0.745, 1.1], R = [0.90775, 0.945, 1.0].
    func testGAEMatchesOracle() throws {
        let layout = try SequenceLayout(lengths: [3])
        let result = try generalizedAdvantages(rewards: [0, 0, 1], values: [0.5, 0.2, -0.1], layout: layout, gamma: 1, lambda: 0.95)
        assertClose(result.advantages, [0.40775, 0.745, 1.1], tolerance: 1e-12, "GAE advantages")
        assertClose(result.returns, [0.90775, 0.945, 1.0], tolerance: 1e-12, "GAE returns")
    }

    /// Sequences of a ragged batch are independent: each equals its own single-sequence GAE, the nested form agrees,
    /// and with λ = 1, γ = 1 the return is the plain sum of future rewards.
    func testGAEIsPerSequence() throws {
        let rewards: [[Double]] = [[0, 0, 1], [0.3], [], [0.1, -0.2, 0.4, 2]]
        let values: [[Double]] = [[0.5, 0.2, -0.1], [0.7], [], [0.0, 0.3, -0.5, 1.0]]
        let nested = try generalizedAdvantages(rewards: rewards, values: values, gamma: 0.9, lambda: 0.8)
        for s in rewards.indices {
            let single = try generalizedAdvantages(rewards: rewards[s], values: values[s],
                                                   layout: try SequenceLayout(lengths: [rewards[s].count]), gamma: 0.9, lambda: 0.8)
            assertClose(nested.advantages[s], single.advantages, tolerance: 0, "sequence \(s) advantages vs alone")
            assertClose(nested.returns[s], single.returns, tolerance: 0, "sequence \(s) returns vs alone")
        }
        // Closed form for λ = γ = 1: A_t = Σ_{t'≥t} r_t' − V_t, so R_t = Σ_{t'≥t} r_t'.
        let monteCarlo = try generalizedAdvantages(rewards: [rewards[3]], values: [values[3]], gamma: 1, lambda: 1)
        assertClose(monteCarlo.returns[0], [2.3, 2.2, 2.4, 2.0], tolerance: 1e-12, "λ = 1 returns are reward-to-go")
        // λ = 0: one-step TD errors.
        let td = try generalizedAdvantages(rewards: [rewards[0]], values: [values[0]], gamma: 1, lambda: 0)
        assertClose(td.advantages[0], [-0.3, -0.3, 1.1], tolerance: 1e-12, "λ = 0 advantages are TD errors")
        XCTAssertThrowsError(try generalizedAdvantages(rewards: [[0]], values: [[0]], gamma: 1.5, lambda: 0.95))
        XCTAssertThrowsError(try generalizedAdvantages(rewards: [[0, 1]], values: [[0]], gamma: 1, lambda: 0.95))
    }

    // MARK: Whitening

    /// A = [0.40775, 0.745, 1.1] whitened with the unbiased variance ⇒ [−0.991344, −0.017092, 1.008436].
    func testWhiteningMatchesOracle() throws {
        let whitened = try whitenGlobally([0.40775, 0.745, 1.1])
        assertClose(whitened, [-0.991344, -0.017092, 1.008436], tolerance: 5e-7, "whitened advantages (unbiased variance)")
        // (The biased variance would give −1.214139 for the first value: the oracle pins the unbiased one.)
        // shiftMean = false adds the mean back.
        let shifted = try whitenGlobally([0.40775, 0.745, 1.1], shiftMean: false)
        let mean = (0.40775 + 0.745 + 1.1) / 3
        assertClose(shifted, whitened.map { $0 + mean }, tolerance: 1e-12, "whitening with shiftMean = false")
    }

    /// Moments of shards, summed as an all-reduce would, whiten each shard exactly as the whole batch; masked
    /// tokens are excluded from the moments and come back as 0.
    func testGlobalWhiteningFromReducedMomentsEqualsSingleBatch() throws {
        let values = (0..<37).map { i in sin(Double(i) * 1.3) * 2 + 0.5 }
        let mask = (0..<37).map { $0 % 5 != 3 }
        let whole = try whitenGlobally(values, mask: mask)
        for shardCount in [2, 3, 4] {
            let shards = (0..<shardCount).map { s in Array(stride(from: s, to: values.count, by: shardCount)) }
            var reduced = [0.0, 0.0, 0.0]
            for shard in shards {
                let m = try WhiteningMoments(values: shard.map { values[$0] }, mask: shard.map { mask[$0] })
                for k in 0..<3 { reduced[k] += m.asArray[k] }
            }
            let moments = try WhiteningMoments(reduced: reduced)
            for shard in shards {
                let out = try whiten(shard.map { values[$0] }, mask: shard.map { mask[$0] }, moments: moments)
                assertClose(out, shard.map { whole[$0] }, tolerance: 1e-12, "\(shardCount)-shard whitening vs whole batch")
            }
        }
        // Whole-batch statistics of the valid tokens: mean 0 and unbiased variance ≈ 1.
        let valid = whole.indices.filter { mask[$0] }.map { whole[$0] }
        let mean = valid.reduce(0, +) / Double(valid.count)
        let variance = valid.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(valid.count - 1)
        assertClose(mean, 0, tolerance: 1e-12, "mean of whitened valid values")
        assertClose(variance, 1, tolerance: 1e-6, "unbiased variance of whitened valid values")
        for i in whole.indices where !mask[i] { XCTAssertEqual(whole[i], 0, "masked value \(i) comes back as 0") }
    }

    /// Per-sequence whitening uses each sequence's own moments; a one-token sequence whitens to 0; an all-masked or
    /// empty batch is an error for global whitening.
    func testPerSequenceWhitening() throws {
        let layout = try SequenceLayout(lengths: [3, 1, 2, 0])
        let values = [0.40775, 0.745, 1.1, 5.0, 1.0, 3.0]
        let out = try whitenPerSequence(values, layout: layout)
        assertClose(Array(out[0..<3]), [-0.991344, -0.017092, 1.008436], tolerance: 5e-7, "sequence 0 (oracle)")
        XCTAssertEqual(out[3], 0, "a one-token sequence whitens to 0")
        // Two values a, b: (±(b − a)/2) / sqrt((b − a)²/2 + 1e-8).
        let half = 1.0, scale = 1 / (2.0 + 1e-8).squareRoot()
        assertClose(Array(out[4..<6]), [-half * scale, half * scale], tolerance: 1e-12, "sequence 2 (two tokens)")
        XCTAssertThrowsError(try whitenGlobally([1, 2], mask: [false, false])) { error in
            XCTAssertEqual(error as? PolicyGradientError, .noValidTokens(function: "whitening"))
        }
        XCTAssertEqual(try whitenGlobally([4.2]), [0], "a single token whitens to 0 (TRL would divide by zero)")
        XCTAssertThrowsError(try WhiteningMoments(reduced: [1, 2]))
    }

    // MARK: KL controller

    /// TRL's adaptive controller, β0 = 0.2, target 6, horizon 10,000, n = 256:
    /// KL 12 ⇒ error clipped to +0.2 ⇒ 0.201024; KL 3 ⇒ −0.2 ⇒ 0.198976; KL 6.6 ⇒ +0.1 ⇒ 0.200512.
    func testAdaptiveKLControllerMatchesClosedForm() throws {
        for (kl, expected) in [(12.0, 0.201024), (3.0, 0.198976), (6.6, 0.200512), (6.0, 0.2)] {
            var controller = try KLController.adaptive(initial: 0.2, target: 6, horizon: 10_000)
            assertClose(try controller.update(currentKL: kl, episodes: 256), expected, tolerance: 1e-15, "β after KL \(kl)")
        }
        var fixed = try KLController.fixed(0.05)
        XCTAssertEqual(try fixed.update(currentKL: 100, episodes: 256), 0.05, "the fixed controller never moves")
        XCTAssertEqual(fixed.updateCount, 1)
        XCTAssertThrowsError(try KLController.adaptive(target: 0))
        XCTAssertThrowsError(try fixed.update(currentKL: .nan, episodes: 1))
    }

    /// Encoding the controller mid-run and decoding it continues with bit-identical β.
    func testKLControllerResumesExactly() throws {
        var running = try KLController.adaptive()
        let kls = [7.5, 8.1, 2.0, 6.3, 5.9, 12.0, 0.4]
        for kl in kls.prefix(3) { try running.update(currentKL: kl, episodes: 512) }
        let saved = try JSONEncoder().encode(running)
        var resumed = try JSONDecoder().decode(KLController.self, from: saved)
        XCTAssertEqual(resumed, running, "decoded controller equals the saved one")
        for kl in kls.dropFirst(3) {
            try running.update(currentKL: kl, episodes: 512)
            try resumed.update(currentKL: kl, episodes: 512)
        }
        XCTAssertEqual(resumed.value, running.value, "β after resume (bit-identical)")
        XCTAssertEqual(resumed.updateCount, 7)
    }

    // MARK: Helpers

    private func assertClose(_ actual: Double?, _ expected: Double, tolerance: Double, _ name: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        guard let actual else { return XCTFail("\(name): missing", file: file, line: line) }
        XCTAssertTrue(abs(actual - expected) <= tolerance,
                      "\(name): got \(actual), expected \(expected), |diff| \(abs(actual - expected)) > tolerance \(tolerance)",
                      file: file, line: line)
    }

    private func assertClose(_ actual: [Double], _ expected: [Double], tolerance: Double, _ name: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        guard actual.count == expected.count else {
            return XCTFail("\(name): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        }
        for i in actual.indices {
            assertClose(actual[i], expected[i], tolerance: tolerance, "\(name)[\(i)]", file: file, line: line)
        }
    }
}
