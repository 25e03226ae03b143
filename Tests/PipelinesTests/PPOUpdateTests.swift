// One PPO update through the objective and the trainer against its PyTorch twin
// (Tests/fixtures/generate_ppo_fixtures.py): given a fixed rollout batch — tokens, old and reference
// log-probs, old values, scores — the advantages and returns, the loss, TRL's statistics and the gradient of
// every trainable tensor (value heads included), for PPO with full fine-tuning, PPO with LoRA (PEFT) and
// PPO-Lagrangian (reward and cost heads, λ stepped from the episode costs).

import Foundation
import XCTest
import Alignment
import Datasets
import Distributed
import Formats
import Models
import Tensors
import TestSupport
@testable import Pipelines
@testable import Training

/// A fixture case as the generator writes it.
struct PPOFixtureCase: Decodable {
    struct Settings: Decodable {
        var beta: Double
        var whitening: String
        var clip: Double
        var clip_value: Double
        var vf_coef: Double
        var score_clip: Double?
    }
    struct Episode: Decodable {
        var prompt: [Int32]
        var response: [Int32]
        var scores: [Double]
        var old_logprobs: [Float]
        var ref_logprobs: [Float]
        var values: [[Float]]
        var expected_advantages: [Double]
        var expected_returns: [[Double]]
    }
    struct Expected: Decodable {
        var loss: Double
        var policy_loss: Double
        var value_losses: [Double]
        var approxkl: Double
        var policykl: Double
        var clipfrac: Double
        var ratio: Double
        var value_clipfrac: [Double]
        var vpred: [Double]
        var tokens: Int
        var lambda: Double?
    }
    var settings: Settings
    var episodes: [Episode]
    var expected: Expected
}

/// Building PPO runs on tiny models in process (shared by the PPO test files).
enum PPOTestSupport {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/ppo-update")

    static func cases() throws -> [String: PPOFixtureCase] {
        try JSONDecoder().decode([String: PPOFixtureCase].self, from: Data(contentsOf: fixtures.appendingPathComponent("cases.json")))
    }

    /// A run config for a fixed batch of `episodes` episodes trained as one mini-batch of micro-batches of 2.
    static func config(output: URL, episodes: Int, lora: Bool = false) -> RunConfig {
        var c = RunConfig()
        c.task = .ppo
        c.outputDir = output.path
        c.data.datasets = [DatasetSpec(schema: .tokens, paths: ["unused"])]
        c.data.maxLength = 48
        c.data.maxPromptLength = 16
        c.optimizer.globalBatchSize = episodes
        c.optimizer.microBatchSize = 2
        c.optimizer.maxSteps = 1
        c.optimizer.learningRate = 1e-3
        c.optimizer.schedule = "constant"
        c.optimizer.maxGradNorm = 1e9
        c.checkpoint.every = 0
        c.ppo.rolloutBatchSize = episodes
        c.ppo.ppoEpochs = 1
        c.ppo.generationBatchSize = episodes
        c.ppo.maxNewTokens = 16
        if lora {
            c.lora.rank = 4
            c.lora.alpha = 8
        }
        return c
    }

    /// A real score model of the fixture's shape (random weights; a fixed rollout never calls it).
    static func scoreModel(_ config: ModelConfig) throws -> Transformer {
        var c = config
        c.scoreHead = true
        c.valueHeads = 0
        let m = try Transformer(config: c, trainable: false)
        m.initializeRandomly(seed: 9)
        return m
    }

    /// The objective of `config` on `policy` whose rollouts are `episodes` (by prompt): the fixed batch.
    static func objective(_ config: RunConfig, policy: Transformer, episodes: [PPOEpisode], lagrangian: PPOLagrangian? = nil,
                          comm: Communicator) throws -> PPOObjective {
        let prompts = PPOPrompts(train: episodes.map(\.promptTokens), eval: [])
        let score = try scoreModel(policy.config)
        let objective = try PPOObjective(config: config, prompts: prompts, scoreModels: lagrangian == nil ? [score] : [score, score],
                                         critics: [], lagrangian: lagrangian, stopTokens: [], padToken: 0, comm: comm)
        objective.rolloutOverride = { positions, promptIDs, _ in
            zip(positions, promptIDs).map { j, p in
                var e = episodes[p]
                e.index = j
                e.prompt = p
                return e
            }
        }
        return objective
    }

    /// Fixture episodes without their derived fields.
    static func episodes(_ c: PPOFixtureCase) -> [PPOEpisode] {
        c.episodes.enumerated().map { i, e in
            PPOEpisode(index: i, prompt: i, promptTokens: e.prompt, responseTokens: e.response, stopped: true, logProbs: e.old_logprobs,
                       referenceLogProbs: e.ref_logprobs, values: e.values, scores: e.scores)
        }
    }
}

