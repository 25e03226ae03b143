// `dualign align dp-rlhf` as users run it, on the private-training tests' tiny model with SmolLM2's tokenizer
// and real HH-RLHF pairs: the split gives each stage its own prompts (disjoint; the PPO stage keys its
// prompts as the others key their pairs), every stage runs DP-SGD and logs ε, align.json states each stage's
// ε and the pipeline's (the maximum: parallel composition), 2 ranks take the same steps as 1 with seeded
// noise, a target ε is met by every stage, a rerun reuses the stages, and without dp the same stages train
// without noise on the same shares (ε = ∞).

import Foundation
import XCTest

extension PrivateTrainingRunTests {
    /// A dp-rlhf config: 3 DP-SFT, 3 DP reward and 2 DP-PPO steps on the 48 pairs' split 0.4/0.3/0.3.
    func privateRLHFConfig(_ name: String, dp: String = "{noiseMultiplier: 1.0, physicalBatchSize: 3, clip: 1.0, noise: seeded, accountant: rdp}")
        throws -> (config: URL, output: URL) {
        let extra = """
        dpRLHF:
          sft: {fraction: 0.4, maxSteps: 3, learningRate: 2.0e-3, expectedBatchSize: 6}
          reward: {fraction: 0.3, maxSteps: 3, learningRate: 2.0e-3, expectedBatchSize: 6}
          ppo: {fraction: 0.3, maxSteps: 2, learningRate: 1.0e-3, expectedBatchSize: 4}
        ppo: {maxNewTokens: 8, generationBatchSize: 4, whitening: sequence, klCoefficient: 0.05}
        """
        let (cfg, out) = try config(name, extra: extra)
        var text = try String(contentsOf: cfg, encoding: .utf8)
        text = text.replacingOccurrences(of: "dp: {noiseMultiplier: 1.0, expectedBatchSize: 8, physicalBatchSize: 3, clip: 1.0, noise: seeded, accountant: rdp}",
                                         with: dp.isEmpty ? "" : "dp: \(dp)")
        try text.write(to: cfg, atomically: true, encoding: .utf8)
        return (cfg, out)
    }

    func align(np: Int?, _ config: URL) throws -> JobRun {
        try Jobs.run(np: np, ["align", "dp-rlhf", "--config", config.path], timeout: 600)
    }

