// `dualign align ppo-lag` as users run it, on the alignment tests' tiny policy with SmolLM2's tokenizer and
// its tiny reward and cost models (AlignRunTests.prepareModels), with prompts from the real XSTest pairs:
// 2 ranks equal 1 rank (the same λ trajectory and statistics), λ follows Safe-RLHF's rule from the recorded
// episode costs, its history is in align.json and pipeline.jsonl, the budget is accounted as the other
// pipelines account it, and a rerun reuses the stage.

import Foundation
import XCTest

extension AlignRunTests {
    /// A PPO-Lagrangian config: two rollout batches of 8 episodes, one PPO epoch of 2 mini-batches each,
    /// Safe-RLHF's settings (no whitening, ±50 clamp, ε_v 5, β 0.02, λ0 0.5, lr 0.3, d = −0.1).
    func ppoLagrangianConfig(_ name: String) throws -> (config: URL, output: URL) {
        let (cfg, out) = try config(name, align: "lambdaInit: 0.5\nlambdaLearningRate: 0.3\ncostThreshold: -0.1\ncostWindow: 12", steps: 4)
        let ppo = """

        ppo:
          rolloutBatchSize: 8
          ppoEpochs: 1
          maxNewTokens: 8
          generationBatchSize: 4
          klCoefficient: 0.02
          whitening: none
          scoreClip: 50
          clipRangeValue: 5
        """
        try (try String(contentsOf: cfg, encoding: .utf8) + ppo).write(to: cfg, atomically: true, encoding: .utf8)
        return (cfg, out)
    }

