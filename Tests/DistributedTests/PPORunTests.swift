// `dualign train ppo` as users run it, on the tiny Llama of the trainer's golden test, a tiny reward model and
// 24 pre-tokenized prompts (Tests/fixtures/generate_ppo_fixtures.py): two rollout batches of 8 episodes, two
// PPO epochs of mini-batches of 4, held-out evaluation. Checks that 2 ranks take the same steps as 1 (same
// samples, losses, rewards, KL and weights to float tolerance), that a run killed while writing a checkpoint
// resumes from the rollout in flight and ends bit-identical to an uninterrupted run, and that LoRA (under
// mpirun -np 2) and separate critics resume exactly too.

import Foundation
import XCTest
import Formats

final class PPORunTests: XCTestCase {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/trainer-golden")
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/ppo-run")
    /// Relative tolerance between runs that sum gradients in another order (1 vs 2 ranks).
    static let crossWorldTolerance = 1e-4
    /// Metrics that measure time, not training.
    static let timingKeys: Set<String> = ["tokens_per_s", "time/rollout_s"]

    var work: URL!
    override func setUpWithError() throws {
        try Jobs.requireSubcommand("train")
        work = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-ppo-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: work) }

    /// A run config writing to `name`; `extra` YAML lines are appended.
    func config(_ name: String, extra: String = "") throws -> (config: URL, output: URL) {
        let output = work.appendingPathComponent(name)
        let yaml = """
        model: \(Self.golden.appendingPathComponent("model").path)
        outputDir: \(output.path)
        seed: 4
        data:
          maxLength: 24
          maxPromptLength: 8
          datasets:
            - schema: tokens
              paths: [\(Self.fixtures.appendingPathComponent("prompts.jsonl").path)]
              evalFraction: 0.25
        optimizer: {globalBatchSize: 4, microBatchSize: 2, maxSteps: 8, learningRate: 3.0e-3, schedule: constant, maxGradNorm: 1.0}
        checkpoint: {every: 2, keepLast: 3}
        evaluation: {every: 4, maxPairs: 8}
        ppo:
          rewardModel: \(Self.fixtures.appendingPathComponent("reward").path)
          rolloutBatchSize: 8
          ppoEpochs: 2
          maxNewTokens: 12
          generationBatchSize: 4
          stopTokenIDs: [7, 11]
          klCoefficient: 0.05
          klController: adaptive
          klTarget: 1.0
          klHorizon: 100
        \(extra)
        """
        let url = work.appendingPathComponent("\(name).yaml")
        try yaml.write(to: url, atomically: true, encoding: .utf8)
        return (url, output)
    }

    func train(np: Int?, _ config: URL, _ sets: [String] = [], environment: [String: String] = [:]) throws -> JobRun {
        try Jobs.run(np: np, ["train", "ppo", "--config", config.path] + sets.flatMap { ["--set", $0] }, timeout: 300, environment: environment)
    }

    func metrics(_ output: URL) throws -> [[String: Double]] {
        let text = try String(contentsOf: output.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            (try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]).compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }

    func assertSameMetrics(_ a: [[String: Double]], _ b: [[String: Double]], tolerance: Double?, _ what: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(what): metric lines", file: file, line: line)
        for (x, y) in zip(a, b) {
            for k in Set(x.keys).union(y.keys).subtracting(Self.timingKeys).sorted() {
                guard let u = x[k], let v = y[k] else { XCTFail("\(what): step \(x["step"] ?? -1) lacks \(k)", file: file, line: line); continue }
                if let tol = tolerance {
                    XCTAssertLessThanOrEqual(abs(u - v), tol * max(1, abs(v)), "\(what): step \(x["step"]!) \(k): \(u) vs \(v) (tolerance \(tol))",
                                             file: file, line: line)
                } else {
                    XCTAssertEqual(u.bitPattern, v.bitPattern, "\(what): step \(x["step"]!) \(k): \(u) vs \(v) (bit-identical expected)", file: file, line: line)
                }
            }
        }
    }

    func assertSameWeights(_ a: URL, _ b: URL, tolerance: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try SafetensorsFile(contentsOf: a), y = try SafetensorsFile(contentsOf: b)
        XCTAssertEqual(Set(x.entries.keys), Set(y.entries.keys), "\(what): tensor names", file: file, line: line)
        for name in x.entries.keys.sorted() {
            let u = try x.floats(name), v = try y.floats(name)
            let worst = zip(u, v).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, tolerance, "\(what): \(name) max |Δ| \(worst) (tolerance \(tolerance))", file: file, line: line)
        }
    }

    /// The run's own checks: two rollouts of 8 episodes, 4 steps each, TRL's metric names, the budget, evaluation.
    func checkRun(_ m: [[String: Double]], _ run: JobRun) {
        let steps = m.filter { $0["loss"] != nil }
        XCTAssertEqual(steps.count, 8, "8 optimizer steps logged\n\(run.transcript)")
        for key in ["objective/kl", "objective/scores", "objective/rlhf_reward", "objective/non_score_reward", "policy/approxkl_avg",
                    "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg", "val/ratio", "val/clipfrac_avg", "val/vpred",
                    "objective/kl_coef", "tokens/generated", "tokens/forward", "tokens/trained"] {
            XCTAssertNotNil(steps.first?[key], "metric \(key) logged at the first step")
        }
        XCTAssertEqual(steps.compactMap { $0["objective/scores"] }.count, 2, "rollout statistics once per rollout (steps 1 and 5)")
        XCTAssertEqual(steps[0]["val/ratio"]!, 1, accuracy: 1e-5, "the first mini-batch's ratio is 1 (π = π_old)")
        XCTAssertEqual(steps[0]["ppo/rollouts"], 1)
        XCTAssertEqual(steps[4]["ppo/rollouts"], 2)
        XCTAssertGreaterThan(steps.last!["tokens/generated"]!, steps.first!["tokens/generated"]!, "generated tokens accumulate per rollout")
        XCTAssertGreaterThan(steps.last!["tokens/trained"]!, 0)
        XCTAssertNotEqual(steps[4]["objective/kl_coef"], steps[0]["objective/kl_coef"], "the adaptive controller moved β")
        let evals = m.filter { $0["eval/objective/scores"] != nil }
        XCTAssertGreaterThanOrEqual(evals.count, 3, "held-out reward before training, at step 4 and at step 8")
    }

    func testTwoRanksTakeTheSameStepsAsOne() throws {
        let (c1, o1) = try config("one")
        let one = try train(np: nil, c1)
        XCTAssertEqual(one.status, 0, one.transcript)
        try checkRun(metrics(o1), one)
        let (c2, o2) = try config("two")
        let two = try train(np: 2, c2)
        XCTAssertEqual(two.status, 0, two.transcript)
        assertSameMetrics(try metrics(o2), try metrics(o1), tolerance: Self.crossWorldTolerance, "2 ranks vs 1")
        try assertSameWeights(o2.appendingPathComponent("final/model.safetensors"), o1.appendingPathComponent("final/model.safetensors"),
                              tolerance: 1e-4, "final weights, 2 ranks vs 1")
    }

    /// Killed while writing checkpoint 4 (the end of the first rollout), the run resumes from step 2 — in the
    /// middle of the first rollout, restored from the checkpoint — and ends bit-identical to an uninterrupted run.
    func testKilledRunResumesFromTheRolloutInFlight() throws {
        let (c1, o1) = try config("straight")
        let straight = try train(np: nil, c1)
        XCTAssertEqual(straight.status, 0, straight.transcript)
        let (c2, o2) = try config("killed")
        let crashed = try train(np: nil, c2, environment: ["DUALIGN_FAULT": "checkpoint-write:4"])
        XCTAssertNotEqual(crashed.status, 0, crashed.transcript)
        let resumed = try train(np: nil, c2)
        XCTAssertEqual(resumed.status, 0, resumed.transcript)
        XCTAssertTrue(resumed.stderr.contains("resuming from step-00000002"), resumed.transcript)
        assertSameMetrics(try metrics(o2), try metrics(o1), tolerance: nil, "killed and resumed vs uninterrupted")
        try assertSameWeights(o2.appendingPathComponent("final/model.safetensors"), o1.appendingPathComponent("final/model.safetensors"),
                              tolerance: 0, "final weights, resumed vs uninterrupted")
    }

    /// LoRA under mpirun -np 2, stopped after step 3 (mid-rollout) and resumed: the same as an uninterrupted run.
    func testLoRARunOnTwoRanksResumesExactly() throws {
        let lora = "lora: {rank: 4, alpha: 8}"
        let (c1, o1) = try config("lora-straight", extra: lora)
        let straight = try train(np: 2, c1)
        XCTAssertEqual(straight.status, 0, straight.transcript)
        try checkRun(metrics(o1), straight)
        XCTAssertTrue(straight.stderr.contains("LoRA r=4") && straight.stderr.contains("the base (adapters off)"), straight.transcript)
        let (c2, o2) = try config("lora-resumed", extra: lora)
        let first = try train(np: 2, c2, ["checkpoint.stopAfterStep=3", "checkpoint.every=1"])
        XCTAssertEqual(first.status, 0, first.transcript)
        let second = try train(np: 2, c2, ["checkpoint.stopAfterStep=3", "checkpoint.every=1"])
        XCTAssertEqual(second.status, 0, second.transcript)
        XCTAssertTrue(second.stderr.contains("resuming from step-00000003"), second.transcript)
        assertSameMetrics(try metrics(o2), try metrics(o1), tolerance: nil, "LoRA resumed vs uninterrupted")
        try assertSameWeights(o2.appendingPathComponent("final-adapter/adapter_model.safetensors"),
                              o1.appendingPathComponent("final-adapter/adapter_model.safetensors"), tolerance: 0, "adapters")
    }

    /// A separate critic (initialised from the reward model) trains beside the policy and resumes exactly: its
    /// weights and moments travel in the checkpoint.
    func testSeparateCriticTrainsAndResumes() throws {
        let critic = "  critic: model\n  criticLearningRate: 1.0e-3"
        let (a, oa) = try configWithCritic("critic-straight", critic)
        let straight = try train(np: nil, a)
        XCTAssertEqual(straight.status, 0, straight.transcript)
        XCTAssertTrue(straight.stderr.contains("1 separate model(s)"), straight.transcript)
        let m = try metrics(oa).filter { $0["loss"] != nil }
        XCTAssertEqual(m.count, 8, straight.transcript)
        XCTAssertNotNil(m.first?["critic/grad_norm"], "the critic's step is logged")
        XCTAssertNotNil(m.first?["loss/value_avg"], "the critic's value loss is logged")
        let (b, ob) = try configWithCritic("critic-resumed", critic)
        let first = try train(np: nil, b, ["checkpoint.stopAfterStep=6"])
        XCTAssertEqual(first.status, 0, first.transcript)
        let second = try train(np: nil, b, ["checkpoint.stopAfterStep=6"])
        XCTAssertEqual(second.status, 0, second.transcript)
        XCTAssertTrue(second.stderr.contains("resuming from step-00000006"), second.transcript)
        assertSameMetrics(try metrics(ob), try metrics(oa), tolerance: nil, "separate critic, resumed vs uninterrupted")
    }

    /// `config` with lines appended to its ppo section.
    func configWithCritic(_ name: String, _ lines: String) throws -> (URL, URL) {
        let (url, output) = try config(name)
        let text = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "  klHorizon: 100\n", with: "  klHorizon: 100\n\(lines)\n")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return (url, output)
    }

    /// Bad PPO settings are refused before anything runs, naming the key.
    func testBadSettingsAreRefusedNamingTheKey() throws {
        let (c, _) = try config("bad")
        for (set, key) in [("ppo.rolloutBatchSize=6", "ppo.rolloutBatchSize"), ("ppo.maxNewTokens=40", "ppo.maxNewTokens"),
                           ("ppo.rolloutBatchSize=32", "ppo.rolloutBatchSize")] {
            let run = try train(np: nil, c, [set])
            XCTAssertNotEqual(run.status, 0, "\(set) must be refused\n\(run.transcript)")
            XCTAssertTrue((run.stderr + run.stdout).contains(key), "the refusal of \(set) names \(key)\n\(run.transcript)")
        }
    }
}
