// DP-SGD as users run it: `dualign train dpo|sft` with a `dp:` section, on a tiny random model with SmolLM2's
// tokenizer and real HH-RLHF pairs, alone and under `mpirun -np 2`. Seeded noise: 2 ranks take the same
// steps as 1 (LoRA and full fine-tuning); a run killed while writing a checkpoint resumes to the very metrics,
// ε and adapters of an uninterrupted run; resumed on another world size it keeps the whole run's ε. Refusals
// name their key; a split file is written once and each private stage trains on its own rows.

import Foundation
import XCTest

final class PrivateTrainingRunTests: XCTestCase {
    static let crossWorldTolerance = 1e-5
    static let timingKeys: Set<String> = ["tokens_per_s"]
    static var workDirectory: URL = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-dp-run-tests-\(getpid())")
    static var model: URL { workDirectory.appendingPathComponent("tiny.gguf") }
    static var baselines: [String: [[String: Double]]] = [:]

    override class func tearDown() { try? FileManager.default.removeItem(at: workDirectory) }

    func prepareModel() throws {
        try Jobs.requireSubcommand("train")
        if FileManager.default.fileExists(atPath: Self.model.path) { return }
        try FileManager.default.createDirectory(at: Self.workDirectory, withIntermediateDirectories: true)
        let run = try Jobs.run(np: nil, ["init-model", "--out", Self.model.path, "--seed", "7"], timeout: 120)
        XCTAssertEqual(run.status, 0, run.transcript)
    }

    /// A private run's config: seeded noise, σ 1, expected batch 8 of the 48 pairs, physical batches of 3,
    /// LoRA r 4 unless `lora` is 0; `extra` YAML lines are appended.
    func config(_ name: String, steps: Int = 6, lora: Int = 4, extra: String = "") throws -> (config: URL, output: URL) {
        try prepareModel()
        let dir = Self.workDirectory.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let shared = try TestDataRoot.require("hh-rlhf/harmless-base-test.jsonl.gz")
        let yaml = """
        model: \(Self.model.path)
        outputDir: \(dir.appendingPathComponent("run").path)
        seed: 3
        data:
          template: hh-rlhf
          maxLength: 48
          maxPromptLength: 32
          maxPairs: 48
          datasets:
            - schema: hh-rlhf
              paths: [\(shared.path)]
              evalFraction: 0.1
        optimizer: {globalBatchSize: 8, microBatchSize: 2, maxSteps: \(steps), learningRate: 2.0e-3, warmupSteps: 1}
        checkpoint: {every: 2, keepLast: 2}
        evaluation: {every: 3, maxPairs: 8}
        lora: {rank: \(lora), alpha: 8}
        dp: {noiseMultiplier: 1.0, expectedBatchSize: 8, physicalBatchSize: 3, clip: 1.0, noise: seeded, accountant: rdp}
        \(extra)
        """
        let url = dir.appendingPathComponent("run.yaml")
        try yaml.write(to: url, atomically: true, encoding: .utf8)
        return (url, dir.appendingPathComponent("run"))
    }