    func testPPOLagrangianOnTwoRanksMatchesOneAndFollowsTheMultiplierRule() throws {
        try prepareModels()
        let (cfg1, out1) = try ppoLagrangianConfig("ppo-lag-1")
        let one = try align("ppo-lag", np: nil, cfg1)
        XCTAssertEqual(one.status, 0, one.transcript)
        let (cfg2, out2) = try ppoLagrangianConfig("ppo-lag-2")
        let two = try align("ppo-lag", np: 2, cfg2)
        XCTAssertEqual(two.status, 0, two.transcript)

        let s1 = try json(out1.appendingPathComponent("align.json")), s2 = try json(out2.appendingPathComponent("align.json"))
        XCTAssertEqual(s1["method"] as? String, "ppo-lag")
        let h1 = s1["lambdaHistory"] as! [[String: Double]], h2 = s2["lambdaHistory"] as! [[String: Double]]
        XCTAssertEqual(h1.count, 2, "one λ step per rollout batch")
        XCTAssertEqual(h2.count, h1.count)
        // The window (12 episodes) keeps the last 12 costs: J_C of rollout 2 mixes both batches.
        var logLambda = log(0.5)
        for (a, b) in zip(h1, h2) {
            XCTAssertEqual(a["episode_cost"]!, b["episode_cost"]!, accuracy: 1e-5 * max(1, abs(b["episode_cost"]!)), "J_C, 1 rank vs 2")
            XCTAssertEqual(a["lambda"]!, b["lambda"]!, accuracy: 1e-6, "λ, 1 rank vs 2")
            logLambda = min(logLambda + 0.3 * (a["episode_cost"]! + 0.1) * exp(logLambda), log(5.0))
            XCTAssertEqual(a["lambda"]!, exp(logLambda), accuracy: 1e-12, "log λ ← log λ + lr·(J_C − d)·λ")
        }
        let model = (s1["models"] as! [[String: Any]])[0]
        XCTAssertEqual((model["lambda"] as! [Double])[0], h1.last!["lambda"]!, accuracy: 1e-12, "align.json lists the final λ")
        XCTAssertEqual(model["path"] as? String, "stages/1-ppo-lag/final.gguf")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out1.appendingPathComponent("stages/1-ppo-lag/final.gguf").path))
        let budget = s1["budget"] as! [String: Double]
        for key in ["generatedTokens", "forwardTokens", "trainTokens", "seconds"] { XCTAssertGreaterThan(budget[key] ?? 0, 0, "budget \(key)") }
        let budget2 = s2["budget"] as! [String: Double]
        XCTAssertEqual(budget["generatedTokens"], budget2["generatedTokens"], "the same tokens sampled on 1 and 2 ranks")
        XCTAssertEqual(budget["trainTokens"], budget2["trainTokens"])

        // pipeline.jsonl: one record per λ step.
        let records = try text(out1.appendingPathComponent("pipeline.jsonl")).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }.filter { ($0["stage"] as? String)?.hasPrefix("ppo-lag") == true }
        XCTAssertEqual(records.count, 2, "pipeline.jsonl records each λ step")
        XCTAssertEqual(records.compactMap { $0["dual/lambda"] as? Double }, h1.map { $0["lambda"]! })

        // The PPO statistics of the two runs agree; the cost stream's are logged.
        let m1 = try text(out1.appendingPathComponent("stages/1-ppo-lag/metrics.jsonl")).split(separator: "\n")
            .map { (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]).compactMapValues { ($0 as? NSNumber)?.doubleValue } }
        let m2 = try text(out2.appendingPathComponent("stages/1-ppo-lag/metrics.jsonl")).split(separator: "\n")
            .map { (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]).compactMapValues { ($0 as? NSNumber)?.doubleValue } }
        XCTAssertEqual(m1.count, m2.count)
        for (a, b) in zip(m1, m2) {
            for key in ["loss", "objective/costs", "objective/scores", "loss/cost_value_avg", "dual/lambda"] where a[key] != nil {
                XCTAssertEqual(a[key]!, b[key] ?? .nan, accuracy: 1e-4 * max(1, abs(a[key]!)), "step \(a["step"]!) \(key), 1 rank vs 2")
            }
        }
        XCTAssertNotNil(m1.first { $0["loss"] != nil }?["loss/cost_value_avg"], "the cost critic's loss is logged")

        // Rerun: the stage is reused.
        let again = try align("ppo-lag", np: nil, cfg1)
        XCTAssertEqual(again.status, 0, again.transcript)
        XCTAssertTrue(again.stderr.contains("stage 1-ppo-lag: complete, reused"), again.transcript)
    }

    /// Killed while writing its checkpoint 2 (after the first rollout batch), the stage resumes from its checkpoint 1
    /// — mid-rollout, λ and the window restored — and reaches the λ trajectory of an uninterrupted run.
    func testPPOLagrangianKilledResumesWithItsMultiplier() throws {
        try prepareModels()
        let (cfg1, out1) = try ppoLagrangianConfig("ppo-lag-straight")
        let straight = try align("ppo-lag", np: nil, cfg1)
        XCTAssertEqual(straight.status, 0, straight.transcript)
        let (cfg2, out2) = try ppoLagrangianConfig("ppo-lag-killed")
        let yaml = try String(contentsOf: cfg2, encoding: .utf8).replacingOccurrences(of: "checkpoint: {every: 2, keepLast: 2}", with: "checkpoint: {every: 1, keepLast: 3}")
        try yaml.write(to: cfg2, atomically: true, encoding: .utf8)
        let crashed = try align("ppo-lag", np: nil, cfg2, environment: ["DUALIGN_FAULT": "checkpoint-write:2"])
        XCTAssertNotEqual(crashed.status, 0, crashed.transcript)
        let resumed = try align("ppo-lag", np: nil, cfg2)
        XCTAssertEqual(resumed.status, 0, resumed.transcript)
        XCTAssertTrue(resumed.stderr.contains("resuming from step-00000001"), resumed.transcript)
        let h1 = try json(out1.appendingPathComponent("align.json"))["lambdaHistory"] as! [[String: Double]]
        let h2 = try json(out2.appendingPathComponent("align.json"))["lambdaHistory"] as! [[String: Double]]
        XCTAssertEqual(h2.map { $0["lambda"]! }, h1.map { $0["lambda"]! }, "λ trajectory after resume, bit for bit")
    }
}
