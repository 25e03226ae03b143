// The alignment pipelines as users run them: `dualign align mocan|pecan|sacpo|primal-dual` on a tiny
// random policy with SmolLM2's tokenizer, tiny reward and cost models trained by `dualign train`, and
// the real XSTest pairs. Checks that 2 ranks give the same samples, λ* and labels as 1 rank, that a
// rerun reuses every stage, that a pipeline killed in its DPO stage resumes there, that a changed
// config is refused instead of mixing results, and the primal–dual multiplier rule.

import Foundation
import XCTest

final class AlignRunTests: XCTestCase {
    static var workDirectory: URL = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-align-tests-\(getpid())")
    static var policy: URL { workDirectory.appendingPathComponent("tiny.gguf") }
    static var rewardModel: URL { workDirectory.appendingPathComponent("reward/final.gguf") }
    static var costModel: URL { workDirectory.appendingPathComponent("cost/final.gguf") }

    override class func tearDown() { try? FileManager.default.removeItem(at: workDirectory) }

    /// The data root (DUALIGN_DATA, or what `launch/assets.sh data` resolves); fails the test when absent.
    static var sharedData: URL { get throws { try TestDataRoot.require("xstest").deletingLastPathComponent() } }

    /// Pair data: XSTest completions (helpfulness and harmlessness pairs), a few rows per file.
    static var datasets: String { get throws {
        let x = try sharedData.appendingPathComponent("xstest")
        return """
            - schema: xstest
              paths: [\(x.appendingPathComponent("model_completions").path)]
              xstestPrompts: \(x.appendingPathComponent("xstest_prompts.csv").path)
              evalFraction: 0.1
        """
    } }

    /// The tiny policy, and reward and cost models trained from it for a few steps (made once).
    func prepareModels() throws {
        try Jobs.requireSubcommand("align")
        if FileManager.default.fileExists(atPath: Self.costModel.path) { return }
        try FileManager.default.createDirectory(at: Self.workDirectory, withIntermediateDirectories: true)
        let made = try Jobs.run(np: nil, ["init-model", "--out", Self.policy.path, "--seed", "7"], timeout: 120)
        XCTAssertEqual(made.status, 0, made.transcript)
        for task in ["reward", "cost"] {
            let cfg = try write("score-\(task).yaml", """
            model: \(Self.policy.path)
            outputDir: \(Self.workDirectory.appendingPathComponent(task).path)
            data:
              template: chatml
              maxLength: 64
              maxPromptLength: 32
              datasets:
            \(Self.datasets)
            optimizer: {globalBatchSize: 4, microBatchSize: 4, maxSteps: 3, learningRate: 1.0e-3}
            checkpoint: {every: 0}
            """)
            let run = try Jobs.run(np: nil, ["train", task, "--config", cfg.path], timeout: 240)
            XCTAssertEqual(run.status, 0, run.transcript)
        }
    }

    func write(_ name: String, _ text: String) throws -> URL {
        let url = Self.workDirectory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// A pipeline config writing to a fresh directory `name`; `align` lines are added to the align section.
    func config(_ name: String, align: String = "margin: 0.01", steps: Int = 4) throws -> (config: URL, output: URL) {
        let out = Self.workDirectory.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: out)
        let cfg = try write("\(name).yaml", """
        model: \(Self.policy.path)
        outputDir: \(out.path)
        seed: 5
        data:
          template: chatml
          maxLength: 64
          maxPromptLength: 32
          maxPairs: 32
          datasets:
        \(Self.datasets)
        optimizer: {globalBatchSize: 4, microBatchSize: 2, maxSteps: \(steps), learningRate: 1.0e-3}
        checkpoint: {every: 2, keepLast: 2}
        evaluation: {every: 0, maxPairs: 8}
        distributed: {threads: 1}   # one thread everywhere: 1 and 2 ranks then compute every batch alike
        align:
          rewardModel: \(Self.rewardModel.path)
          costModel: \(Self.costModel.path)
          maxPrompts: 6
          samplesPerPrompt: 4
          maxNewTokens: 6
          batchSize: 8
          \(align.replacingOccurrences(of: "\n", with: "\n  "))
        """)
        return (cfg, out)
    }

    func align(_ method: String, np: Int?, _ cfg: URL, environment: [String: String] = [:]) throws -> JobRun {
        try Jobs.run(np: np, ["align", method, "--config", cfg.path], timeout: 300, environment: environment)
    }

    func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    /// λ* recorded by the dual stage.
    func lambda(_ out: URL, stage: String = "3-dual") throws -> Double {
        let record = try json(out.appendingPathComponent("stages/\(stage)/stage.json"))
        return ((record["result"] as! [String: Any])["lambda"] as! [Double])[0]
    }

