// SAIL's objective through the whole trainer against a PyTorch twin (Tests/fixtures/generate_trainer_fixtures.py,
// part 3): the tiny Llama and 8 pairs of the trainer's golden test, every row routed by SAIL's seeded draw to
// DPO, SAIL-DP, SAIL-PP or SAIL-PR, the PP and PR rows taking online pairs preloaded into the buffers. Two steps
// per score-term form: the reported loss, the pre-clip gradient norm and every parameter after each AdamW step;
// the second step is taken by resuming the first run, so the buffers' cursors come from the checkpoint. Then the
// SAIL-PP labels of the online pairs under the trained policy (σ(β·h) and the reference log-probs), and two
// in-process ranks against one.

import Foundation
import XCTest
import Alignment
import Datasets
import Distributed
import Formats
import Models
import Pipelines
import Tensors
import Training

final class SAILGoldenTests: XCTestCase {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let fixtures = here.appendingPathComponent("Fixtures/sail-golden")
    static let golden = here.deletingLastPathComponent().appendingPathComponent("DistributedTests/Fixtures/trainer-golden")
    /// Relative tolerance of losses and norms; absolute tolerance of parameters (as the trainer's golden test).
    static let metricTolerance = 2e-5
    static let parameterTolerance: Float = 2e-5

