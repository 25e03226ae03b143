// DP-SGD in the trainer, in process on a tiny random model: the private gradient is (Σ c_i g_i + noise)/(q·N)
// (with σ = 0, q = 1 and no clipping it is the non-private mean gradient, full and LoRA); the noise is
// N(0, σ²C²) added once per step whatever the world size (χ² bound, both noise modes, 1 and 2 thread-ranks;
// seeded: the very same noise on 1 and 2 ranks); empty Poisson batches still step with noise; a seeded run
// stopped and resumed is bit-identical and reports the whole run's ε, also resumed on another world size; a
// resume that would overspend the budget is refused; SFT's per-example normalisation; and every refusal
// names its key.

import Foundation
import XCTest
import Datasets
import Distributed
import Models
import Privacy
import Tensors
import TestSupport
@testable import Training

final class PrivateTrainingTests: XCTestCase {
    static let modelConfig = ModelConfig(vocabSize: 96, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4,
                                         numKVHeads: 2, maxPositions: 64)

    var work: URL!
    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-dp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: work) }

    /// `count` random pairs with prompts of 3–6 tokens and responses of 2–7.
    func pairs(_ count: Int, seed: UInt64) -> [TokenizedPair] {
        var rng = SplitMix64(seed: seed)
        func ids(_ lo: Int, _ hi: Int) -> [Int] { (0..<(lo + Int(rng.uniform(below: UInt64(hi - lo + 1))))).map { _ in 3 + Int(rng.uniform(below: 90)) } }
        return (0..<count).map { i in
            TokenizedPair(id: "p\(i)", promptTokens: ids(3, 6), chosenTokens: ids(2, 7), rejectedTokens: ids(2, 7),
                          source: SourceLocation(file: "memory", line: i + 1))
        }
    }

    /// A private DPO run: seeded noise, σ given, q = expected/N, physical batches of 3.
    func config(steps: Int = 4, lora: Int = 4, sigma: Double? = 1.0, expected: Double = 6, noise: NoiseSourceState.Mode = .seeded,
                clip: Double = 0.5, task: TrainingTask = .dpo) -> RunConfig {
        var c = RunConfig()
        c.task = task
        c.outputDir = work.appendingPathComponent("run").path
        c.data.datasets = [DatasetSpec(schema: .tokens, paths: ["unused"])]
        c.optimizer.globalBatchSize = 8
        c.optimizer.microBatchSize = 3
        c.optimizer.maxSteps = steps
        c.optimizer.learningRate = 1e-2
        c.optimizer.schedule = "constant"
        c.checkpoint.every = 2
        c.lora.rank = lora
        c.lora.alpha = Double(2 * max(lora, 1))
        c.dp.noiseMultiplier = sigma
        c.dp.expectedBatchSize = expected
        c.dp.noise = noise
        c.dp.clip = clip
        c.dp.accountant = .rdp
        c.seed = 4
        return c
    }

    func trainer(_ c: RunConfig, data: [TokenizedPair], comm: Communicator = LocalCommunicator.group(size: 1)[0],
                 scoreHead: Bool = false) throws -> Trainer {
        var mc = Self.modelConfig
        mc.scoreHead = scoreHead
        let model = try Transformer(config: mc, trainable: true)
        model.initializeRandomly(seed: 5, std: 0.1)
        let loaded = LoadedModel(model: model, tokenizer: nil, gguf: nil, source: work)
        let td = TrainingData(train: data, eval: [], report: LoadReport())
        return try Trainer(config: c, communicator: comm, model: loaded, objective: c.task.objective(config: c, data: td, padToken: 0))
    }

    func loggedMetrics(_ dir: String = "run") throws -> [[String: Double]] {
        let text = try String(contentsOf: work.appendingPathComponent("\(dir)/metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            .map { $0.compactMapValues { ($0 as? NSNumber)?.doubleValue } }.filter { $0["dp/epsilon"] != nil }
    }

    /// The private gradient of step 0 on `ranks` thread-ranks (rank 0's slab; all ranks hold the same).
    func privateGradient(_ c: RunConfig, data: [TokenizedPair], ranks: Int) throws -> [Float] {
        let results = LocalCommunicator.run(size: ranks, timeout: 120) { comm -> [Float] in
            let t = try self.trainer(c, data: data, comm: comm)
            try t.objective.prepare(t.context)
            _ = try t.privateGradient(t.privacy!, step: 0, seed: 77)
            return t.trainable.gradients.array
        }
        return try results[0].get()
    }

    // MARK: - The gradient

    /// With σ = 0, q = 1 and a clipping norm no example reaches, the private gradient Σ g_i / N is the
    /// non-private mean gradient of the same N examples.
    func testNoiselessUnclippedPrivateGradientIsTheMeanGradient() throws {
        let data = pairs(8, seed: 3)
        for lora in [0, 4] {
            var c = config(lora: lora, sigma: 0, expected: 8, clip: 1e9)
            let dp = try privateGradient(c, data: data, ranks: 1)
            c.dp = PrivacyConfig()
            c.optimizer.microBatchSize = 4
            let t = try trainer(c, data: data)
            try t.objective.prepare(t.context)
            _ = try t.trainStep(StepPlan(step: 0, seed: 77, global: Array(0..<8), microBatches: [Array(0..<4), Array(4..<8)]))
            assertTensorClose(dp, t.trainable.gradients.array, "private gradient (σ 0, q 1, no clipping) vs mean gradient, lora \(lora)",
                              relativeTolerance: 1e-5)
        }
    }

    /// The noise of a step is N(0, σ²C²) per coordinate, added once (rank 0) whatever the world size:
    /// noise = (g_σ − g_0)·q·N over the P trainable values gives Σ z²/(σC)² ~ χ²_P, within 5 standard deviations
    /// (√(2P)) of P; noise added per rank would give about W·P. Seeded noise is the same draw on 1 and 2 ranks.
    func testNoiseIsAddedOncePerStepWithTheRightVariance() throws {
        let data = pairs(8, seed: 3)
        let sigma = 2.0, clip = 0.5
        var seededNoise: [Int: [Double]] = [:]
        for mode in [NoiseSourceState.Mode.seeded, .secure] {
            for ranks in [1, 2] {
                let noisy = try privateGradient(config(sigma: sigma, expected: 8, noise: mode, clip: clip), data: data, ranks: ranks)
                let clean = try privateGradient(config(sigma: 0, expected: 8, noise: mode, clip: clip), data: data, ranks: ranks)
                let noise = zip(noisy, clean).map { (Double($0) - Double($1)) * 8 }                 // × q·N = 8
                let P = Double(noise.count)
                let chi2 = noise.reduce(0) { $0 + $1 * $1 } / (sigma * clip * sigma * clip)
                let bound = 5 * (2 * P).squareRoot()
                XCTAssertLessThanOrEqual(abs(chi2 - P), bound,
                                         "\(mode), \(ranks) rank(s): Σ z²/(σC)² = \(chi2) over P = \(Int(P)) values; χ²_P is within ±\(bound) of P (5 sd)")
                if mode == .seeded { seededNoise[ranks] = noise }
            }
        }
        let one = seededNoise[1]!, two = seededNoise[2]!
        let worst = zip(one, two).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 1e-4, "seeded: rank 0 draws the same noise on 1 and 2 ranks (max |diff| \(worst))")
    }

    /// A step whose Poisson batch is empty still adds noise (and logs no loss).
    func testEmptyBatchesStillStepWithNoise() throws {
        let data = pairs(16, seed: 2)
        let c = config(steps: 3, lora: 4, sigma: 1, expected: 0.01)                 // q = 0.000625: every batch empty here
        let t = try trainer(c, data: data)
        let before = t.trainable.values.array
        _ = try t.run()
        let m = try loggedMetrics()
        XCTAssertEqual(m.count, 3)
        for row in m {
            XCTAssertEqual(row["dp/batch_size"], 0, "empty Poisson batch")
            XCTAssertNil(row["loss"], "no loss without examples")
            XCTAssertGreaterThan(row["grad_norm"]!, 0, "the noise is still added")
        }
        XCTAssertNotEqual(t.trainable.values.array, before, "the noised (empty) steps move the adapters")
    }

    // MARK: - Accounting, metrics, resume

    func testMetricsAndEpsilonOfTheWholeRun() throws {
        let data = pairs(16, seed: 2)
        let c = config(steps: 6)
        _ = try trainer(c, data: data).run()
        let m = try loggedMetrics()
        XCTAssertEqual(m.count, 6)
        let q = 6.0 / 16
        for (i, row) in m.enumerated() {
            XCTAssertEqual(row["dp/noise_multiplier"], 1)
            XCTAssertEqual(row["dp/sample_rate"], q)
            XCTAssertEqual(row["dp/private"], 0, "seeded noise is marked not private")
            XCTAssertTrue((0...1).contains(row["dp/clip_fraction"]!))
            let expected = try RDPAccountant(history: [PrivacySegment(noiseMultiplier: 1, sampleRate: q, steps: i + 1)]).epsilon(delta: 1.0 / 16)
            XCTAssertEqual(row["dp/epsilon"]!, expected, accuracy: 1e-12, "ε after \(i + 1) steps is the accountant's for (σ 1, q \(q), \(i + 1) steps)")
        }
        let state = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: work.appendingPathComponent("run/step-00000006/trainer.json")))
        XCTAssertEqual(state.privacy?.accountant.history, [PrivacySegment(noiseMultiplier: 1, sampleRate: q, steps: 6)])
        XCTAssertEqual(state.privacy?.isPrivate, false, "the checkpoint marks seeded noise as not private")
        let manifest = try String(contentsOf: work.appendingPathComponent("run/step-00000006/manifest.json"), encoding: .utf8)
        XCTAssertTrue(manifest.contains("NOT PRIVATE"), "the manifest marks the run: \(manifest)")
    }

    /// Seeded: stopped after step 2 and resumed, the run logs the very metrics (ε included) and ends with the
    /// very weights of an uninterrupted run; resumed on 2 thread-ranks, ε is the same and the rest agrees to
    /// float tolerance.
    func testSeededResumeIsBitIdenticalAndKeepsTheWholeRunsEpsilon() throws {
        let data = pairs(16, seed: 2)
        var c = config(steps: 4)
        let straight = try trainer(c, data: data)
        _ = try straight.run()
        let expected = try loggedMetrics(), weights = straight.trainable.values.array
        try FileManager.default.removeItem(at: work.appendingPathComponent("run"))
        c.checkpoint.stopAfterStep = 2
        _ = try trainer(c, data: data).run()
        c.checkpoint.stopAfterStep = nil
        let resumed = try trainer(c, data: data)
        _ = try resumed.run()
        let got = try loggedMetrics()
        XCTAssertEqual(got.count, expected.count)
        for (a, b) in zip(got, expected) {
            for k in Set(a.keys).union(b.keys).subtracting(["tokens_per_s"]) {
                XCTAssertEqual(a[k]?.bitPattern, b[k]?.bitPattern, "step \(b["step"] ?? -1) \(k): \(a[k] ?? .nan) vs \(b[k] ?? .nan)")
            }
        }
        XCTAssertEqual(resumed.trainable.values.array, weights, "resumed weights are bit-identical")

        // The same stop on 1 rank, resumed on 2 thread-ranks.
        try FileManager.default.removeItem(at: work.appendingPathComponent("run"))
        c.checkpoint.stopAfterStep = 2
        _ = try trainer(c, data: data).run()
        c.checkpoint.stopAfterStep = nil
        let results = LocalCommunicator.run(size: 2, timeout: 240) { comm in _ = try self.trainer(c, data: data, comm: comm).run() }
        for r in results { _ = try r.get() }
        let across = try loggedMetrics()
        for (a, b) in zip(across, expected) {
            XCTAssertEqual(a["dp/epsilon"], b["dp/epsilon"], "step \(b["step"]!): ε after a resume on 2 ranks is the whole run's")
            XCTAssertEqual(a["loss"]!, b["loss"]!, accuracy: 1e-5 * max(1, abs(b["loss"]!)), "step \(b["step"]!) loss on 2 ranks")
        }
    }

    /// σ searched for ε over 4 steps; resumed with maxSteps 12, the run keeps its σ and refuses to overspend.
    func testResumeThatWouldOverspendTheBudgetIsRefused() throws {
        let data = pairs(16, seed: 2)
        var c = config(steps: 4, sigma: nil)
        c.dp.epsilon = 3
        c.checkpoint.stopAfterStep = 2
        let first = try trainer(c, data: data)
        let sigma = first.privacy!.plan.noiseMultiplier
        _ = try first.run()
        c.optimizer.maxSteps = 12
        XCTAssertThrowsError(try trainer(c, data: data).run()) { error in
            XCTAssertEqual((error as? RunConfigError)?.key, "optimizer.maxSteps", "\(error)")
        }
        c.optimizer.maxSteps = 4
        c.checkpoint.stopAfterStep = nil
        let resumed = try trainer(c, data: data)
        _ = try resumed.run()
        XCTAssertEqual(resumed.privacy!.plan.noiseMultiplier, sigma)
        XCTAssertLessThanOrEqual(try loggedMetrics().last!["dp/epsilon"]!, 3, "the whole run meets ε = 3")
    }

    /// Reward and cost models train privately with LoRA: the score head is clipped with the adapters, the loss is
    /// finite, and the head moves.
    func testScoreModelsTrainPrivately() throws {
        var data = pairs(16, seed: 21)
        for i in data.indices { data[i].chosenIsSafe = true; data[i].rejectedIsSafe = i % 2 == 0 }
        for task in [TrainingTask.reward, .cost] {
            try? FileManager.default.removeItem(at: work.appendingPathComponent("run"))
            let t = try trainer(config(steps: 3, task: task), data: data, scoreHead: true)
            let head = t.policy.adapters!.scoreOffset!
            let before = t.trainable.values.array[head]
            _ = try t.run()
            let m = try loggedMetrics()
            XCTAssertEqual(m.count, 3, "\(task)")
            XCTAssertTrue(m.allSatisfy { $0["loss"].map(\.isFinite) ?? true }, "\(task): finite losses")
            XCTAssertNotEqual(t.trainable.values.array[head], before, "\(task): the score head trains")
        }
    }

    // MARK: - Refusals

    func assertRefused(_ key: String, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual((error as? RunConfigError)?.key, key, "refusal names \(key): \(error)", file: file, line: line)
        }
    }

    func testRefusalsNameTheirKey() throws {
        let data = pairs(16, seed: 2)
        var c = config()
        c.dp = PrivacyConfig()
        c.dp.clip = 2
        assertRefused("dp.epsilon") { try c.validate() }                            // a dp key without ε or σ
        c = config(); c.dp.epsilon = 0
        assertRefused("dp.epsilon") { try c.validate() }
        c = config(); c.dp.sampleRate = 0.5
        assertRefused("dp.sampleRate") { try c.validate() }                         // with expectedBatchSize
        c = config(); c.dp.stage = "sft"
        assertRefused("dp.stage") { try c.validate() }                              // a stage without a split
        c = config(); c.dp.noiseMultiplier = -1
        assertRefused("dp.noiseMultiplier") { try c.validate() }
        c = config(task: .sft)
        assertRefused("sft.normalization") { _ = try self.trainer(c, data: data) }  // global-token SFT under dp
        c.sft.normalization = .example
        XCTAssertNoThrow(try trainer(c, data: data))
        c = config(sigma: nil); c.dp.epsilon = 1e-9; c.dp.delta = 1e-5
        assertRefused("dp.epsilon") { _ = try self.trainer(c, data: data) }         // unreachable whatever σ
        c = config(steps: 100, sigma: 0.5); c.dp.epsilon = 1
        assertRefused("dp.noiseMultiplier") { _ = try self.trainer(c, data: data) } // σ too small for ε
        c = config(expected: 40)
        assertRefused("dp.expectedBatchSize") { _ = try self.trainer(c, data: data) }
        c = config()
        let model = try Transformer(config: Self.modelConfig, trainable: true)
        assertRefused("dp") {
            _ = try Trainer(config: c, communicator: LocalCommunicator.group(size: 1)[0],
                            model: LoadedModel(model: model, tokenizer: nil, gguf: nil, source: self.work), objective: UndeclaredObjective())
        }
    }

    /// SFT with per-example normalisation: the loss is the mean over examples of each one's mean −log p.
    func testSFTPerExampleNormalisation() throws {
        let data = pairs(8, seed: 9)
        var c = config(task: .sft)
        c.dp = PrivacyConfig()
        c.sft.normalization = .example
        c.optimizer.microBatchSize = 4
        c.optimizer.maxSteps = 1
        c.optimizer.learningRate = 1e-9
        let loss = try trainer(c, data: data).run().finalMetrics["loss"]!
        let model = try Transformer(config: Self.modelConfig, trainable: false)
        model.initializeRandomly(seed: 5, std: 0.1)
        let means = data.map { p -> Double in
            let lp = model.sequenceLogProbs(TokenBatch(sequences: [p.chosenSequence.map(Int32.init)]), responseStarts: [p.responseStart])
            return -lp[0] / Double(p.chosenTokens.count)
        }
        XCTAssertEqual(loss, means.reduce(0, +) / 8, accuracy: 1e-5 * abs(loss), "mean over examples of per-example mean NLL")
    }
}

/// An objective that does not declare itself fit for DP-SGD (the protocol's default refuses).
final class UndeclaredObjective: TrainingObjective {
    var name: String { "undeclared" }
    var request: ModelRequest { .logProbs }
    var trainCount: Int { 8 }
    var evalCount: Int { 0 }
    var dataReport: String { "" }
    func microBatch(_ examples: [Int], split: ExampleSplit) throws -> MicroBatch { fatalError("not used") }
    func evaluate(_ batch: MicroBatch, outputs: ModelOutputs, split: ExampleSplit) throws -> ObjectiveResult { fatalError("not used") }
}
