// PPO's math through the objective's own code path against the hand oracles of ppo-dp.md §4 and
// algorithms.md §5.5 (GAE, whitening, the clipped losses, λ and the combined advantage), batch whitening
// over two ranks equal to one, the ratio guard skipping an update end to end, and a non-finite score
// stopping the run with the step named.

import Foundation
import XCTest
import Alignment
import Datasets
import Distributed
import Models
import Tensors
@testable import Pipelines
@testable import Training

final class PPOObjectiveTests: XCTestCase {
    var work: URL!
    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-ppo-objective-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: work) }

    static let tiny = ModelConfig(vocabSize: 64, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKVHeads: 2,
                                  maxPositions: 64)

    /// An episode whose rewards are [0, 0, 1] (score 1, no KL) and values [0.5, 0.2, −0.1]: ppo-dp.md §4's oracle.
    func oracleEpisode(index: Int = 0, logRatios: [Float] = [0, 0, 0]) -> PPOEpisode {
        PPOEpisode(index: index, prompt: index, promptTokens: [5, 6], responseTokens: [7, 8, 9], stopped: true,
                   logProbs: logRatios.map { -1 + $0 }, referenceLogProbs: [-1, -1, -1], values: [[0.5, 0.2, -0.1]], scores: [1])
    }

    func testGAEAndWhiteningMatchTheOracles() throws {
        let comm = LocalCommunicator.group(size: 1)[0]
        var s = PPOConfig()
        s.whitening = .none
        var episodes = [oracleEpisode()]
        _ = try PPOAdvantages(settings: s, klCoefficient: 0.1).compute(&episodes, lambda: nil, comm: comm)
        // Values are float32 on the model's side (0.2 is 0.2000000030), hence 1e-7.
        for (a, w) in zip(episodes[0].advantages, [0.40775, 0.745, 1.1]) { XCTAssertEqual(a, w, accuracy: 1e-7, "GAE advantage") }
        for (r, w) in zip(episodes[0].returns[0], [0.90775, 0.945, 1.0]) { XCTAssertEqual(r, w, accuracy: 1e-7, "GAE return") }
        // β = 0.1 with log-ratios [0.2, −0.1, 0.3]: rewards [−0.02, 0.01, 0.97].
        episodes = [oracleEpisode(logRatios: [0.2, -0.1, 0.3])]
        _ = try PPOAdvantages(settings: s, klCoefficient: 0.1).compute(&episodes, lambda: nil, comm: comm)
        for (a, w) in zip(episodes[0].advantages, [0.370175, 0.7265, 1.07]) {
            XCTAssertEqual(a, w, accuracy: 1e-6, "GAE advantage with the KL penalty (float32 log-probs)")
        }
        // Whitening with the unbiased variance.
        s.whitening = .batch
        episodes = [oracleEpisode()]
        _ = try PPOAdvantages(settings: s, klCoefficient: 0.1).compute(&episodes, lambda: nil, comm: comm)
        for (a, w) in zip(episodes[0].advantages, [-0.991344, -0.017092, 1.008436]) { XCTAssertEqual(a, w, accuracy: 1e-6, "whitened advantage") }
        s.whitening = .sequence
        episodes = [oracleEpisode(), oracleEpisode(index: 1, logRatios: [0.2, -0.1, 0.3])]
        _ = try PPOAdvantages(settings: s, klCoefficient: 0.1).compute(&episodes, lambda: nil, comm: comm)
        for (a, w) in zip(episodes[0].advantages, [-0.991344, -0.017092, 1.008436]) {
            XCTAssertEqual(a, w, accuracy: 1e-6, "per-sequence whitening ignores the other episode")
        }
    }

    /// Batch whitening over two ranks (moments all-reduced) gives one rank's advantages.
    func testBatchWhiteningOverTwoRanksEqualsOne() throws {
        var s = PPOConfig()
        s.whitening = .batch
        var rng = SplitMix64(seed: 4)
        let all = (0..<6).map { i -> PPOEpisode in
            let n = 1 + Int(rng.uniform(below: 5))
            return PPOEpisode(index: i, prompt: i, promptTokens: [3], responseTokens: Array(repeating: 4, count: n), stopped: true,
                              logProbs: (0..<n).map { _ in -2 * rng.nextUniform() }, referenceLogProbs: (0..<n).map { _ in -2 * rng.nextUniform() },
                              values: [(0..<n).map { _ in rng.nextGaussian() }], scores: [Double(rng.nextGaussian())])
        }
        var one = all
        _ = try PPOAdvantages(settings: s, klCoefficient: 0.05).compute(&one, lambda: nil, comm: LocalCommunicator.group(size: 1)[0])
        let group = LocalCommunicator.group(size: 2)
        let lock = NSLock()
        var results: [Int: Result<[PPOEpisode], Error>] = [:]
        DispatchQueue.concurrentPerform(iterations: 2) { r in
            var shard = r == 0 ? Array(all[0..<2]) : Array(all[2...])
            let result = Result { () throws -> [PPOEpisode] in
                _ = try PPOAdvantages(settings: s, klCoefficient: 0.05).compute(&shard, lambda: nil, comm: group[r])
                return shard
            }
            lock.lock(); results[r] = result; lock.unlock()
        }
        let two = try results[0]!.get() + results[1]!.get()
        for (a, b) in zip(one, two) {
            for (x, y) in zip(a.advantages, b.advantages) { XCTAssertEqual(x, y, accuracy: 1e-12, "episode \(a.index): 2 ranks = 1 rank") }
        }
    }

    /// PPO-Lagrangian: λ steps from the window of episode costs (λ0 1, J_C 0.5, lr 0.1 → e^0.05, then 1.10801) and
    /// mixes the streams as (A_R − λ·A_C)/(1 + λ) (A_R 0.6, A_C 0.9 at λ1 → −0.168746), through the rollout path.
    func testLagrangianStepAndCombinedAdvantageMatchTheOracles() throws {
        var c = PPOTestSupport.config(output: work.appendingPathComponent("lag"), episodes: 2)
        c.ppo.whitening = .none
        c.ppo.klCoefficient = 0
        c.optimizer.globalBatchSize = 2
        try c.validate()
        let comm = LocalCommunicator.group(size: 1)[0]
        let policy = try Transformer(config: { var m = Self.tiny; m.valueHeads = 2; return m }(), trainable: true)
        policy.initializeRandomly(seed: 2)
        // Single-token episodes with zero values: A_R = reward score, A_C = cost score; the costs average 0.5.
        let episodes = [(0.6, 0.9), (0.2, 0.1)].enumerated().map { i, s in
            PPOEpisode(index: i, prompt: i, promptTokens: [3, Int32(4 + i)], responseTokens: [9], stopped: true, logProbs: [-1],
                       referenceLogProbs: [-1], values: [[0], [0]], scores: [s.0, s.1])
        }
        let lagrangian = try PPOLagrangian(multiplier: LagrangeMultiplierUpdate(initialLambda: 1, learningRate: 0.1, threshold: 0, lambdaMax: 5),
                                           windowSize: 128)
        let objective = try PPOTestSupport.objective(c, policy: policy, episodes: episodes, lagrangian: lagrangian, comm: comm)
        let trainer = try Trainer(config: c, communicator: comm, model: LoadedModel(model: policy, tokenizer: nil, gguf: nil, source: work),
                                  objective: objective)
        try objective.prepare(trainer.context)
        try objective.sampleRollout(promptIDs: [0, 1], seed: 1, step: 0, context: trainer.context)
        XCTAssertEqual(objective.state.lagrangian!.lambda, 1.05127, accuracy: 1e-5, "λ1")
        let first = objective.state.rollout!.episodes.first { $0.prompt == 0 }!
        XCTAssertEqual(first.advantages[0], -0.168746, accuracy: 1e-6, "combined advantage at λ1")
        try objective.sampleRollout(promptIDs: [0, 1], seed: 2, step: 1, context: trainer.context)
        XCTAssertEqual(objective.state.lagrangian!.lambda, 1.10801, accuracy: 1e-5, "λ2 (the window still averages 0.5)")
        XCTAssertEqual(objective.lambdaHistory.map(\.step), [1, 2], "λ history, one record per rollout")
    }

    /// The clipped policy and value losses through the objective's loss: (ρ 1.5, A 1) → −1.2, (ρ 0.5, A −1) → 0.8;
    /// V̂ 1, V_old 0, R 2, ε_v 0.2 → 1.62 (ppo-dp.md §4), with the episode's loss scaled by G/N.
    func testClippedLossesMatchTheOracles() throws {
        var c = PPOTestSupport.config(output: work.appendingPathComponent("clip"), episodes: 2)
        c.ppo.valueCoefficient = 1
        let comm = LocalCommunicator.group(size: 1)[0]
        let policy = try Transformer(config: { var m = Self.tiny; m.valueHeads = 1; return m }(), trainable: true)
        let episodes = (0..<2).map { i in
            PPOEpisode(index: i, prompt: i, promptTokens: [3, Int32(4 + i)], responseTokens: [9], stopped: true, logProbs: [0],
                       referenceLogProbs: [0], values: [[0]], scores: [0])
        }
        let objective = try PPOTestSupport.objective(c, policy: policy, episodes: episodes, comm: comm)
        let trainer = try Trainer(config: c, communicator: comm, model: LoadedModel(model: policy, tokenizer: nil, gguf: nil, source: work),
                                  objective: objective)
        try objective.prepare(trainer.context)
        var plan = StepPlan(step: 0, seed: 3, global: [], microBatches: [])
        try objective.beginStep(&plan, context: trainer.context)
        for (p, a) in [(0, 1.0), (1, -1.0)] {
            let i = objective.state.rollout!.episodes.firstIndex { $0.prompt == p }!
            objective.state.rollout!.episodes[i].advantages = [a]
            objective.state.rollout!.episodes[i].returns = [[2]]
        }
        let ids = objective.state.rollout!.episodes.map(\.index)
        let batch = try objective.microBatch(ids, split: .train)
        let targets = TokenTargets(responsesOf: batch.batch, responseStarts: batch.responseStarts)
        let ratios = ids.map { objective.state.rollout!.episodes[$0].prompt == 0 ? 1.5 : 0.5 }
        let outputs = ModelOutputs(targets: targets, logProbs: ratios.map { Float(log($0)) }, scores: [], values: [1, 1])
        let result = try objective.evaluate(batch, outputs: outputs, split: .train)
        // G = 2 episodes, N = 2 tokens: ℓ_i = policy_i + 1.62 (G/N = 1).
        for (k, id) in ids.enumerated() {
            let want = (objective.state.rollout!.episodes[id].prompt == 0 ? -1.2 : 0.8) + 1.62
            XCTAssertEqual(result.losses[k], want, accuracy: 1e-6, "episode \(id): clipped policy + value loss")
        }
        XCTAssertEqual(result.metrics["policy/clipfrac_avg"]! / result.metrics["count/policy/clipfrac_avg"]!, 1, accuracy: 1e-12,
                       "both ratios are clipped")
        XCTAssertEqual(result.metrics["val/clipfrac_avg"]! / result.metrics["count/val/clipfrac_avg"]!, 1, accuracy: 1e-12, "the value is clipped")
    }

    /// A mini-batch whose mean ratio exceeds ppo.ratioThreshold is skipped on every rank: the run logs
    /// `ppo/skipped` 1 and the weights are unchanged; below the threshold the same step updates them.
    func testRatioGuardSkipsTheUpdate() throws {
        let fixture = try PPOUpdateTests.fixtureCase("ppo")
        for (shift, skipped) in [(Float(3), true), (Float(0), false)] {
            let out = work.appendingPathComponent("guard-\(shift)")
            var c = PPOTestSupport.config(output: out, episodes: 4)
            c.ppo.ratioThreshold = 10
            let comm = LocalCommunicator.group(size: 1)[0]
            let model = try Transformer.load(huggingFaceDirectory: PPOTestSupport.fixtures.appendingPathComponent("model"), trainable: true, valueHeads: 1)
            // Old log-probs 3 nats below the policy's: ρ ≈ e³ ≈ 20 > 10.
            let episodes = PPOTestSupport.episodes(fixture).map { e -> PPOEpisode in
                var e = e
                e.logProbs = e.logProbs.map { $0 - shift }
                return e
            }
            let objective = try PPOTestSupport.objective(c, policy: model, episodes: episodes, comm: comm)
            let before = model.parameters.array
            let trainer = try Trainer(config: c, communicator: comm, model: LoadedModel(model: model, tokenizer: nil, gguf: nil, source: work),
                                      objective: objective)
            let summary = try trainer.run()
            XCTAssertEqual(summary.finalMetrics["ppo/skipped"], skipped ? 1 : 0, "shift \(shift): ppo/skipped")
            if skipped {
                XCTAssertGreaterThan(summary.finalMetrics["val/ratio"]!, 10, "the mean ratio explodes")
                XCTAssertEqual(model.parameters.array, before, "a skipped mini-batch leaves the weights as they were")
            } else {
                XCTAssertNotEqual(model.parameters.array, before, "an accepted mini-batch updates the weights")
            }
        }
    }

    /// A non-finite reward score stops the run at the rollout, naming the step and the episode.
    func testNonFiniteScoreStopsNamingTheStep() throws {
        let fixture = try PPOUpdateTests.fixtureCase("ppo")
        let c = PPOTestSupport.config(output: work.appendingPathComponent("nan"), episodes: 4)
        let comm = LocalCommunicator.group(size: 1)[0]
        let model = try Transformer.load(huggingFaceDirectory: PPOTestSupport.fixtures.appendingPathComponent("model"), trainable: true, valueHeads: 1)
        var episodes = PPOTestSupport.episodes(fixture)
        episodes[2].scores = [.nan]
        let objective = try PPOTestSupport.objective(c, policy: model, episodes: episodes, comm: comm)
        let trainer = try Trainer(config: c, communicator: comm, model: LoadedModel(model: model, tokenizer: nil, gguf: nil, source: work),
                                  objective: objective)
        XCTAssertThrowsError(try trainer.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("stopping at step 1") && text.contains("non-finite reward score"), "the error names the step and the value: \(text)")
        }
    }
}