    var work: URL!
    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-sail-golden-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: work) }

    struct OnlineFixture: Decodable {
        struct Settings: Decodable { var r, rho, p, pi, g, gamma, beta: Double; var seed: UInt64 }
        struct Pair: Decodable {
            var prompt, chosen, rejected: [Int32]
            var reference_chosen, reference_rejected: Double
        }
        var settings: Settings
        var routes: [[String]]
        var online: [String: [Pair]]
    }

    func online() throws -> OnlineFixture {
        try JSONDecoder().decode(OnlineFixture.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("online.json")))
    }

    func expected() throws -> (json: [String: Any], tensors: SafetensorsFile) {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("expected.json"))) as! [String: Any]
        return (json, try SafetensorsFile(contentsOf: Self.fixtures.appendingPathComponent("expected.safetensors")))
    }

    /// The fixture's run: full fine-tuning, G = 8 in micro-batches of 4, AdamW 1e-3, clipping at 1, no generation.
    func config(_ form: SAILScoreTerm, steps: Int, output: URL, settings s: OnlineFixture.Settings) -> RunConfig {
        var c = RunConfig()
        c.task = .dpo
        c.model = Self.golden.appendingPathComponent("model").path
        c.outputDir = output.path
        c.seed = 0
        c.data.datasets = [DatasetSpec(schema: .tokens, paths: [Self.golden.appendingPathComponent("pairs.jsonl").path])]
        c.data.maxLength = 64
        c.data.maxPromptLength = 32
        c.optimizer.globalBatchSize = 8
        c.optimizer.microBatchSize = 4
        c.optimizer.maxSteps = steps
        c.optimizer.learningRate = 1e-3
        c.optimizer.schedule = "constant"
        c.optimizer.weightDecay = 0.01
        c.optimizer.maxGradNorm = 1.0
        c.dpo.beta = s.beta
        c.checkpoint.every = 1
        c.sail.routes = [.dp, .pp, .pr]
        (c.sail.r, c.sail.rho, c.sail.p, c.sail.pi, c.sail.g, c.sail.gamma) = (s.r, s.rho, s.p, s.pi, s.g, s.gamma)
        c.sail.seed = s.seed
        c.sail.scoreTerm = form
        c.sail.generationPrompts = 1_000_000   // the buffers are preloaded; no round runs in two steps
        c.align.rewardModel = "unused (no round runs)"
        return c
    }

    /// A trainer over the SAIL objective on `comm`, its buffers preloaded with the fixture's online pairs when `preload`.
    func trainer(_ c: RunConfig, comm: Communicator, preload: OnlineFixture?) throws -> (Trainer, SAILObjective) {
        let loaded = try ModelSource.load(c.model, trainable: true)
        let data = try TrainingData.load(c, template: nil)
        var labellerConfig = loaded.model.config
        labellerConfig.scoreHead = true
        let objective = try SAILObjective(config: c, data: data, padToken: 0, stopTokens: [],
                                          labeller: try Transformer(config: labellerConfig, trainable: false))
        if let preload {
            var state = SAILOnlineState()
            func pairs(_ route: SAILRoute, _ list: [OnlineFixture.Pair]) -> [OnlinePair] {
                list.enumerated().map { k, p in
                    OnlinePair(route: route, index: UInt64(k), prompt: p.prompt, chosen: p.chosen, rejected: p.rejected,
                               referenceChosen: p.reference_chosen, referenceRejected: p.reference_rejected, swapped: false)
                }
            }
            state.policyPolicy = pairs(.policyPolicy, preload.online["dpp"]!)
            state.policyReward = pairs(.policyReward, preload.online["dpr"]!)
            try objective.restore(checkpointState: JSONEncoder().encode(state))
        }
        return (try Trainer(config: c, communicator: comm, model: loaded, objective: objective), objective)
    }

    func metrics(_ output: URL) throws -> [[String: Double]] {
        let text = try String(contentsOf: output.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            .map { $0.compactMapValues { $0 as? Double } }.filter { $0["loss"] != nil }
    }

    func assertTensors(_ output: URL, _ want: SafetensorsFile, prefix: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let got = try SafetensorsFile(contentsOf: output.appendingPathComponent("final/model.safetensors"))
        var compared = 0
        for name in got.entries.keys.sorted() where want.entries[prefix + name] != nil {
            let a = try got.floats(name), b = try want.floats(prefix + name)
            let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            XCTAssertEqual(a.count, b.count, "\(name): \(a.count) values, PyTorch \(b.count)", file: file, line: line)
            XCTAssertLessThanOrEqual(worst, Self.parameterTolerance,
                                     "\(prefix)\(name): max |dualign − PyTorch| = \(worst) (tolerance \(Self.parameterTolerance))", file: file, line: line)
            compared += 1
        }
        XCTAssertGreaterThan(compared, 10, "compared only \(compared) tensors with \(prefix)*", file: file, line: line)
    }

    func assertStep(_ got: [String: Double], _ want: [String: Double], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        for key in ["loss", "grad_norm"] {
            let g = got[key] ?? .nan, w = want[key]!
            XCTAssertLessThanOrEqual(abs(g - w), Self.metricTolerance * abs(w),
                                     "\(what) \(key): dualign \(g), PyTorch \(w) (relative tolerance \(Self.metricTolerance))", file: file, line: line)
        }
    }

    /// Step 1 with preloaded buffers, then step 2 by resuming; both against PyTorch, routes as the twin drew them.
    func checkTwoSteps(_ form: SAILScoreTerm) throws -> URL {
        let fixture = try online()
        let (json, tensors) = try expected()
        let want = (json[form.rawValue] as! [[String: Double]])
        let output = work.appendingPathComponent("run-\(form.rawValue)")
        let comm = LocalCommunicator.group(size: 1)[0]
        let (first, _) = try trainer(config(form, steps: 1, output: output, settings: fixture.settings), comm: comm, preload: fixture)
        _ = try first.run()
        try assertTensors(output, tensors, prefix: "\(form.rawValue).step1.")
        let (second, objective) = try trainer(config(form, steps: 2, output: output, settings: fixture.settings), comm: comm, preload: nil)
        _ = try second.run()
        try assertTensors(output, tensors, prefix: "\(form.rawValue).step2.")
        let m = try metrics(output)
        XCTAssertEqual(m.count, 2, "two steps logged")
        for (i, step) in m.prefix(2).enumerated() {
            assertStep(step, want[i], "\(form.rawValue) step \(i + 1)")
            for code in ["dpo", "ddp", "dpp", "dpr"] {
                let fraction = Double(fixture.routes[i].filter { $0 == code }.count) / 8
                XCTAssertEqual(step["sail/routes/\(code)"] ?? -1, fraction, "step \(i + 1): fraction of \(code) rows (the twin's seeded routes)")
                XCTAssertEqual(step["sail/routed/\(code)"] ?? -1, fraction, "step \(i + 1): fraction routed to \(code)")
            }
        }
        // The resumed run continued the buffers from the checkpoint: every preloaded pair the two steps needed is consumed.
        let used = fixture.routes.joined()
        XCTAssertEqual(objective.state.policyPolicyCursor, used.filter { $0 == "dpp" }.count, "SAIL-PP pairs consumed over both steps")
        XCTAssertEqual(objective.state.policyRewardCursor, used.filter { $0 == "dpr" }.count, "SAIL-PR pairs consumed over both steps")
        XCTAssertEqual(m[1]["sail/seen/online"], Double(used.filter { $0 == "dpp" || $0 == "dpr" }.count), "online rows seen after step 2")
        return output
    }

    func testCodeFaithfulStepsMatchPyTorchAndPPLabelsUseTheTrainedPolicy() throws {
        let output = try checkTwoSteps(.codeFaithful)
        // SAIL-PP labels of the online PP pairs: σ(β·h) of the first sample under the trained policy and the initial
        // reference, and the reference log-probs, as the twin computes them.
        let fixture = try online()
        let want = (try expected().json["dpp_first_probability"]) as! [Double]
        let policy = try ModelSource.load(output.appendingPathComponent("final").path).model
        let reference = try ModelSource.load(Self.golden.appendingPathComponent("model").path).model
        let c = config(.codeFaithful, steps: 2, output: output, settings: fixture.settings)
        let generator = SAILGenerator(config: c.sail.sailConfig(beta: c.dpo.beta, runSeed: c.seed), comm: LocalCommunicator.group(size: 1)[0],
                                      policy: policy, reference: reference, labeller: nil, labellerReversed: false,
                                      options: SamplingOptions(), stopTokens: [], batchSize: 4, padToken: 0)
        let pairs = fixture.online["dpp"]!
        let prompts = pairs.enumerated().map { QueuedPrompt(route: .policyPolicy, prompt: $1.prompt, source: $0) }
        let samples = pairs.flatMap { [(tokens: $0.chosen, stopped: false), (tokens: $0.rejected, stopped: false)] }
        let round = try generator.label(prompts, samples: samples, firstIndex: 0)
        XCTAssertEqual(round.pairs.count, pairs.count)
        for (k, got) in round.pairs.enumerated() {
            XCTAssertEqual(got.firstProbability ?? .nan, want[k], accuracy: 1e-5, "pair \(k): σ(β·h) of the first sample")
            let (first, second) = got.swapped ? (got.referenceRejected, got.referenceChosen) : (got.referenceChosen, got.referenceRejected)
            XCTAssertEqual(first, pairs[k].reference_chosen, accuracy: 1e-4, "pair \(k): ℓ_ref of the first sample")
            XCTAssertEqual(second, pairs[k].reference_rejected, accuracy: 1e-4, "pair \(k): ℓ_ref of the second sample")
            // The label is the seeded coin: the first sample is chosen when u ≥ 1 − σ(β·h).
            let u = SAILDraw.policyLabel.uniform(seed: c.sail.sailConfig(beta: c.dpo.beta, runSeed: c.seed).seed, index: UInt64(k))
            XCTAssertEqual(got.swapped, u < 1 - got.firstProbability!, "pair \(k): the label follows its coin")
        }
    }

    func testScoreFunctionStepsMatchPyTorch() throws { _ = try checkTwoSteps(.scoreFunction) }

    /// Two in-process ranks (each a micro-batch of 4) take the same two steps as one rank, to float tolerance.
    func testTwoInProcessRanksMatchOneRank() throws {
        let fixture = try online()
        let (json, tensors) = try expected()
        let want = json["codeFaithful"] as! [[String: Double]]
        let output = work.appendingPathComponent("run-2-ranks")
        let results = LocalCommunicator.run(size: 2) { comm -> Bool in
            let (t, _) = try self.trainer(self.config(.codeFaithful, steps: 2, output: output, settings: fixture.settings), comm: comm, preload: fixture)
            _ = try t.run()
            return true
        }
        for r in results { _ = try r.get() }
        let m = try metrics(output)
        XCTAssertEqual(m.count, 2)
        for (i, step) in m.enumerated() { assertStep(step, want[i], "2 ranks, step \(i + 1)") }
        try assertTensors(output, tensors, prefix: "codeFaithful.step2.")
    }
}
