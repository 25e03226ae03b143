// `dualign align sail` as users run it: a tiny random policy with SmolLM2's tokenizer, a tiny cost model
// trained by `dualign train cost` as SAIL-PR's (reversed) labeller, the real XSTest pairs, every SAIL route on.
// Checks that 2 ranks under mpirun take the same steps and generate the same online pairs as 1 rank, that a
// run stopped after a checkpoint resumes bit-identically on the same world size, that a run whose rank is
// killed resumes to the uninterrupted numbers, that align.json lists the model for `dualign eval --run`, and
// that a resume with another SAIL coefficient is refused naming the key.

import Foundation
import XCTest

final class SAILRunTests: XCTestCase {
    static var workDirectory: URL = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-sail-tests-\(getpid())")
    static var policy: URL { workDirectory.appendingPathComponent("tiny.gguf") }
    static var costModel: URL { workDirectory.appendingPathComponent("cost/final.gguf") }
    /// Relative tolerance between runs that sum gradients in another order (1 vs 2 ranks).
    static let crossWorldTolerance = 1e-5
    /// Metrics that measure time, not training.
    static let timingKeys: Set<String> = ["tokens_per_s", "sail/generation/seconds", "sail/label/seconds"]
    static var baseline: [[String: Double]]?

    override class func tearDown() { try? FileManager.default.removeItem(at: workDirectory) }

    static var datasets: String { get throws {
        let x = try TestDataRoot.require("xstest")
        return """
            - schema: xstest
              paths: [\(x.appendingPathComponent("model_completions").path)]
              xstestPrompts: \(x.appendingPathComponent("xstest_prompts.csv").path)
              evalFraction: 0.1
        """
    } }

    func write(_ name: String, _ text: String) throws -> URL {
        let url = Self.workDirectory.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// The tiny policy and a cost model trained from it for a few steps (made once).
    func prepareModels() throws {
        try Jobs.requireSubcommand("align")
        if FileManager.default.fileExists(atPath: Self.costModel.path) { return }
        try FileManager.default.createDirectory(at: Self.workDirectory, withIntermediateDirectories: true)
        let made = try Jobs.run(np: nil, ["init-model", "--out", Self.policy.path, "--seed", "7"], timeout: 120)
        XCTAssertEqual(made.status, 0, made.transcript)
        let cfg = try write("cost.yaml", """
        model: \(Self.policy.path)
        outputDir: \(Self.workDirectory.appendingPathComponent("cost").path)
        data:
          template: chatml
          maxLength: 64
          maxPromptLength: 32
          datasets:
        \(try Self.datasets)
        optimizer: {globalBatchSize: 4, microBatchSize: 4, maxSteps: 3, learningRate: 1.0e-3}
        checkpoint: {every: 0}
        """)
        let run = try Jobs.run(np: nil, ["train", "cost", "--config", cfg.path], timeout: 240)
        XCTAssertEqual(run.status, 0, run.transcript)
    }

    /// A SAIL config with every route on (r = p = g = 0.25), writing to a fresh directory `name`.
    func config(_ name: String, steps: Int = 6) throws -> (config: URL, output: URL) {
        let out = Self.workDirectory.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: out)
        let cfg = try write("\(name).yaml", """
        model: \(Self.policy.path)
        outputDir: \(out.path)
        seed: 5
        data:
          template: chatml
          maxLength: 48
          maxPromptLength: 32
          maxPairs: 48
          datasets:
        \(try Self.datasets)
        optimizer: {globalBatchSize: 8, microBatchSize: 2, maxSteps: \(steps), learningRate: 1.0e-3}
        checkpoint: {every: 2, keepLast: 2}
        evaluation: {every: 3, maxPairs: 8}
        distributed: {threads: 1}   # one thread everywhere: 1 and 2 ranks then compute every batch alike
        align:
          costModel: \(Self.costModel.path)
        sail:
          routes: [dp, pp, pr]
          r: 0.25
          p: 0.25
          g: 0.25
          labeller: cost
          maxNewTokens: 6
          generationPrompts: 8
          generationBatchSize: 4
        """)
        return (cfg, out)
    }

    func align(np: Int?, _ cfg: URL, _ sets: [String] = [], whileRunning: ((Process) -> Bool)? = nil) throws -> JobRun {
        try Jobs.run(np: np, ["align", "sail", "--config", cfg.path] + sets.flatMap { ["--set", $0] }, timeout: 300, whileRunning: whileRunning)
    }

    static let stage = "stages/1-sail-dp+pp+pr"