final class PPOUpdateTests: XCTestCase {
    var work: URL!
    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-ppo-update-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: work) }

    /// Relative tolerances: float64 math on the same float32 inputs (advantages), and float32 model sums in
    /// another order than PyTorch's (loss, statistics, gradients).
    static let advantageTolerance = 1e-9
    static let lossTolerance = 2e-5
    static let gradientTolerance = 2e-5

    func check(_ name: String) throws {
        let fixture = try PPOUpdateTests.fixtureCase(name)
        let tensors = try SafetensorsFile(contentsOf: PPOTestSupport.fixtures.appendingPathComponent("expected.safetensors"))
        let lag = name == "lag", heads = lag ? 2 : 1
        var c = PPOTestSupport.config(output: work.appendingPathComponent(name), episodes: fixture.episodes.count, lora: name == "lora")
        let s = fixture.settings
        c.ppo.klCoefficient = s.beta
        c.ppo.whitening = PPOWhitening(rawValue: s.whitening)!
        c.ppo.clipRange = s.clip
        c.ppo.clipRangeValue = s.clip_value
        c.ppo.valueCoefficient = s.vf_coef
        c.ppo.scoreClip = s.score_clip
        try c.validate()
        let comm = LocalCommunicator.group(size: 1)[0]
        let model = try Transformer.load(huggingFaceDirectory: PPOTestSupport.fixtures.appendingPathComponent("model"), trainable: true, valueHeads: heads)
        let lagrangian = lag ? try PPOLagrangian(multiplier: LagrangeMultiplierUpdate(initialLambda: 1, learningRate: 0.1, threshold: 0, lambdaMax: 5),
                                                 windowSize: 128) : nil
        let objective = try PPOTestSupport.objective(c, policy: model, episodes: PPOTestSupport.episodes(fixture), lagrangian: lagrangian, comm: comm)
        let trainer = try Trainer(config: c, communicator: comm, model: LoadedModel(model: model, tokenizer: nil, gguf: nil, source: work),
                                  objective: objective)
        // The fixture's value heads and adapters (the trainer attached adapters as the config asks).
        let slab = model.trainable
        for v in slab.views {
            let key = v.name == ParameterLayout.valueHeadName ? "\(name).v_head" : "lora.\(v.name)"
            guard name == "lora" || v.name == ParameterLayout.valueHeadName else { continue }
            let values = try tensors.floats(key)
            XCTAssertEqual(values.count, v.count, "\(key): fixture size")
            (slab.values.pointer + v.offset).update(from: values, count: v.count)
        }
        let context = trainer.context
        try objective.prepare(context)
        var plan = StepPlan(step: 0, seed: 11, global: [], microBatches: [])
        try objective.beginStep(&plan, context: context)
        XCTAssertEqual(plan.global.sorted(), [0, 1, 2, 3], "the mini-batch is the whole rollout")
        XCTAssertEqual(plan.microBatches.count, 2, "two micro-batches of 2")

        // Advantages and returns of every episode.
        let episodes = objective.state.rollout!.episodes
        for e in episodes {
            let want = fixture.episodes[e.prompt]
            for (t, (a, w)) in zip(e.advantages, want.expected_advantages).enumerated() {
                XCTAssertEqual(a, w, accuracy: Self.advantageTolerance * max(1, abs(w)), "\(name) episode \(e.prompt) advantage[\(t)]")
            }
            for h in 0..<heads {
                for (t, (r, w)) in zip(e.returns[h], want.expected_returns[h]).enumerated() {
                    XCTAssertEqual(r, w, accuracy: Self.advantageTolerance * max(1, abs(w)), "\(name) episode \(e.prompt) returns[\(h)][\(t)]")
                }
            }
        }
        if let l = fixture.expected.lambda {
            assertScalarClose(objective.state.lagrangian!.lambda, l, "\(name) λ after the rollout's step", relativeTolerance: 1e-12)
        }

        // The loss, its parts and TRL's statistics.
        let metrics = try trainer.trainStep(plan)
        let x = fixture.expected
        var want: [(String, Double)] = [("loss", x.loss), ("loss/policy_avg", x.policy_loss), ("policy/approxkl_avg", x.approxkl),
                                        ("policy/policykl_avg", x.policykl), ("val/ratio", x.ratio), ("loss/value_avg", x.value_losses[0]),
                                        ("val/vpred", x.vpred[0])]
        if lag { want += [("loss/cost_value_avg", x.value_losses[1]), ("val/cost_vpred", x.vpred[1])] }
        // Relative to max(1, |value|): the policy loss is a mean of ±ratio·A over whitened advantages
        // (terms of order 1) that nearly cancel, so fp32 rounding of its O(1) terms sets its error.
        for (key, value) in want {
            XCTAssertEqual(metrics[key] ?? .nan, value, accuracy: Self.lossTolerance * max(1, abs(value)), "\(name) \(key)")
        }
        XCTAssertEqual(metrics["policy/clipfrac_avg"] ?? .nan, x.clipfrac, accuracy: 1e-12, "\(name) policy/clipfrac_avg")
        XCTAssertEqual(metrics["val/clipfrac_avg"] ?? .nan, x.value_clipfrac[0], accuracy: 1e-12, "\(name) val/clipfrac_avg")
        XCTAssertEqual(metrics["tokens"], Double(fixture.episodes.reduce(0) { $0 + $1.prompt.count + $1.response.count }), "\(name) trained tokens")

        // ∂L/∂ every trainable tensor.
        var compared = 0
        for v in slab.views {
            let got = Array(UnsafeBufferPointer(start: slab.gradients.pointer + v.offset, count: v.count))
            let expected = try tensors.floats("\(name).grad.\(v.name)")
            assertTensorClose(got, expected, "\(name) ∂L/∂\(v.name)", relativeTolerance: Self.gradientTolerance)
            XCTAssertGreaterThan(expected.map { abs($0) }.max() ?? 0, 0, "\(name) ∂L/∂\(v.name) is not trivially zero")
            compared += 1
        }
        XCTAssertEqual(compared, name == "lora" ? 2 * 7 * 2 + 1 : model.layout.views.count, "\(name): every trainable tensor compared")
    }

    static func fixtureCase(_ name: String) throws -> PPOFixtureCase {
        guard let c = try PPOTestSupport.cases()[name] else { throw XCTSkip("fixture case \(name) missing") }
        return c
    }

    func testPPOUpdateMatchesPyTorch() throws { try check("ppo") }

    func testLoRAPPOUpdateMatchesPEFT() throws { try check("lora") }

    func testPPOLagrangianUpdateMatchesPyTorch() throws { try check("lag") }
}
