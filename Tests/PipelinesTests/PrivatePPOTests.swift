// DP-PPO (a PPO run with a `dp` section): the settings that break DP-SGD's accounting are refused by name; the
// private step with σ = 0, q = 1 and no clipping is the mean over episodes of each episode's own PPO gradient
// (policy and value head), computed independently by the non-private step on one episode at a time; clipping
// bounds every episode jointly over policy and value; 1 rank equals 2 ranks with seeded noise; and a short run
// of several steps logs ε and trains on a fresh Poisson sample each step (one PPO epoch per rollout batch).

import Foundation
import XCTest
import Alignment
import Datasets
import Distributed
import Models
import Privacy
import Tensors
import TestSupport
@testable import Training
@testable import Pipelines

final class PrivatePPOTests: XCTestCase {
    var work: URL!
    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-dp-ppo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: work) }

    /// The fixture's episodes of one case (real prompts, responses, old log-probs, values and scores).
    func episodes() throws -> (PPOFixtureCase, [PPOEpisode]) {
        let c = try PPOTestSupport.cases()["ppo"]!
        return (c, PPOTestSupport.episodes(c))
    }

    /// DP-PPO on the fixture's episodes: q = expected/N, σ, C, seeded noise, whitening per episode, LoRA r4.
    func config(_ n: Int, sigma: Double = 0, clip: Double = 1e9, expected: Double? = nil, steps: Int = 1, lora: Bool = true) -> RunConfig {
        var c = PPOTestSupport.config(output: work.appendingPathComponent("run-\(UUID().uuidString)"), episodes: n, lora: lora)
        c.optimizer.maxSteps = steps
        c.ppo.whitening = .sequence
        c.ppo.klCoefficient = 0.05
        c.dp.noiseMultiplier = sigma
        c.dp.clip = clip
        c.dp.expectedBatchSize = expected ?? Double(n)
        c.dp.noise = .seeded
        c.dp.accountant = .rdp
        c.dp.physicalBatchSize = 2
        return c
    }

    func trainer(_ c: RunConfig, _ fixture: PPOFixtureCase, _ episodes: [PPOEpisode],
                 comm: Communicator = LocalCommunicator.group(size: 1)[0]) throws -> (Trainer, PPOObjective) {
        let policy = try Self.policy()
        let objective = try PPOTestSupport.objective(c, policy: policy, episodes: episodes, comm: comm)
        let trainer = try Trainer(config: c, communicator: comm, model: LoadedModel(model: policy, tokenizer: nil, gguf: nil, source: work),
                                  objective: objective)
        // A value head that is not zero (the file has none), so the value loss also reaches the trunk; adapters' B
        // too, so the adapters' A gets a gradient. The same seeded values on every rank and in every trainer.
        var rng = SplitMix64(seed: 31)
        let slab = policy.trainable
        for i in 0..<slab.count { slab.values.pointer[i] = 0.05 * rng.nextGaussian() }
        return (trainer, objective)
    }

    /// The fixture's tiny Llama with one value head.
    static func policy() throws -> Transformer {
        try Transformer.load(huggingFaceDirectory: PPOTestSupport.fixtures.appendingPathComponent("model"), trainable: true, valueHeads: 1)
    }

    func testSettingsThatBreakTheAccountingAreRefusedByName() throws {
        let (fixture, eps) = try episodes()
        XCTAssertNoThrow(try trainer(config(eps.count), fixture, eps), "per-episode whitening, fixed KL, one epoch, value heads: accepted")
        let cases: [(String, (inout RunConfig) -> Void)] = [
            ("ppo.ppoEpochs", { $0.ppo.ppoEpochs = 2; $0.ppo.rolloutBatchSize = $0.optimizer.globalBatchSize }),
            ("ppo.klController", { $0.ppo.klController = .adaptive }),
            ("ppo.whitening", { $0.ppo.whitening = .batch }),
            ("ppo.critic", { $0.ppo.critic = .model }),
        ]
        for (key, change) in cases {
            var c = config(eps.count)
            change(&c)
            let objective = try PPOTestSupport.objective(c, policy: try Self.policy(), episodes: eps, comm: LocalCommunicator.group(size: 1)[0])
            let refusal = objective.privacyRefusal(config: c)
            XCTAssertEqual(refusal?.key, key, "\(key): refused, naming the key (got \(refusal.map { "\($0)" } ?? "nil"))")
        }
        // PPO-Lagrangian's λ follows the batch's costs without noise.
        let lagrangian = try PPOLagrangian(multiplier: LagrangeMultiplierUpdate(initialLambda: 1, learningRate: 0.1, threshold: 0, lambdaMax: 5),
                                           windowSize: 8)
        let lag = try PPOTestSupport.objective(config(eps.count), policy: try Self.policy(), episodes: eps, lagrangian: lagrangian,
                                               comm: LocalCommunicator.group(size: 1)[0])
        XCTAssertEqual(lag.privacyRefusal(config: config(eps.count))?.key, "dp", "PPO-Lagrangian under dp is refused")
    }

    /// σ = 0, q = 1, C = ∞: (1/N)·Σ_i ∇ℓ_i with ℓ_i episode i's own token mean, against the non-private step on a
    /// mini-batch of that one episode (whose normaliser is then its own token count), averaged over episodes.
    func testNoiselessUnclippedPrivateStepIsTheMeanOfEachEpisodesGradient() throws {
        let (fixture, eps) = try episodes()
        let n = eps.count
        let (dpTrainer, _) = try trainer(config(n), fixture, eps)
        try dpTrainer.objective.prepare(dpTrainer.context)
        let (metrics, applies) = try dpTrainer.privateGradient(dpTrainer.privacy!, step: 0, seed: 77)
        XCTAssertTrue(applies)
        XCTAssertEqual(metrics["dp/batch_size"], Double(n), "q = 1: every prompt is in the batch")
        let dp = dpTrainer.trainable.gradients.array

        var plain = config(n)
        plain.dp = PrivacyConfig()
        plain.optimizer.globalBatchSize = 1
        plain.optimizer.microBatchSize = 1
        let (t, objective) = try trainer(plain, fixture, eps)
        try objective.prepare(t.context)
        var plan = StepPlan(step: 0, seed: 77, global: [0], microBatches: [[0]])
        try objective.beginStep(&plan, context: t.context)                   // samples the rollout batch (all n episodes)
        var mean = [Double](repeating: 0, count: dp.count)
        for k in 0..<n {
            objective.miniBatchTokens = Double(objective.state.rollout!.episodes[k].length)
            _ = try t.trainStep(StepPlan(step: 0, seed: 77, global: [k], microBatches: [[k]]))
            for (i, g) in t.trainable.gradients.array.enumerated() { mean[i] += Double(g) / Double(n) }
        }
        XCTAssertGreaterThan(mean.map(abs).max()!, 1e-6, "the reference gradient is not zero")
        assertTensorClose(dp, mean.map(Float.init), "DP-PPO gradient (σ 0, q 1, no clipping) vs mean of per-episode gradients", relativeTolerance: 1e-4)
    }

    /// With a clipping norm below every episode's norm, each episode contributes exactly C: the private gradient's
    /// norm is at most C (and, the episodes not cancelling, well above 0).
    func testClippingBoundsEachEpisodeJointlyOverPolicyAndValue() throws {
        let (fixture, eps) = try episodes()
        let clip = 1e-4
        let (t, _) = try trainer(config(eps.count, clip: clip), fixture, eps)
        try t.objective.prepare(t.context)
        let (metrics, _) = try t.privateGradient(t.privacy!, step: 0, seed: 77)
        XCTAssertEqual(metrics["dp/clip_fraction"], 1, "every episode's norm exceeds C = \(clip)")
        // Σ_i c_i g_i / N with ‖c_i g_i‖ = C (to 1e-6/‖g_i‖): its norm is at most C.
        let norm = t.trainable.gradients.array.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        XCTAssertLessThanOrEqual(norm, clip * (1 + 1e-3), "‖(1/N)Σ c_i g_i‖ ≤ C")
        XCTAssertGreaterThan(norm, clip * 0.05, "the clipped episodes do not cancel")
    }

    /// Seeded noise and Poisson sampling are the same draws on any world size: 2 ranks give rank 0's gradient of 1 rank.
    func testTwoRanksEqualOneRank() throws {
        let (fixture, eps) = try episodes()
        let c = config(eps.count, sigma: 0.7, clip: 0.05, expected: Double(eps.count) / 2)
        var gradients: [Int: [Float]] = [:]
        for ranks in [1, 2] {
            let results = LocalCommunicator.run(size: ranks, timeout: 120) { comm -> [Float] in
                let (t, _) = try self.trainer(c, fixture, eps, comm: comm)
                try t.objective.prepare(t.context)
                _ = try t.privateGradient(t.privacy!, step: 0, seed: 5)
                return t.trainable.gradients.array
            }
            gradients[ranks] = try results[0].get()
        }
        assertTensorClose(gradients[2]!, gradients[1]!, "DP-PPO private gradient, 2 ranks vs 1", relativeTolerance: 1e-4)
    }

    /// A run of 6 steps: each step samples its own Poisson batch as the rollout batch, ε grows every step, the
    /// weights change, and the checkpoint's privacy history carries the whole run's ε.
    func testRunLogsEpsilonAndSamplesARolloutPerStep() throws {
        let (fixture, eps) = try episodes()
        var c = config(eps.count, sigma: 1.0, clip: 0.5, expected: 2, steps: 6)
        c.checkpoint.every = 3
        let (t, objective) = try trainer(c, fixture, eps)
        let before = t.trainable.values.array
        _ = try t.run()
        XCTAssertEqual(objective.state.rollouts, 6, "one rollout batch per private step")
        let lines = try String(contentsOf: URL(fileURLWithPath: c.outputDir).appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            .filter { $0["dp/epsilon"] != nil }
        let epsilons = lines.compactMap { ($0["dp/epsilon"] as? NSNumber)?.doubleValue }
        XCTAssertEqual(epsilons.count, 6)
        XCTAssertTrue(zip(epsilons, epsilons.dropFirst()).allSatisfy { $0 < $1 }, "ε grows every step: \(epsilons)")
        XCTAssertTrue(lines.allSatisfy { ($0["ppo/skipped"] as? NSNumber)?.doubleValue == 0 }, "DP-PPO never skips a step")
        XCTAssertNotEqual(t.trainable.values.array, before, "the policy trained")
    }
}