    func metrics(_ out: URL) throws -> [[String: Double]] {
        let text = try String(contentsOf: out.appendingPathComponent("\(Self.stage)/metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            .map { $0.compactMapValues { ($0 as? NSNumber)?.doubleValue } }
    }

    func assertSameMetrics(_ a: [[String: Double]], _ b: [[String: Double]], tolerance: Double?, _ what: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(what): metric lines", file: file, line: line)
        for (x, y) in zip(a, b) {
            for k in Set(x.keys).union(y.keys).subtracting(Self.timingKeys).sorted() {
                guard let u = x[k], let v = y[k] else { XCTFail("\(what): step \(x["step"] ?? -1) lacks \(k)", file: file, line: line); continue }
                if let tolerance {
                    if k.contains("accuracies") { continue }
                    XCTAssertLessThanOrEqual(abs(u - v), tolerance * max(1, abs(v)), "\(what): step \(x["step"]!) \(k): \(u) vs \(v)", file: file, line: line)
                } else {
                    XCTAssertEqual(u.bitPattern, v.bitPattern, "\(what): step \(x["step"]!) \(k): \(u) vs \(v) (bit-identical expected)", file: file, line: line)
                }
            }
        }
    }

    /// The uninterrupted one-rank run the others are compared with.
    func uninterrupted() throws -> [[String: Double]] {
        if let b = Self.baseline { return b }
        try prepareModels()
        let (cfg, out) = try config("baseline")
        let run = try align(np: nil, cfg)
        XCTAssertEqual(run.status, 0, run.transcript)
        let m = try metrics(out)
        let steps = m.filter { $0["loss"] != nil }
        XCTAssertEqual(steps.count, 6)
        XCTAssertGreaterThanOrEqual(steps.last?["sail/generation/rounds"] ?? 0, 2, "generation rounds ran:\n\(run.stderr)")
        XCTAssertGreaterThan(steps.last?["sail/seen/online"] ?? 0, 0, "online pairs were trained on")
        XCTAssertTrue(steps.contains { $0["sail/dpr/chosen_score"] != nil }, "a round reports the cost labeller's scores")
        XCTAssertTrue(steps.contains { $0["sail/dpp/first_probability"] != nil }, "a round reports the PP label probabilities")
        // align.json lists the trained model for `dualign eval --run`, with the budget of the sampling.
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("align.json"))) as! [String: Any]
        XCTAssertEqual(summary["method"] as? String, "sail")
        let model = (summary["models"] as! [[String: Any]])[0]
        XCTAssertEqual(model["name"] as? String, "sail-dp+pp+pr")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(model["path"] as! String).path), "the model file exists")
        XCTAssertGreaterThan(((summary["budget"] as! [String: Any])["generatedTokens"] as! Double), 0, "the budget counts sampled tokens")
        Self.baseline = m
        return m
    }

    func testTwoRanksTakeTheSameStepsAndSamplesAsOne() throws {
        let base = try uninterrupted()
        let (cfg, out) = try config("two-ranks")
        let run = try align(np: 2, cfg)
        XCTAssertEqual(run.status, 0, run.transcript)
        assertSameMetrics(try metrics(out), base, tolerance: Self.crossWorldTolerance, "2 ranks vs 1")
        // The same online pairs in the buffers at the end (samples are keyed by their global index, not the rank).
        let one = try objectiveState(Self.workDirectory.appendingPathComponent("baseline")), two = try objectiveState(out)
        XCTAssertEqual(two["policyPolicy"].map(tokens), one["policyPolicy"].map(tokens), "SAIL-PP buffers")
        XCTAssertEqual(two["policyReward"].map(tokens), one["policyReward"].map(tokens), "SAIL-PR buffers")
    }

    /// The objective state of the newest checkpoint (the queue, buffers and cursors).
    func objectiveState(_ out: URL) throws -> [String: Any] {
        let stage = out.appendingPathComponent(Self.stage)
        let newest = try FileManager.default.contentsOfDirectory(atPath: stage.path).filter { $0.hasPrefix("step-") }.sorted().last!
        return try JSONSerialization.jsonObject(with: Data(contentsOf: stage.appendingPathComponent("\(newest)/objective.bin"))) as! [String: Any]
    }

    func tokens(_ value: Any) -> [[Int]] {
        (value as! [[String: Any]]).map { ($0["prompt"] as! [Int]) + [-1] + ($0["chosen"] as! [Int]) + [-1] + ($0["rejected"] as! [Int]) }
    }

    func testStoppedRunResumesBitIdenticallyAndRefusesAnotherCoefficient() throws {
        let base = try uninterrupted()
        let (cfg, out) = try config("resume")
        let first = try align(np: nil, cfg, ["checkpoint.stopAfterStep=2"])
        XCTAssertEqual(first.status, 0, first.transcript)
        XCTAssertEqual(try metrics(out).compactMap { $0["step"] }.max(), 2, "the first run stops after step 2")
        let refused = try align(np: nil, cfg, ["checkpoint.stopAfterStep=2", "sail.gamma=0.5"])
        XCTAssertNotEqual(refused.status, 0, "a resume with another γ must be refused\n" + refused.transcript)
        XCTAssertTrue((refused.stderr + refused.stdout).contains("sail.gamma"), "the refusal names the key\n" + refused.transcript)
        let second = try align(np: nil, cfg, ["checkpoint.stopAfterStep=2"])
        XCTAssertEqual(second.status, 0, second.transcript)
        XCTAssertTrue(second.stderr.contains("resuming from step-00000002"), second.transcript)
        assertSameMetrics(try metrics(out), base, tolerance: nil, "resumed vs uninterrupted")
    }

    func testKilledRankThenResume() throws {
        let base = try uninterrupted()
        let (cfg, out) = try config("kill-rank")
        let done = out.appendingPathComponent("\(Self.stage)/step-00000002/DONE")
        var killed = false
        let crashed = try align(np: 2, cfg, whileRunning: { mpirun in
            guard FileManager.default.fileExists(atPath: done.path) else { return true }
            if let rank = TrainingRunTests.children(of: mpirun.processIdentifier).last { kill(rank, SIGKILL); killed = true }
            return false
        })
        XCTAssertTrue(killed, "a rank was killed:\n\(crashed.transcript)")
        XCTAssertNotEqual(crashed.status, 0, crashed.transcript)
        let resumed = try align(np: 2, cfg)
        XCTAssertEqual(resumed.status, 0, resumed.transcript)
        XCTAssertTrue(resumed.stderr.contains("resuming from step-0000000"), resumed.transcript)
        assertSameMetrics(try metrics(out), base, tolerance: Self.crossWorldTolerance, "killed and resumed")
    }
}
