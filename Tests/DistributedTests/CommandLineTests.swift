// The command line as users type it: numeric options take negative values written after a space, the
// same as attached with '='.

import Foundation
import XCTest

final class CommandLineTests: XCTestCase {
    /// `dualign dual --threshold -1.0` solves the same dual as `--threshold=-1.0`; several thresholds and
    /// a negative margin work too.
    func testNegativeNumbersAsWritten() throws {
        try Jobs.requireSubcommand("dual")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Oracle C of algorithms.md §1.7 (two prompts, four samples each).
        let scores = dir.appendingPathComponent("scores.jsonl")
        try """
        {"rewards": [1, 0, 2, -1], "utilities": [[0, 1, -2, 1.5]]}
        {"rewards": [0.5, 1.5, -0.5, 0], "utilities": [[1, -1, 2, 0.5]]}

        """.write(to: scores, atomically: true, encoding: .utf8)
        func dual(_ args: [String]) throws -> String {
            let run = try Jobs.run(np: nil, ["dual", "--scores", scores.path, "--beta", "0.1"] + args, timeout: 60)
            XCTAssertEqual(run.status, 0, run.transcript)
            return run.stdout
        }
        let spaced = try dual(["--threshold", "-0.5"])
        XCTAssertEqual(spaced, try dual(["--threshold=-0.5"]), "a space or '=' before a negative value gives the same answer")
        XCTAssertTrue(spaced.contains("\"lambda\""), spaced)
        // A negative margin: the policy may lose up to 1 in utility; the solved λ* meets it exactly.
        let loose = try dual(["--margin", "-1.0"])
        XCTAssertEqual(loose, try dual(["--margin=-1.0"]))
        let object = try JSONSerialization.jsonObject(with: Data(loose.utf8)) as! [String: Any]
        XCTAssertEqual((object["improvement"] as? [Double])?.first ?? .nan, -1, accuracy: 1e-9, loose)
        // And Oracle C itself (margin 0.5 ⇒ λ* = 0.948537).
        let oracle = try JSONSerialization.jsonObject(with: Data(try dual(["--margin", "0.5"]).utf8)) as! [String: Any]
        XCTAssertEqual((oracle["lambda"] as? [Double])?.first ?? .nan, 0.948537, accuracy: 1e-6)
    }

    /// `generate` and `rejected-samples` share their sampling flags and check them alike, before loading any
    /// model: each bad value is refused by both, naming the flag; `generate --greedy` needs no temperature.
    func testSamplingFlagsAreCheckedAlikeByGenerateAndRejectedSamples() throws {
        try Jobs.requireSubcommand("rejected-samples")
        let commands: [(name: String, arguments: [String])] = [
            ("generate", ["generate", "--prompt", "Hi", "--model", "/nonexistent/model.gguf"]),
            ("rejected-samples", ["rejected-samples", "--dataset", "{schema: safety-tuned-llamas, paths: [/nonexistent/s.json]}",
                                  "--out", "/nonexistent/out", "--cost-model", "/nonexistent/cost.gguf"]),
        ]
        let cases: [(flags: [String], message: String)] = [
            (["--top-k", "-1"], "--top-k must be 0 (all tokens) or more, got -1"),
            (["--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
            (["--temperature", "0"], "--temperature must be above 0, got 0.0"),
            (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1, got 0"),
            (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
            (["--template", "jinja"], "unknown --template jinja; choose one of"),
        ]
        for command in commands {
            for c in cases {
                let run = try Jobs.run(np: nil, command.arguments + c.flags, timeout: 60)
                XCTAssertNotEqual(run.status, 0, "\(command.name) \(c.flags) must be refused:\n\(run.transcript)")
                XCTAssertTrue(run.stderr.contains(c.message), "\(command.name) \(c.flags): stderr names '\(c.message)':\n\(run.transcript)")
            }
        }
        // Greedy decoding ignores the temperature: validation passes and the command fails later, on the model file.
        let greedy = try Jobs.run(np: nil, commands[0].arguments + ["--greedy", "--temperature", "0"], timeout: 60)
        XCTAssertNotEqual(greedy.status, 0, greedy.transcript)
        XCTAssertFalse(greedy.stderr.contains("--temperature"), "generate --greedy accepts --temperature 0:\n\(greedy.transcript)")
        XCTAssertTrue(greedy.stderr.contains("/nonexistent/model.gguf"), "then the missing model is named:\n\(greedy.transcript)")
    }

    /// `bench --kind dpo --lora R` trains only the adapters: the report counts r·(in + out) per projection
    /// (tiny: C 256, F 688, 4 heads of 64, 2 KV heads, 4 blocks → 18,496 per block at r = 4), names the rank,
    /// and the full fine-tuning run counts every weight.
    func testBenchDPOWithLoRATrainsTheAdaptersOnly() throws {
        func bench(_ extra: [String]) throws -> [String: Any] {
            let run = try Jobs.run(np: nil, ["bench", "--config", "tiny", "--seq", "32", "--steps", "1", "--warmup", "0", "--json", "--threads", "1"] + extra,
                                   timeout: 300)
            XCTAssertEqual(run.status, 0, run.transcript)
            let line = run.stdout.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
            return try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
        }
        let lora = try bench(["--lora", "4"])
        let perBlock = 4 * ((256 + 256) + (256 + 128) + (256 + 128) + (256 + 256) + 3 * (256 + 688))
        XCTAssertEqual(lora["parameters"] as? Int, 4 * perBlock, "adapters on q, k, v, o, gate, up, down of 4 blocks")
        XCTAssertEqual(lora["loraRank"] as? Int, 4)
        XCTAssertGreaterThan(lora["tokensPerSecond"] as? Double ?? 0, 0)
        let full = try bench([])
        XCTAssertEqual(full["loraRank"] as? Int, 0)
        XCTAssertGreaterThan(full["parameters"] as? Int ?? 0, 4_900_000, "full fine-tuning trains all 5.0M weights")
        // Under mpirun the adapters' slab is what is all-reduced (and timed alone).
        let run = try Jobs.run(np: 2, ["bench", "--config", "tiny", "--seq", "32", "--steps", "1", "--warmup", "0", "--json", "--threads", "1",
                                       "--lora", "4"], timeout: 300)
        XCTAssertEqual(run.status, 0, run.transcript)
        let line = run.stdout.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        let ranks = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
        XCTAssertEqual(ranks["ranks"] as? Int, 2, run.transcript)
        XCTAssertEqual(ranks["parameters"] as? Int, 4 * perBlock)
        XCTAssertNotNil(ranks["allReduceSeconds"], run.transcript)
    }
}