    func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    func testPrivatePipelineRunsEveryStagePrivatelyOnItsOwnShareAndTwoRanksMatchOne() throws {
        try Jobs.requireSubcommand("align")
        let (cfg1, out1) = try privateRLHFConfig("dp-rlhf-1")
        let one = try align(np: nil, cfg1)
        XCTAssertEqual(one.status, 0, one.transcript)
        let (cfg2, out2) = try privateRLHFConfig("dp-rlhf-2")
        let two = try align(np: 2, cfg2)
        XCTAssertEqual(two.status, 0, two.transcript)

        let s1 = try json(out1.appendingPathComponent("align.json")), s2 = try json(out2.appendingPathComponent("align.json"))
        XCTAssertEqual(s1["method"] as? String, "dp-rlhf")
        let stages = s1["privateStages"] as! [String: [String: Any]]
        XCTAssertEqual(Set(stages.keys), ["sft", "reward", "ppo"])
        var epsilons: [Double] = []
        for (name, stage) in stages {
            let e = stage["epsilon"] as? Double ?? 0
            XCTAssertGreaterThan(e, 0, "\(name): ε spent")
            XCTAssertEqual(stage["secureNoise"] as? Bool, false, "\(name): seeded noise is reported as not private")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out1.appendingPathComponent(stage["model"] as! String).path), "\(name): model")
            epsilons.append(e)
            let other = (s2["privateStages"] as! [String: [String: Any]])[name]!
            XCTAssertEqual(e, other["epsilon"] as? Double, "\(name): the same ε on 2 ranks")
        }
        let privacy = s1["privacy"] as! [String: Any]
        XCTAssertEqual(privacy["epsilon"] as? Double, epsilons.max(), "parallel composition: the pipeline's ε is the largest stage's")
        XCTAssertEqual(privacy["composition"] as? String, "parallel (disjoint splits)")

        // Each stage trained on its own share: the logs state kept rows, and the shares are disjoint in the split file.
        let split = try json(out1.appendingPathComponent("stages/0-split/split.json"))
        let shares = (split["stages"] as! [[String: Any]]).map { Set($0["rows"] as! [String]) }
        XCTAssertEqual(shares.count, 3)
        XCTAssertEqual(shares.map(\.count).reduce(0, +), shares.reduce(Set<String>()) { $0.union($1) }.count, "no prompt in two stages")
        for stage in ["sft", "reward", "ppo"] {
            XCTAssertTrue(one.stderr.contains("dp.split: stage '\(stage)'"), "the \(stage) stage selects its share:\n\(one.stderr.suffix(3000))")
        }
        // DP-PPO: ε logged each step and the same steps on 2 ranks as on 1 (seeded noise and sampling).
        let ppo1 = try metrics(out1.appendingPathComponent("stages/3-ppo")).filter { $0["dp/epsilon"] != nil }
        let ppo2 = try metrics(out2.appendingPathComponent("stages/3-ppo")).filter { $0["dp/epsilon"] != nil }
        XCTAssertEqual(ppo1.count, 2, "2 DP-PPO steps")
        XCTAssertEqual(ppo1.map { $0["dp/batch_size"]! }, ppo2.map { $0["dp/batch_size"]! }, "the same Poisson samples on 2 ranks")
        for (a, b) in zip(ppo1, ppo2) {
            XCTAssertEqual(a["dp/epsilon"], b["dp/epsilon"])
            XCTAssertEqual(a["loss"] ?? 0, b["loss"] ?? 0, accuracy: 1e-4 * max(1, abs(b["loss"] ?? 0)), "DP-PPO loss, 1 rank vs 2")
        }

        // A rerun reuses every stage.
        let again = try align(np: nil, cfg1)
        XCTAssertEqual(again.status, 0, again.transcript)
        for stage in ["0-split", "1-sft", "2-reward", "3-ppo"] {
            XCTAssertTrue(again.stderr.contains("stage \(stage): complete, reused"), "\(stage) reused:\n\(again.stderr.suffix(2000))")
        }
    }

    /// A target ε: each stage searches its σ for its own steps and share, and spends at most the target.
    func testPrivatePipelineMeetsATargetEpsilonInEveryStage() throws {
        try Jobs.requireSubcommand("align")
        let (cfg, out) = try privateRLHFConfig("dp-rlhf-eps", dp: "{epsilon: 4.0, physicalBatchSize: 3, clip: 1.0, noise: seeded, accountant: rdp}")
        let run = try align(np: nil, cfg)
        XCTAssertEqual(run.status, 0, run.transcript)
        let s = try json(out.appendingPathComponent("align.json"))
        for (name, stage) in s["privateStages"] as! [String: [String: Any]] {
            let e = stage["epsilon"] as! Double, sigma = stage["noiseMultiplier"] as! Double
            XCTAssertLessThanOrEqual(e, 4.0 * (1 + 1e-9), "\(name): ε ≤ target")
            XCTAssertGreaterThan(e, 3.5, "\(name): σ is the smallest that meets the target, so ε is close to it")
            XCTAssertGreaterThan(sigma, 0, "\(name): σ searched")
        }
        XCTAssertLessThanOrEqual((s["privacy"] as! [String: Any])["epsilon"] as! Double, 4.0 * (1 + 1e-9))
    }

    /// Without dp the same stages train without noise on the same shares: ε = ∞ in align.json.
    func testPrivatePipelineWithoutDPIsTheInfiniteEpsilonBaseline() throws {
        try Jobs.requireSubcommand("align")
        let (cfg, out) = try privateRLHFConfig("dp-rlhf-inf", dp: "")
        let run = try align(np: nil, cfg)
        XCTAssertEqual(run.status, 0, run.transcript)
        let s = try json(out.appendingPathComponent("align.json"))
        XCTAssertEqual((s["privacy"] as! [String: Any])["epsilon"] as? String, "inf")
        XCTAssertTrue(run.stderr.contains("dp.split: stage 'ppo'"), "the shares still apply:\n\(run.stderr.suffix(2000))")
        let ppo = try metrics(out.appendingPathComponent("stages/3-ppo"))
        XCTAssertFalse(ppo.contains { $0["dp/epsilon"] != nil }, "no DP step")
    }

    /// The other pipelines have no private variant: a dp section is refused by name, not ignored.
    func testOtherPipelinesRefuseDP() throws {
        try Jobs.requireSubcommand("align")
        let (cfg, _) = try config("dp-sacpo")
        let run = try Jobs.run(np: nil, ["align", "sacpo", "--config", cfg.path], timeout: 120)
        XCTAssertNotEqual(run.status, 0, run.transcript)
        XCTAssertTrue(run.stderr.contains("dp:") && run.stderr.contains("dp-rlhf"), "the refusal names dp and the private pipeline:\n\(run.transcript)")
    }
}
