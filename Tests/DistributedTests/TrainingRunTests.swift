// The trainer as users run it: `dualign train dpo` on one rank and under `mpirun -np 2` with a tiny
// random model that uses SmolLM2's tokenizer and the real HH-RLHF pairs. Checks that 2 ranks take the
// same steps as 1, that resume is bit-identical on the same world size and within float tolerance
// across world sizes, that killed ranks, crashes during checkpoint writes and corrupt files recover,
// and that a malformed data row is reported with its line.

import Foundation
import XCTest

final class TrainingRunTests: XCTestCase {
    /// Relative tolerance between runs that sum gradients in a different order (1 vs 2 ranks).
    static let crossWorldTolerance = 1e-5
    /// Metrics that measure time, not training, and so differ between any two runs.
    static let timingKeys: Set<String> = ["tokens_per_s"]

    static var workDirectory: URL = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-train-tests-\(getpid())")
    static var model: URL { workDirectory.appendingPathComponent("tiny.gguf") }
    static var baseline: [[String: Double]]?

    override class func tearDown() { try? FileManager.default.removeItem(at: workDirectory) }

    /// The tiny model (2 blocks, width 64, SmolLM2 vocabulary), made once.
    func prepareModel() throws {
        try Jobs.requireSubcommand("train")
        if FileManager.default.fileExists(atPath: Self.model.path) { return }
        try FileManager.default.createDirectory(at: Self.workDirectory, withIntermediateDirectories: true)
        let cache = (ProcessInfo.processInfo.environment["DUALIGN_CACHE"].map { URL(fileURLWithPath: $0) }
                     ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/dualign"))
        if !FileManager.default.fileExists(atPath: cache.appendingPathComponent("SmolLM2-135M-Instruct.Q4_1.gguf").path) {
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("launch/assets.sh")
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = [script.path, "model"]
            try p.run()
            p.waitUntilExit()
        }
        let run = try Jobs.run(np: nil, ["init-model", "--out", Self.model.path, "--seed", "7"], timeout: 120)
        XCTAssertEqual(run.status, 0, run.transcript)
    }

    /// Writes a run config; `extra` lines are appended (YAML).
    func config(_ name: String, steps: Int = 6, data: String? = nil, extra: String = "") throws -> (config: URL, output: URL) {
        let dir = Self.workDirectory.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let shared = try TestDataRoot.require("hh-rlhf/harmless-base-test.jsonl.gz")
        let dataset = data ?? "    - schema: hh-rlhf\n      paths: [\(shared.path)]\n      evalFraction: 0.1\n"
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
        \(dataset)
        optimizer: {globalBatchSize: 8, microBatchSize: 2, maxSteps: \(steps), learningRate: 2.0e-3, warmupSteps: 1}
        checkpoint: {every: 2, keepLast: 2}
        evaluation: {every: 3, maxPairs: 8}
        \(extra)
        """
        let url = dir.appendingPathComponent("run.yaml")
        try yaml.write(to: url, atomically: true, encoding: .utf8)
        return (url, dir.appendingPathComponent("run"))
    }

    func train(np: Int?, _ config: URL, _ sets: [String] = [], task: String = "dpo", environment: [String: String] = [:],
               whileRunning: ((Process) -> Bool)? = nil) throws -> JobRun {
        try Jobs.run(np: np, ["train", task, "--config", config.path] + sets.flatMap { ["--set", $0] }, timeout: 240,
                     environment: environment, whileRunning: whileRunning)
    }

    func metrics(_ output: URL) throws -> [[String: Double]] {
        let text = try String(contentsOf: output.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return obj.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }

    /// The uninterrupted one-rank run everything is compared with.
    func uninterrupted() throws -> [[String: Double]] {
        if let b = Self.baseline { return b }
        try prepareModel()
        let (cfg, out) = try config("baseline")
        let run = try train(np: nil, cfg)
        XCTAssertEqual(run.status, 0, run.transcript)
        let m = try metrics(out)
        XCTAssertEqual(m.compactMap { $0["step"] }.max(), 6, "the baseline runs 6 steps")
        Self.baseline = m
        return m
    }

    func assertSameMetrics(_ a: [[String: Double]], _ b: [[String: Double]], tolerance: Double?, _ what: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(what): metric lines", file: file, line: line)
        for (x, y) in zip(a, b) {
            let keys = Set(x.keys).union(y.keys).subtracting(Self.timingKeys)
            for k in keys.sorted() {
                guard let u = x[k], let v = y[k] else { XCTFail("\(what): step \(x["step"] ?? -1) lacks \(k)", file: file, line: line); continue }
                if let tol = tolerance {
                    // Accuracies are counts of sign tests; near-zero margins (step 1) may flip between sum orders.
                    if k.contains("accuracies") { continue }
                    XCTAssertLessThanOrEqual(abs(u - v), tol * max(1, abs(v)), "\(what): step \(x["step"]!) \(k): \(u) vs \(v)", file: file, line: line)
                } else {
                    XCTAssertEqual(u.bitPattern, v.bitPattern, "\(what): step \(x["step"]!) \(k): \(u) vs \(v) (bit-identical expected)", file: file, line: line)
                }
            }
        }
    }

    func testTwoRanksTakeTheSameStepsAsOne() throws {
        let base = try uninterrupted()
        let (cfg, out) = try config("two-ranks")
        let run = try train(np: 2, cfg)
        XCTAssertEqual(run.status, 0, run.transcript)
        assertSameMetrics(try metrics(out), base, tolerance: Self.crossWorldTolerance, "2 ranks vs 1")
    }

    func testResumeOnTheSameWorldSizeIsBitIdentical() throws {
        let base = try uninterrupted()
        let (cfg, out) = try config("resume")
        let first = try train(np: nil, cfg, ["checkpoint.stopAfterStep=2"])
        XCTAssertEqual(first.status, 0, first.transcript)
        XCTAssertEqual(try metrics(out).compactMap { $0["step"] }.max(), 2, "the first run stops after step 2")
        // The same command again (stopAfterStep already passed) resumes from step 2 and finishes.
        let second = try train(np: nil, cfg, ["checkpoint.stopAfterStep=2"])
        XCTAssertEqual(second.status, 0, second.transcript)
        XCTAssertTrue(second.stderr.contains("resuming from step-00000002"), second.transcript)
        XCTAssertTrue(second.stderr.contains("reference log-probs: reused"), "the reference cache is reused:\n\(second.transcript)")
        assertSameMetrics(try metrics(out), base, tolerance: nil, "resumed vs uninterrupted")
    }

    func testResumeAcrossWorldSizes() throws {
        let base = try uninterrupted()
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

    func testKilledRankThenResume() throws {
        let base = try uninterrupted()
        let (cfg, out) = try config("kill-rank")
        let done = out.appendingPathComponent("step-00000002/DONE")
        var killed = false
        let crashed = try train(np: 2, cfg, whileRunning: { mpirun in
            guard FileManager.default.fileExists(atPath: done.path) else { return true }
            // kill -9 one rank (a child of mpirun) once the first checkpoint is complete.
            if let rank = Self.children(of: mpirun.processIdentifier).last { kill(rank, SIGKILL); killed = true }
            return false
        })
        XCTAssertTrue(killed, "a rank was killed:\n\(crashed.transcript)")
        XCTAssertNotEqual(crashed.status, 0, crashed.transcript)
        XCTAssertLessThan(crashed.seconds, 120, crashed.transcript)
        let resumed = try train(np: 2, cfg)
        XCTAssertEqual(resumed.status, 0, resumed.transcript)
        XCTAssertTrue(resumed.stderr.contains("resuming from step-0000000"), resumed.transcript)
        assertSameMetrics(try metrics(out), base, tolerance: Self.crossWorldTolerance, "killed and resumed")
    }

    func testCrashDuringCheckpointWriteFallsBack() throws {
        let base = try uninterrupted()
        let (cfg, out) = try config("crash-write")
        let crashed = try train(np: 2, cfg, environment: ["DUALIGN_FAULT": "checkpoint-write:4"])
        XCTAssertNotEqual(crashed.status, 0, crashed.transcript)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("step-00000004/DONE").path))
        let resumed = try train(np: 2, cfg)
        XCTAssertEqual(resumed.status, 0, resumed.transcript)
        XCTAssertTrue(resumed.stderr.contains("resuming from step-00000002"), resumed.transcript)
        assertSameMetrics(try metrics(out), base, tolerance: Self.crossWorldTolerance, "crash during checkpoint 4, resumed")
    }

    func testCorruptCheckpointFallsBackToThePreviousOne() throws {
        let base = try uninterrupted()
        let (cfg, out) = try config("corrupt")
        let first = try train(np: nil, cfg, ["checkpoint.stopAfterStep=4"])
        XCTAssertEqual(first.status, 0, first.transcript)
        let file = out.appendingPathComponent("step-00000004/model.safetensors.zst")
        var bytes = try Data(contentsOf: file)
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: file)
        let second = try train(np: nil, cfg)
        XCTAssertEqual(second.status, 0, second.transcript)
        XCTAssertTrue(second.stderr.contains("model.safetensors.zst"), "the corrupt file is named:\n\(second.transcript)")
        XCTAssertTrue(second.stderr.contains("resuming from step-00000002"), second.transcript)
        assertSameMetrics(try metrics(out), base, tolerance: nil, "after falling back past a corrupt checkpoint")
    }

    /// SFT, a Bradley–Terry reward model (HH-RLHF) and a Safe-RLHF cost model with safety labels (XSTest)
    /// train on 2 ranks and log their metrics.
    func testSFTRewardAndCostModelsTrain() throws {
        try prepareModel()
        let xstest = try TestDataRoot.require("xstest")
        let cases: [(task: String, data: String?, expect: [String])] = [
            ("sft", nil, ["loss", "grad_norm"]),
            ("reward", nil, ["loss", "accuracy", "rewards/chosen", "eval/accuracy"]),
            ("cost", "    - schema: xstest\n      paths: [\(xstest.path)/xstest_prompts.csv, \(xstest.path)/model_completions]\n      evalFraction: 0.1\n",
             ["loss", "accuracy", "safety_accuracy", "eval/safety_accuracy"]),
        ]
        for c in cases {
            let (cfg, out) = try config("task-\(c.task)", steps: 3, data: c.data)
            let run = try train(np: 2, cfg, task: c.task)
            XCTAssertEqual(run.status, 0, "\(c.task):\n\(run.transcript)")
            let m = try metrics(out)
            let keys = m.reduce(into: Set<String>()) { $0.formUnion($1.keys) }
            for k in c.expect { XCTAssertTrue(keys.contains(k), "\(c.task) logs \(k): \(keys.sorted())") }
            XCTAssertTrue(m.allSatisfy { $0["loss"].map(\.isFinite) ?? true }, "\(c.task) losses are finite")
        }
    }

    /// A learning rate that blows the weights up stops the run at the first non-finite loss, naming the step,
    /// with the checkpoint before it complete.
    func testNonFiniteLossStopsTheRun() throws {
        try prepareModel()
        let (cfg, out) = try config("non-finite")
        let run = try train(np: nil, cfg, ["optimizer.learningRate=1.0e+30", "optimizer.maxGradNorm=1.0e+30", "optimizer.warmupSteps=0",
                                           "checkpoint.every=1"])
        XCTAssertNotEqual(run.status, 0, run.transcript)
        XCTAssertTrue(run.stderr.contains("non-finite"), run.transcript)
        XCTAssertTrue(run.stderr.contains("stopping at step 2"), run.transcript)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("step-00000001/DONE").path),
                      "the last complete checkpoint stays intact:\n\(run.transcript)")
    }

    func testMalformedRowIsReportedWithItsLine() throws {
        try prepareModel()
        let bad = Self.workDirectory.appendingPathComponent("bad.jsonl")
        try FileManager.default.createDirectory(at: Self.workDirectory, withIntermediateDirectories: true)
        let good = #"{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}"#
        try [good, good, #"{"prompt": "Hi", "chosen": 3"#, good].joined(separator: "\n").write(to: bad, atomically: true, encoding: .utf8)
        let (cfg, _) = try config("malformed", data: "    - schema: trl\n      paths: [\(bad.path)]\n")
        let run = try train(np: 2, cfg)
        XCTAssertNotEqual(run.status, 0, run.transcript)
        XCTAssertTrue((run.stderr + run.stdout).contains("bad.jsonl:3"), "the error names file and line:\n\(run.transcript)")
        XCTAssertLessThan(run.seconds, 60, run.transcript)
    }

    /// `dualign generate --prompts` sharded over 2 ranks writes the same samples as 1 rank (one file, rank 0).
    func testShardedGenerationMatchesOneRank() throws {
        try prepareModel()
        let dir = Self.workDirectory.appendingPathComponent("generate")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let prompts = dir.appendingPathComponent("prompts.jsonl")
        try ["Hello there", "How do I bake bread?", "Tell me a joke", "What is 2+2?", "Name a color"]
            .map { #"{"prompt": "\#($0)"}"# }.joined(separator: "\n").write(to: prompts, atomically: true, encoding: .utf8)
        func generate(np: Int?, _ out: String) throws -> [[String: Any]] {
            let url = dir.appendingPathComponent(out)
            let run = try Jobs.run(np: np, ["generate", "--model", Self.model.path, "--prompts", prompts.path, "--out", url.path,
                                            "--samples", "3", "--max-new-tokens", "8", "--temperature", "0.9", "--top-k", "40",
                                            "--seed", "5", "--chat"], timeout: 120)
            XCTAssertEqual(run.status, 0, run.transcript)
            return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            }
        }
        let one = try generate(np: nil, "one.jsonl"), two = try generate(np: 2, "two.jsonl")
        XCTAssertEqual(one.count, 15, "5 prompts × 3 samples")
        XCTAssertEqual(two.count, 15)
        for (a, b) in zip(one, two) {
            XCTAssertEqual(a["prompt_index"] as? Int, b["prompt_index"] as? Int)
            XCTAssertEqual(a["sample"] as? Int, b["sample"] as? Int)
            XCTAssertEqual(a["tokens"] as? [Int], b["tokens"] as? [Int], "same sample whichever rank drew it")
            XCTAssertEqual(a["logprob"] as! Double, b["logprob"] as! Double, accuracy: 1e-4)
        }
        XCTAssertGreaterThan(Set(one.compactMap { $0["tokens"] as? [Int] }).count, 5, "samples differ across prompts and draws")
    }

    static func children(of pid: Int32) -> [Int32] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/pgrep")
        p.arguments = ["-P", String(pid)]
        let pipe = Pipe()
        p.standardOutput = pipe
        try? p.run()
        p.waitUntilExit()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").compactMap { Int32($0) }
    }
}
