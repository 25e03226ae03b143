// The trainer's loop on a tiny random model, in process: it can overfit one batch (DPO loss falls and
// preference accuracy reaches 1, for full fine-tuning and for LoRA), the step generator is restored and
// drawn from on resume (LoRA dropout masks come from it, so a resumed run is bit-identical to an
// uninterrupted one only if it is), and SFT weighs every response token of the global batch equally.

import Foundation
import XCTest
import Datasets
import Distributed
import Models
import Formats
import Tensors
@testable import Training

final class TrainerLoopTests: XCTestCase {
    static let modelConfig = ModelConfig(vocabSize: 96, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4,
                                         numKVHeads: 2, maxPositions: 64)

    var work: URL!
    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-loop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: work) }

    /// `count` random pairs with prompts of 3–6 tokens and responses of 2–7.
    func pairs(_ count: Int, seed: UInt64) -> [TokenizedPair] {
        var rng = SplitMix64(seed: seed)
        func ids(_ lo: Int, _ hi: Int) -> [Int] {
            let n = lo + Int(rng.uniform(below: UInt64(hi - lo + 1)))
            var out: [Int] = []
            for _ in 0..<n { out.append(3 + Int(rng.uniform(below: 90))) }
            return out
        }
        return (0..<count).map { i in
            TokenizedPair(id: "p\(i)", promptTokens: ids(3, 6), chosenTokens: ids(2, 7), rejectedTokens: ids(2, 7),
                          source: SourceLocation(file: "memory", line: i + 1))
        }
    }

    func config(task: TrainingTask, steps: Int, learningRate: Float, lora: Int = 0, dropout: Double = 0, every: Int = 0) -> RunConfig {
        var c = RunConfig()
        c.task = task
        c.outputDir = work.appendingPathComponent("run").path
        c.data.datasets = [DatasetSpec(schema: .tokens, paths: ["unused"])]
        c.optimizer.globalBatchSize = 8
        c.optimizer.microBatchSize = 4
        c.optimizer.maxSteps = steps
        c.optimizer.learningRate = learningRate
        c.optimizer.schedule = "constant"
        c.optimizer.maxGradNorm = 1e9
        c.checkpoint.every = every
        c.lora.rank = lora
        c.lora.alpha = Double(2 * max(lora, 1))
        c.lora.dropout = dropout
        return c
    }

    func trainer(_ c: RunConfig, data: [TokenizedPair], seed: UInt64 = 5) throws -> Trainer {
        let model = try Transformer(config: Self.modelConfig, trainable: true)
        model.initializeRandomly(seed: seed, std: 0.1)
        let loaded = LoadedModel(model: model, tokenizer: nil, gguf: nil, source: work)
        let td = TrainingData(train: data, eval: [], report: LoadReport())
        return try Trainer(config: c, communicator: LocalCommunicator.group(size: 1)[0], model: loaded,
                           objective: c.task.objective(config: c, data: td, padToken: 0))
    }

    func loggedMetrics() throws -> [[String: Double]] {
        let text = try String(contentsOf: work.appendingPathComponent("run/metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            .map { $0.compactMapValues { $0 as? Double } }.filter { $0["loss"] != nil }
    }

    func checkOverfits(lora: Int) throws {
        let batch = pairs(8, seed: 11)
        let steps = lora > 0 ? 80 : 40
        let summary = try trainer(config(task: .dpo, steps: steps, learningRate: lora > 0 ? 3e-2 : 1e-2, lora: lora), data: batch).run()
        let m = try loggedMetrics()
        XCTAssertEqual(m.count, steps)
        XCTAssertEqual(m[0]["loss"]!, log(2), accuracy: 1e-6, "the first step starts at the reference (h = 0)")
        XCTAssertLessThan(m.last!["loss"]!, 0.1, "one batch seen \(steps) times is fitted (DPO loss \(m.last!["loss"]!))")
        XCTAssertEqual(summary.finalMetrics["rewards/accuracies"], 1, "every pair ranked right after fitting")
        for (a, b) in zip(m, m.dropFirst(10)) where a["loss"]! > 0.2 {
            XCTAssertLessThan(b["loss"]!, a["loss"]!, "loss falls over ten steps until the batch is fitted")
        }
    }

    func testFullFineTuningOverfitsOneBatch() throws { try checkOverfits(lora: 0) }

    func testLoRAOverfitsOneBatch() throws { try checkOverfits(lora: 4) }

    /// With LoRA dropout, masks come from the step generator: a run stopped after step 2 and resumed must
    /// give the very losses of an uninterrupted run (it would not if the generator restarted or were unused).
    func testResumeRestoresTheStepGenerator() throws {
        let data = pairs(16, seed: 3)
        var c = config(task: .dpo, steps: 4, learningRate: 1e-2, lora: 4, dropout: 0.3, every: 2)
        _ = try trainer(c, data: data).run()
        let straight = try loggedMetrics().map { $0["loss"]! }
        try FileManager.default.removeItem(at: work.appendingPathComponent("run"))
        c.checkpoint.stopAfterStep = 2
        _ = try trainer(c, data: data).run()
        c.checkpoint.stopAfterStep = nil
        _ = try trainer(c, data: data).run()
        let resumed = try loggedMetrics().map { $0["loss"]! }
        XCTAssertEqual(resumed, straight, "resumed losses equal the uninterrupted run's bit for bit")
        // And the masks matter: without dropout the losses differ.
        try FileManager.default.removeItem(at: work.appendingPathComponent("run"))
        _ = try trainer(config(task: .dpo, steps: 4, learningRate: 1e-2, lora: 4, dropout: 0, every: 2), data: data).run()
        XCTAssertNotEqual(try loggedMetrics().map { $0["loss"]! }, straight, "dropout changes the run")
    }

    /// SFT's loss is the mean over all response tokens of the global batch: micro-batches of 4 and of 8 pairs
    /// give the same loss, and it equals Σ −log p / N computed by hand from the model.
    func testSFTAveragesOverTheGlobalTokenCount() throws {
        let data = pairs(8, seed: 9)
        var c = config(task: .sft, steps: 1, learningRate: 1e-9)
        let a = try trainer(c, data: data).run().finalMetrics["loss"]!
        try FileManager.default.removeItem(at: work.appendingPathComponent("run"))
        c.optimizer.microBatchSize = 8
        let b = try trainer(c, data: data).run().finalMetrics["loss"]!
        XCTAssertEqual(a, b, accuracy: 1e-6 * abs(a))
        let model = try Transformer(config: Self.modelConfig, trainable: false)
        model.initializeRandomly(seed: 5, std: 0.1)
        var total = 0.0, tokens = 0
        for p in data {
            let lp = model.sequenceLogProbs(TokenBatch(sequences: [p.chosenSequence.map(Int32.init)]), responseStarts: [p.responseStart])
            total -= lp[0]
            tokens += p.chosenTokens.count
        }
        XCTAssertEqual(a, total / Double(tokens), accuracy: 1e-5 * abs(a), "token-weighted mean, not a mean of micro-batch means")
    }
}

extension TrainerLoopTests {
    /// maxSteps 0 with epochs 0 evaluates the held-out pairs and trains nothing: the eval loss is the
    /// untouched model's DPO loss at the reference (log 2), no step is logged and no model is exported.
    /// Either alone (or a negative value) is refused by the config.
    func testEvaluationOnlyRun() throws {
        var c = config(task: .dpo, steps: 0, learningRate: 1e-2)
        c.optimizer.epochs = 0
        let model = try Transformer(config: Self.modelConfig, trainable: true)
        model.initializeRandomly(seed: 5, std: 0.1)
        let loaded = LoadedModel(model: model, tokenizer: nil, gguf: nil, source: work)
        let td = TrainingData(train: pairs(8, seed: 1), eval: pairs(6, seed: 2), report: LoadReport())
        let before = Array(UnsafeBufferPointer(start: model.parameters.pointer, count: model.layout.count))
        let summary = try Trainer(config: c, communicator: LocalCommunicator.group(size: 1)[0], model: loaded,
                                  objective: c.task.objective(config: c, data: td, padToken: 0)).run()
        XCTAssertEqual(summary.steps, 0)
        XCTAssertEqual(summary.evalMetrics["eval/loss"] ?? .nan, log(2), accuracy: 1e-6, "the reference's DPO loss")
        XCTAssertEqual(Array(UnsafeBufferPointer(start: model.parameters.pointer, count: model.layout.count)), before, "nothing trained")
        XCTAssertFalse(FileManager.default.fileExists(atPath: work.appendingPathComponent("run/final").path), "nothing exported")
        var d = RunConfig()
        d.outputDir = "x"
        d.data.datasets = [DatasetSpec(schema: .tokens, paths: ["unused"], evalFraction: 1)]
        d.optimizer.maxSteps = 0
        d.optimizer.epochs = 0
        XCTAssertNoThrow(try d.validate(), "evalFraction 1 and an evaluation-only run are accepted")
        d.data.datasets = [DatasetSpec(schema: .tokens, paths: ["unused"], evalFraction: 0)]
        XCTAssertThrowsError(try d.validate(), "evaluation only needs held-out pairs") { XCTAssertTrue("\($0)".contains("optimizer.maxSteps"), "\($0)") }
        d.optimizer.maxSteps = -1
        XCTAssertThrowsError(try d.validate()) { XCTAssertTrue("\($0)".contains("optimizer.maxSteps"), "\($0)") }
    }

    /// Held-out pairs from two sources give each source's metrics too (`eval/<source>/<key>`), equal to an
    /// evaluation of that source's pairs alone; the overall metrics stay the mean over every pair.
    func testHeldOutMetricsPerSource() throws {
        func evaluate(_ eval: [TokenizedPair], sources: [Int]) throws -> [String: Double] {
            try? FileManager.default.removeItem(at: work.appendingPathComponent("run"))
            var c = config(task: .dpo, steps: 0, learningRate: 1e-2)
            c.optimizer.epochs = 0
            c.optimizer.globalBatchSize = 6
            c.optimizer.microBatchSize = 3
            let model = try Transformer(config: Self.modelConfig, trainable: true)
            model.initializeRandomly(seed: 5, std: 0.1)
            // The policy differs from the reference, so the losses differ from pair to pair.
            let reference = try Transformer(config: Self.modelConfig, trainable: false)
            reference.initializeRandomly(seed: 6, std: 0.1)
            let td = TrainingData(train: pairs(6, seed: 1), eval: eval, report: LoadReport(),
                                  evalSources: sources, sourceNames: ["hh-rlhf", "xstest"])
            return try Trainer(config: c, communicator: LocalCommunicator.group(size: 1)[0],
                               model: LoadedModel(model: model, tokenizer: nil, gguf: nil, source: work),
                               objective: c.task.objective(config: c, data: td, padToken: 0), reference: reference).run().evalMetrics
        }
        let all = pairs(11, seed: 2)
        let sources = all.indices.map { $0 % 3 == 0 ? 1 : 0 }
        let mixed = try evaluate(all, sources: sources)
        var overall = 0.0
        for (s, name) in ["hh-rlhf", "xstest"].enumerated() {
            let own = all.indices.filter { sources[$0] == s }
            let alone = try evaluate(own.map { all[$0] }, sources: own.map { _ in s })
            XCTAssertNil(alone["eval/\(name)/loss"], "one source: no per-source keys")
            for key in ["loss", "rewards/accuracies", "rewards/margins"] {
                let a = try XCTUnwrap(alone["eval/" + key]), m = try XCTUnwrap(mixed["eval/\(name)/\(key)"], "eval/\(name)/\(key) in \(mixed.keys.sorted())")
                // 1e-6: the reference log-probs come from batches of other sizes in the two runs (fp32 matmuls).
                XCTAssertEqual(m, a, accuracy: 1e-6 * max(1, abs(a)), "\(name) \(key): mixed run's per-source value vs the source alone")
            }
            XCTAssertEqual(mixed["eval/\(name)/examples"], Double(own.count), "\(name)'s number of held-out pairs")
            overall += alone["eval/loss"]! * Double(own.count)
        }
        XCTAssertEqual(mixed["eval/loss"]!, overall / Double(all.count), accuracy: 1e-6, "the overall loss is the mean over every pair")
        XCTAssertNotEqual(mixed["eval/hh-rlhf/loss"]!, mixed["eval/xstest/loss"]!, "the two sources' losses differ")
    }

    /// Every pair task trains with LoRA: the loss falls, only the adapters (and the score head) change, and the
    /// score head of reward and cost models trains beside the adapters (PPO's LoRA runs: PipelinesTests).
    func testEveryTaskTrainsWithLoRA() throws {
        for task in TrainingTask.allCases where task != .ppo {
            try? FileManager.default.removeItem(at: work.appendingPathComponent("run"))
            var data = pairs(8, seed: 21)
            if task == .cost { for i in data.indices { data[i].chosenIsSafe = true; data[i].rejectedIsSafe = i % 2 == 0 } }
            let scored = task == .reward || task == .cost
            let model = try Transformer(config: ModelConfig(vocabSize: 96, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4,
                                                            numKVHeads: 2, maxPositions: 64, scoreHead: scored), trainable: true)
            model.initializeRandomly(seed: 5, std: 0.1)
            let before = model.parameters.array
            let c = config(task: task, steps: 30, learningRate: 2e-2, lora: 4)
            let trainer = try Trainer(config: c, communicator: LocalCommunicator.group(size: 1)[0],
                                      model: LoadedModel(model: model, tokenizer: nil, gguf: nil, source: work),
                                      objective: task.objective(config: c, data: TrainingData(train: data, eval: [], report: LoadReport()), padToken: 0))
            _ = try trainer.run()
            let m = try loggedMetrics()
            XCTAssertLessThan(m.last!["loss"]!, 0.7 * m.first!["loss"]!, "\(task): loss \(m.first!["loss"]!) → \(m.last!["loss"]!)")
            XCTAssertEqual(model.parameters.array, before, "\(task): the frozen base is unchanged")
            XCTAssertEqual(model.adapters!.scoreOffset != nil, scored, "\(task): the score head trains beside the adapters")
            let exported = try SafetensorsFile(contentsOf: work.appendingPathComponent("run/final-adapter/adapter_model.safetensors"))
            XCTAssertEqual(exported.entries["base_model.model.score.weight"] != nil, scored, "\(task): PEFT export holds the score head")
        }
    }
}
