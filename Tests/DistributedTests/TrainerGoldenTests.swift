// The trainer against a PyTorch twin: whole `dualign train dpo` steps on a tiny Llama and pre-tokenized
// pairs, compared with the same steps in PyTorch (Tests/fixtures/generate_trainer_fixtures.py): the DPO
// loss, the pre-clip gradient norm and every updated parameter, for full fine-tuning on 1 and 2 ranks and
// for LoRA adapters (PEFT). The second step is taken by resuming the first run with a larger maxSteps,
// which must continue the run; a changed learning rate must be refused, naming the key.

import Foundation
import XCTest
import Formats

final class TrainerGoldenTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/trainer-golden")
    /// Relative tolerance of losses and norms (float32 sums in another order than PyTorch's).
    static let metricTolerance = 2e-5
    /// Absolute tolerance of parameters after AdamW steps of 1e-3 (values of order 0.2).
    static let parameterTolerance: Float = 2e-5

    var work: URL!

    override func setUpWithError() throws {
        try Jobs.requireSubcommand("train")
        work = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-golden-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: work) }

    /// The run config of the fixture (what the generator's PyTorch run does).
    func writeConfig(lora: Bool) throws -> (URL, URL) {
        let output = work.appendingPathComponent("run")
        let yaml = """
        model: \(Self.fixtures.appendingPathComponent("model").path)
        outputDir: \(output.path)
        seed: 0
        data:
          maxLength: 64
          maxPromptLength: 32
          datasets:
            - schema: tokens
              paths: [\(Self.fixtures.appendingPathComponent("pairs.jsonl").path)]
        optimizer: {globalBatchSize: 8, microBatchSize: 4, maxSteps: 1, learningRate: 1.0e-3, schedule: constant,
                    weightDecay: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1.0e-8, maxGradNorm: 1.0}
        dpo: {beta: 0.1}
        checkpoint: {every: 1, keepLast: 2}
        \(lora ? "lora: {rank: 4, alpha: 8, dropout: 0}" : "")
        """
        let url = work.appendingPathComponent("run.yaml")
        try yaml.write(to: url, atomically: true, encoding: .utf8)
        return (url, output)
    }

    func expected() throws -> (json: [String: [[String: Double]]], tensors: SafetensorsFile) {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("expected.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: [[String: Double]]]
        return (json, try SafetensorsFile(contentsOf: Self.fixtures.appendingPathComponent("expected.safetensors")))
    }

    func metrics(_ output: URL) throws -> [[String: Double]] {
        let text = try String(contentsOf: output.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            .map { $0.compactMapValues { $0 as? Double } }
    }

    func assertMetrics(_ got: [String: Double], _ want: [String: Double], step: Int, file: StaticString = #filePath, line: UInt = #line) {
        for key in ["loss", "grad_norm"] {
            let g = got[key] ?? .nan, w = want[key]!
            XCTAssertLessThanOrEqual(abs(g - w), Self.metricTolerance * abs(w),
                                     "step \(step) \(key): dualign \(g), PyTorch \(w) (relative tolerance \(Self.metricTolerance))", file: file, line: line)
        }
    }

    /// Compares every tensor of `got` (a safetensors file) with `prefix + name` in the fixture.
    func assertTensors(_ got: SafetensorsFile, _ want: SafetensorsFile, prefix: String, rename: (String) -> String = { $0 },
                       file: StaticString = #filePath, line: UInt = #line) throws {
        var compared = 0
        for name in got.entries.keys.sorted() {
            let key = prefix + rename(name)
            guard want.entries[key] != nil else { continue }
            let a = try got.floats(name), b = try want.floats(key)
            XCTAssertEqual(a.count, b.count, "\(name): \(a.count) values, PyTorch \(b.count)", file: file, line: line)
            let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, Self.parameterTolerance, "\(name): max |dualign − PyTorch| = \(worst) (tolerance \(Self.parameterTolerance))",
                                     file: file, line: line)
            compared += 1
        }
        XCTAssertGreaterThan(compared, 10, "compared only \(compared) tensors with \(prefix)*", file: file, line: line)
    }

    func train(np: Int?, _ config: URL, _ sets: [String] = []) throws -> JobRun {
        try Jobs.run(np: np, ["train", "dpo", "--config", config.path] + sets.flatMap { ["--set", $0] }, timeout: 180)
    }

    /// Full fine-tuning: step 1, then the run extended to step 2 (resume), each equal to PyTorch.
    func checkFullFineTuning(np: Int?) throws {
        let (config, output) = try writeConfig(lora: false)
        let (want, tensors) = try expected()
        var run = try train(np: np, config)
        XCTAssertEqual(run.status, 0, run.transcript)
        try assertTensors(SafetensorsFile(contentsOf: output.appendingPathComponent("final/model.safetensors")), tensors, prefix: "step1.")
        // A changed learning rate changes the step already taken: refused, naming the key.
        run = try train(np: np, config, ["optimizer.maxSteps=2", "optimizer.learningRate=2e-3"])
        XCTAssertNotEqual(run.status, 0, "a resume with another learning rate must be refused\n" + run.transcript)
        XCTAssertTrue((run.stderr + run.stdout).contains("optimizer.learningRate"), "the refusal names the key\n" + run.transcript)
        // A larger maxSteps is a budget: the run continues from its checkpoint.
        run = try train(np: np, config, ["optimizer.maxSteps=2"])
        XCTAssertEqual(run.status, 0, run.transcript)
        XCTAssertTrue(run.stderr.contains("resuming from step-00000001"), "the extended run resumes\n" + run.transcript)
        let m = try metrics(output).filter { $0["loss"] != nil }
        XCTAssertEqual(m.count, 2, "two steps logged")
        for (i, step) in m.prefix(2).enumerated() { assertMetrics(step, want["full"]![i], step: i + 1) }
        try assertTensors(SafetensorsFile(contentsOf: output.appendingPathComponent("final/model.safetensors")), tensors, prefix: "step2.")
    }

    func testDPOStepsMatchPyTorchOnOneRank() throws { try checkFullFineTuning(np: nil) }

    func testDPOStepsMatchPyTorchOnTwoRanks() throws { try checkFullFineTuning(np: 2) }

    /// LoRA (r 4, alpha 8, every projection; A from Dualign's seeded initialisation, B zero) against PEFT:
    /// losses, norms and the adapters after two steps, read from the exported PEFT adapter file.
    func testLoRADPOStepsMatchPEFT() throws {
        let (config, output) = try writeConfig(lora: true)
        let (want, tensors) = try expected()
        let run = try train(np: nil, config, ["optimizer.maxSteps=2"])
        XCTAssertEqual(run.status, 0, run.transcript)
        let m = try metrics(output).filter { $0["loss"] != nil }
        XCTAssertEqual(m.count, 2)
        for (i, step) in m.prefix(2).enumerated() { assertMetrics(step, want["lora"]![i], step: i + 1) }
        let adapters = try SafetensorsFile(contentsOf: output.appendingPathComponent("final-adapter/adapter_model.safetensors"))
        try assertTensors(adapters, tensors, prefix: "lora.step2.", rename: { String($0.dropFirst("base_model.model.".count)) })
        XCTAssertTrue(run.stderr.contains("LoRA r=4"), "the log says what is trained\n" + run.transcript)
    }
}