    func train(np: Int?, _ config: URL, _ sets: [String] = [], task: String = "dpo", environment: [String: String] = [:]) throws -> JobRun {
        try Jobs.run(np: np, ["train", task, "--config", config.path] + sets.flatMap { ["--set", $0] }, timeout: 300, environment: environment)
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
                if k == "dp/epsilon" || k == "dp/batch_size" || tolerance == nil {
                    XCTAssertEqual(u.bitPattern, v.bitPattern, "\(what): step \(x["step"]!) \(k): \(u) vs \(v) (identical expected)", file: file, line: line)
                } else if !k.contains("accuracies") {
                    XCTAssertLessThanOrEqual(abs(u - v), tolerance! * max(1, abs(v)), "\(what): step \(x["step"]!) \(k): \(u) vs \(v)", file: file, line: line)
                }
            }
        }
    }

    /// The one-rank run of a named config, made once.
    func baseline(_ name: String, lora: Int = 4) throws -> [[String: Double]] {
        if let b = Self.baselines[name] { return b }
        let (cfg, out) = try config(name, lora: lora)
        let run = try train(np: nil, cfg)
        XCTAssertEqual(run.status, 0, run.transcript)
        XCTAssertTrue(run.stderr.contains("NOT differentially private"), "a seeded run says it is not private:\n\(run.transcript)")
        let m = try metrics(out)
        XCTAssertEqual(m.compactMap { $0["dp/epsilon"] }.count, 6, "six private steps log dp/epsilon")
        Self.baselines[name] = m
        return m
    }

    func testSeededTwoRanksTakeTheSameStepsAsOneWithLoRA() throws {
        let base = try baseline("lora-1")
        let (cfg, out) = try config("lora-2")
        let run = try train(np: 2, cfg)
        XCTAssertEqual(run.status, 0, run.transcript)
        assertSameMetrics(try metrics(out), base, tolerance: Self.crossWorldTolerance, "LoRA: 2 ranks vs 1")
    }

    func testSeededTwoRanksTakeTheSameStepsAsOneWithFullFineTuning() throws {
        let base = try baseline("full-1", lora: 0)
        let (cfg, out) = try config("full-2", lora: 0)
        let run = try train(np: 2, cfg)
        XCTAssertEqual(run.status, 0, run.transcript)
        assertSameMetrics(try metrics(out), base, tolerance: Self.crossWorldTolerance, "full fine-tuning: 2 ranks vs 1")
    }

    /// Rank 0 killed while writing checkpoint 4: the rerun resumes from step 2 and ends with the metrics, ε and
    /// adapters of the uninterrupted run, bit for bit.
    func testKilledRunResumesBitIdentically() throws {
        let base = try baseline("lora-1")
        let (cfg, out) = try config("killed")
        let crashed = try train(np: nil, cfg, environment: ["DUALIGN_FAULT": "checkpoint-write:4"])
        XCTAssertNotEqual(crashed.status, 0, crashed.transcript)
        let resumed = try train(np: nil, cfg)
        XCTAssertEqual(resumed.status, 0, resumed.transcript)
        XCTAssertTrue(resumed.stderr.contains("resuming from step-00000002"), resumed.transcript)
        XCTAssertTrue(resumed.stderr.contains("dp: restored the privacy history"), resumed.transcript)
        assertSameMetrics(try metrics(out), base, tolerance: nil, "killed and resumed")
        let adapters = "final-adapter/adapter_model.safetensors"
        let a = try Data(contentsOf: out.appendingPathComponent(adapters))
        let b = try Data(contentsOf: Self.workDirectory.appendingPathComponent("lora-1/run").appendingPathComponent(adapters))
        XCTAssertEqual(a, b, "the resumed run's adapters are bit-identical to the uninterrupted run's")
    }

    /// Stopped on 2 ranks and resumed on 1 (and the other way): ε is the whole run's, the rest within tolerance.
    func testResumeOnAnotherWorldSizeKeepsTheWholeRunsEpsilon() throws {
        let base = try baseline("lora-1")
        for (first, second) in [(2, 1), (1, 2)] {
            let (cfg, out) = try config("resume-\(first)-\(second)")
            let a = try train(np: first == 1 ? nil : first, cfg, ["checkpoint.stopAfterStep=2"])
            XCTAssertEqual(a.status, 0, a.transcript)
            let b = try train(np: second == 1 ? nil : second, cfg, ["checkpoint.stopAfterStep=2"])
            XCTAssertEqual(b.status, 0, b.transcript)
            XCTAssertTrue(b.stderr.contains("written by \(first) rank(s), now \(second)"), b.transcript)
            assertSameMetrics(try metrics(out), base, tolerance: Self.crossWorldTolerance, "\(first) → \(second) ranks")
        }
    }

    func testRefusalsNameTheirKey() throws {
        let cases: [(sets: [String], task: String, key: String)] = [
            (["dp.noiseMultiplier=0.3", "dp.epsilon=0.5"], "dpo", "dp.noiseMultiplier"),
            (["dp.epsilon=1.0e-9", "dp.delta=1.0e-5"], "dpo", "dp.epsilon"),
            ([], "sft", "sft.normalization"),
            (["dp.expectedBatchSize=1000"], "dpo", "dp.expectedBatchSize"),
            (["dp.noise=loud"], "dpo", "dp.noise"),
        ]
        for c in cases {
            var (cfg, _) = try config("refuse-\(c.key)")
            if c.sets.contains("dp.epsilon=1.0e-9") {
                // σ must be searched for: drop the given noise multiplier.
                let text = try String(contentsOf: cfg, encoding: .utf8).replacingOccurrences(of: "noiseMultiplier: 1.0, ", with: "")
                try text.write(to: cfg, atomically: true, encoding: .utf8)
                cfg = cfg.standardizedFileURL
            }
            let run = try train(np: nil, cfg, c.sets, task: c.task)
            XCTAssertNotEqual(run.status, 0, "\(c.key):\n\(run.transcript)")
            XCTAssertTrue((run.stderr + run.stdout).contains(c.key), "the refusal names \(c.key):\n\(run.transcript)")
        }
    }

    /// `dualign private-split` writes the split once; an SFT stage and a reward stage each train on their own
    /// rows (disjoint, together every keyed row); a file with a row in two stages is refused.
    func testSplitFileIsWrittenOnceAndCheckedByEachStage() throws {
        let (cfg, out) = try config("split", steps: 2, lora: 0, extra: "sft: {normalization: example}")
        let split = Self.workDirectory.appendingPathComponent("split/splits.json")
        let write = try Jobs.run(np: nil, ["private-split", "--config", cfg.path, "--stages", "sft=0.5,reward=0.5", "--out", split.path], timeout: 120)
        XCTAssertEqual(write.status, 0, write.transcript)
        let again = try Jobs.run(np: nil, ["private-split", "--config", cfg.path, "--stages", "sft=0.5,reward=0.5", "--out", split.path], timeout: 120)
        XCTAssertNotEqual(again.status, 0, "a split is written once:\n\(again.transcript)")
        var used: [String: Int] = [:]
        for stage in ["sft", "reward"] {
            let run = try train(np: 2, cfg, ["dp.split=\(split.path)", "dp.stage=\(stage)", "outputDir=\(out.path)-\(stage)"], task: "sft")
            XCTAssertEqual(run.status, 0, run.transcript)
            guard let line = run.stderr.split(separator: "\n").first(where: { $0.contains("dp.split: stage '\(stage)'") }) else {
                XCTFail("the run log states the stage's rows:\n\(run.transcript)"); continue
            }
            let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            used[stage] = numbers.first
            XCTAssertEqual(numbers.count, 4, "kept, total, elsewhere, nowhere: \(line)")
            if numbers.count == 4 { XCTAssertEqual(numbers[0] + numbers[2] + numbers[3], numbers[1], "every row accounted for: \(line)") }
        }
        XCTAssertGreaterThan(used["sft"] ?? 0, 0)
        XCTAssertGreaterThan(used["reward"] ?? 0, 0)
        // A row in two stages breaks parallel composition: refused, naming dp.split.
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: split)) as! [String: Any]
        var stages = object["stages"] as! [[String: Any]]
        var rows = stages[1]["rows"] as! [String]
        rows.append((stages[0]["rows"] as! [String])[0])
        stages[1]["rows"] = rows
        object["stages"] = stages
        let bad = Self.workDirectory.appendingPathComponent("split/overlap.json")
        try JSONSerialization.data(withJSONObject: object).write(to: bad)
        let refused = try train(np: nil, cfg, ["dp.split=\(bad.path)", "dp.stage=sft", "outputDir=\(out.path)-bad"], task: "sft")
        XCTAssertNotEqual(refused.status, 0, refused.transcript)
        XCTAssertTrue(refused.stderr.contains("dp.split") && refused.stderr.contains("not disjoint"), refused.transcript)
    }
}