    func text(_ url: URL) throws -> String { try String(contentsOf: url, encoding: .utf8) }

    func testMoCANOnTwoRanksMatchesOneRankAndRerunReusesEveryStage() throws {
        try prepareModels()
        let (cfg1, out1) = try config("mocan-1")
        let one = try align("mocan", np: nil, cfg1)
        XCTAssertEqual(one.status, 0, one.transcript)
        let (cfg2, out2) = try config("mocan-2")
        let two = try align("mocan", np: 2, cfg2)
        XCTAssertEqual(two.status, 0, two.transcript)

        // Same samples (per-sample generators), same scores up to summation order, so the same λ* and labels.
        XCTAssertEqual(try text(out1.appendingPathComponent("stages/1-samples/samples.jsonl")),
                       try text(out2.appendingPathComponent("stages/1-samples/samples.jsonl")))
        XCTAssertEqual(try lambda(out1), try lambda(out2), accuracy: 1e-6)
        XCTAssertEqual(try text(out1.appendingPathComponent("stages/4-labels/pairs.jsonl")),
                       try text(out2.appendingPathComponent("stages/4-labels/pairs.jsonl")))
        let samples = try text(out1.appendingPathComponent("stages/1-samples/samples.jsonl")).split(separator: "\n")
        XCTAssertEqual(samples.count, 6 * 4)

        // The dual stage's λ* solves the dual of the score file it wrote (checked by `dualign dual`).
        let dual = try Jobs.run(np: nil, ["dual", "--scores", out1.appendingPathComponent("stages/2-scores/dual-scores.jsonl").path,
                                          "--beta", "0.1", "--margin", "0.01"], timeout: 60)
        XCTAssertEqual(dual.status, 0, dual.transcript)
        let solved = try JSONSerialization.jsonObject(with: Data(dual.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((solved["lambda"] as! [Double])[0], try lambda(out1), accuracy: 1e-9)

        // align.json lists the model with λ, the margin and the predicted improvement (≥ the margin when λ > 0).
        let summary = try json(out1.appendingPathComponent("align.json"))
        let model = (summary["models"] as! [[String: Any]])[0]
        XCTAssertTrue(FileManager.default.fileExists(atPath: out1.appendingPathComponent(model["path"] as! String).path))
        XCTAssertEqual((model["margin"] as! [Double])[0], 0.01, accuracy: 1e-12)
        // KKT: tight when λ* > 0, otherwise the unconstrained optimum already improves by at least b.
        let predicted = (model["predictedImprovement"] as! [Double])[0]
        if try lambda(out1) > 0 { XCTAssertEqual(predicted, 0.01, accuracy: 1e-6) } else { XCTAssertGreaterThanOrEqual(predicted, 0.01 - 1e-9) }
        let budget = summary["budget"] as! [String: Double]
        XCTAssertGreaterThan(budget["trainTokens"]!, 0)
        XCTAssertGreaterThan(budget["generatedTokens"]!, 0)

        // Rerun: every stage is reused, nothing is recomputed.
        let again = try align("mocan", np: 2, cfg2)
        XCTAssertEqual(again.status, 0, again.transcript)
        for stage in ["1-samples", "2-scores", "3-dual", "4-labels", "5-dpo"] {
            XCTAssertTrue(again.stderr.contains("stage \(stage): complete, reused"), again.transcript)
        }
    }

    func testMoCANKilledInItsDPOStageResumesThereAndChangedConfigIsRefused() throws {
        try prepareModels()
        let (cfg, out) = try config("mocan-killed")
        let crashed = try align("mocan", np: 2, cfg, environment: ["DUALIGN_FAULT": "checkpoint-write:4"])
        XCTAssertNotEqual(crashed.status, 0, crashed.transcript)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("stages/4-labels/stage.json").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("stages/5-dpo/stage.json").path))
        // The DPO checkpoint records the pipeline stage, λ* and the inputs hash.
        let manifest = try text(out.appendingPathComponent("stages/5-dpo/step-00000002/manifest.json"))
        XCTAssertTrue(manifest.contains("\"pipeline_stage\"") && manifest.contains("5-dpo"), manifest)
        XCTAssertTrue(manifest.contains("\"dual_lambda\"") && manifest.contains("\"pipeline_inputs\""), manifest)

        let resumed = try align("mocan", np: 2, cfg)
        XCTAssertEqual(resumed.status, 0, resumed.transcript)
        for stage in ["1-samples", "2-scores", "3-dual", "4-labels"] {
            XCTAssertTrue(resumed.stderr.contains("stage \(stage): complete, reused"), resumed.transcript)
        }
        XCTAssertTrue(resumed.stderr.contains("resuming from step-00000002"), resumed.transcript)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("stages/5-dpo/final.gguf").path))

        // Same directory, another margin: refused, naming the stage to delete.
        let text = try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(of: "margin: 0.01", with: "margin: 0.02")
        try text.write(to: cfg, atomically: true, encoding: .utf8)
        let changed = try align("mocan", np: nil, cfg)
        XCTAssertNotEqual(changed.status, 0, changed.transcript)
        XCTAssertTrue(changed.stderr.contains("stage 3-dual") && changed.stderr.contains("other inputs"), changed.transcript)
    }

    func testPrimalDualFollowsTheSafeRLHFMultiplierRule() throws {
        try prepareModels()
        let (cfg, out) = try config("primal-dual", align: "rounds: 2\npromptsPerRound: 3\nlambdaInit: 0.5\nlambdaLearningRate: 0.3\ncostThreshold: -0.1")
        let run = try align("primal-dual", np: 2, cfg)
        XCTAssertEqual(run.status, 0, run.transcript)
        // log λ ← log λ + lr·(J_C − d)·λ, from the recorded per-round cost estimates.
        var logLambda = log(0.5)
        for r in 1...2 {
            let record = try json(out.appendingPathComponent("stages/\(r).1-sample-score/stage.json"))
            let estimate = record["result"] as! [String: Any]
            XCTAssertEqual(estimate["samples"] as? Int, 3 * 4)
            logLambda = min(logLambda + 0.3 * ((estimate["meanCost"] as! Double) + 0.1) * exp(logLambda), log(5.0))
        }
        let model = ((try json(out.appendingPathComponent("align.json")))["models"] as! [[String: Any]])[0]
        XCTAssertEqual((model["lambda"] as! [Double])[0], exp(logLambda), accuracy: 1e-9)
        // Round 2 trains from round 1's policy: its checkpoints exist and the final model is round 2's.
        XCTAssertEqual(model["path"] as? String, "stages/2.3-dpo/final.gguf")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("stages/1.3-dpo/final.gguf").path))
    }

    func testSACPOSweepAndPSACPOMergeAndPeCAN() throws {
        try prepareModels()
        let (cfg, out) = try config("sacpo", align: "betaOverLambda: [0.05, 0.02]\nmergeWeights: [0.5]")
        let run = try align("sacpo", np: 2, cfg)
        XCTAssertEqual(run.status, 0, run.transcript)
        let models = (try json(out.appendingPathComponent("align.json")))["models"] as! [[String: Any]]
        XCTAssertEqual(models.map { $0["name"] as! String }, ["dpo-helpfulness", "sacpo-0.05", "sacpo-0.02", "p-sacpo-q0.5"])
        XCTAssertEqual((models[1]["lambda"] as! [Double])[0], 0.1 / 0.05, accuracy: 1e-12)
        for m in models { XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(m["path"] as! String).path)) }
        // Stage 2 realigns the stage-1 model against itself with β/λ.
        let resolved = try text(out.appendingPathComponent("stages/2.2-dpo-harmlessness-0.02/config.resolved.json"))
        XCTAssertTrue(resolved.contains("\"beta\" : 0.02"), resolved)
        XCTAssertTrue(resolved.contains("stages/1-dpo-helpfulness/final.gguf"), resolved)

        let (pcfg, pout) = try config("pecan", align: "margin: 0.01\nlabelLogitScale: 0.1")
        let pecan = try align("pecan", np: 2, pcfg)
        XCTAssertEqual(pecan.status, 0, pecan.transcript)
        let lambda = try lambda(pout, stage: "5-dual")
        XCTAssertGreaterThanOrEqual(lambda, 0)
        // Each label's probability is σ(scale·((h1 − h0) + λ(s1 − s0))) of the recorded log-ratios, scale 0.1.
        let ratios = (try json(pout.appendingPathComponent("stages/4-logprobs/stage.json")))["result"] as! [String: Any]
        let h = ratios["pairHelpful"] as! [[Double]], s = ratios["pairSafe"] as! [[Double]]
        let labels = try text(pout.appendingPathComponent("stages/6-labels/pairs.jsonl")).split(separator: "\n")
        XCTAssertEqual(labels.count, h.count)
        for (i, line) in labels.enumerated() {
            let p = (try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any])["probability"] as! Double
            let z = 0.1 * ((h[i][1] - h[i][0]) + lambda * (s[i][1] - s[i][0]))
            XCTAssertEqual(p, 1 / (1 + exp(-z)), accuracy: 1e-12, "pair \(i)")
        }
    }
}
