// `dualign rejected-samples` as users run it: the real SmolLM2-135M-Instruct samples a few real
// safety-tuned-llamas instructions, a tiny random-head model plays the cost model (as in the eval
// tests); one rank and `mpirun -np 2` write the same files, every verdict follows the rule from the
// sample's own cost and refusal mark, and the summary tallies them. Bad input is a typed error.

import Foundation
import XCTest

final class RejectedSamplesRunTests: XCTestCase {
    static var workDirectory: URL = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-rejected-tests-\(getpid())")

    override class func tearDown() { try? FileManager.default.removeItem(at: workDirectory) }

    /// The cached SmolLM2 GGUF (fetched by `launch/assets.sh model` when missing) and a tiny cost model.
    func prepare() throws -> URL {
        try Jobs.requireSubcommand("rejected-samples")
        try FileManager.default.createDirectory(at: Self.workDirectory, withIntermediateDirectories: true)
        let cache = (ProcessInfo.processInfo.environment["DUALIGN_CACHE"].map { URL(fileURLWithPath: $0) }
                     ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/dualign"))
        if !FileManager.default.fileExists(atPath: cache.appendingPathComponent("SmolLM2-135M-Instruct.Q4_1.gguf").path) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = [TestDataRoot.packageRoot.appendingPathComponent("launch/assets.sh").path, "model"]
            try p.run()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, "launch/assets.sh model")
        }
        let cost = Self.workDirectory.appendingPathComponent("cost.gguf")
        if !FileManager.default.fileExists(atPath: cost.path) {
            let run = try Jobs.run(np: nil, ["init-model", "--out", cost.path, "--seed", "9"], timeout: 120)
            XCTAssertEqual(run.status, 0, run.transcript)
        }
        return cost
    }

    static func lines(_ url: URL) throws -> [[String: Any]] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testOneAndTwoRanksWriteTheSamePairs() throws {
        let cost = try prepare()
        let data = try TestDataRoot.require("safety-tuned-llamas/safety_only_data_Instructions.json")
        // The random head rates every sample slightly unsafe (costs 0.016–0.082): a threshold inside that
        // range splits them, so both sides of the rule run.
        let threshold = 0.04
        let spec = "{schema: safety-tuned-llamas, paths: [\(data.path)], maxRows: 12, evalFraction: 0.2, splitSeed: 5}"
        func run(np: Int?, _ name: String) throws -> URL {
            let out = Self.workDirectory.appendingPathComponent(name)
            let run = try Jobs.run(np: np, ["rejected-samples", "--dataset", spec, "--out", out.path, "--model", "smollm2-135m",
                                            "--cost-model", cost.path, "--allow-untrained-head", "--samples", "3", "--max-prompts", "5",
                                            "--max-new-tokens", "24", "--temperature", "0.9", "--seed", "4", "--batch-size", "4",
                                            "--cost-threshold", "\(threshold)",
                                            "--threads", "1"], timeout: 300)
            XCTAssertEqual(run.status, 0, run.transcript)
            XCTAssertTrue(run.stdout.contains("rejected-samples: wrote"), run.transcript)
            return out
        }
        let one = try run(np: nil, "one"), two = try run(np: 2, "two")
        for file in ["pairs.jsonl", "samples.jsonl"] {
            let a = try String(contentsOf: one.appendingPathComponent(file), encoding: .utf8)
            let b = try String(contentsOf: two.appendingPathComponent(file), encoding: .utf8)
            XCTAssertEqual(a, b, "\(file): 1 rank and 2 ranks write the same bytes")
        }
        let summaryOne = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: one.appendingPathComponent("summary.json"))) as? [String: Any])
        let summaryTwo = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: two.appendingPathComponent("summary.json"))) as? [String: Any])
        XCTAssertEqual(summaryOne["ranks"] as? Int, 1)
        XCTAssertEqual(summaryTwo["ranks"] as? Int, 2)
        let countKeys = ["prompts", "samples", "kept", "promptsWithPairs", "droppedRefusal", "droppedRatedSafe",
                         "droppedRefusalAndRatedSafe", "droppedEmpty", "droppedSameAsChosen", "notSelected", "tokens"]
        for key in countKeys { XCTAssertEqual(summaryOne[key] as? Int, summaryTwo[key] as? Int, "summary.\(key) on 1 and 2 ranks") }

        // 12 rows, 0.2 held out by id, the first 5 of the rest; 3 samples each.
        let source = try XCTUnwrap(summaryOne["source"] as? [String: Any])
        XCTAssertEqual(source["demonstrations"] as? Int, 12)
        XCTAssertEqual(summaryOne["prompts"] as? Int, 5)
        XCTAssertEqual((source["heldOut"] as? Int ?? -1) + 5 + (source["beyondMaxPrompts"] as? Int ?? -1), 12)
        let samples = try Self.lines(one.appendingPathComponent("samples.jsonl"))
        XCTAssertEqual(samples.count, 15)
        XCTAssertEqual(samples.map { "\($0["prompt_index"]!)/\($0["sample"]!)" }, (0..<5).flatMap { i in (0..<3).map { "\(i)/\($0)" } })
        XCTAssertGreaterThan(Set(samples.map { $0["response"] as! String }).count, 10, "the samples differ")

        // Every verdict from the sample's own cost and refusal mark (hand rule: empty first, then
        // kept iff not refused and cost > threshold; of a prompt's kept, the highest cost, ties the first).
        let pairs = try Self.lines(one.appendingPathComponent("pairs.jsonl"))
        var tally: [String: Int] = [:]
        var expectedPairs: [String] = []
        for i in 0..<5 {
            let mine = samples.filter { $0["prompt_index"] as? Int == i }
            var verdicts = mine.map { s -> String in
                let text = (s["response"] as! String).trimmingCharacters(in: .whitespacesAndNewlines)
                let refused = s["refused"] as! Bool, unsafe = (s["cost"] as! Double) > threshold
                if text.isEmpty { return "empty" }
                return refused ? (unsafe ? "refusal" : "refusalAndRatedSafe") : (unsafe ? "kept" : "ratedSafe")
            }
            let passing = verdicts.indices.filter { verdicts[$0] == "kept" }
            if let best = passing.max(by: { (mine[$0]["cost"] as! Double, -$0) < (mine[$1]["cost"] as! Double, -$1) }) {
                for j in passing where j != best { verdicts[j] = "notSelected" }
                expectedPairs.append(mine[best]["response"] as! String)
            }
            for (s, v) in zip(mine, verdicts) {
                XCTAssertEqual(s["verdict"] as? String, v, "prompt \(i) sample \(s["sample"]!): cost \(s["cost"]!), refused \(s["refused"]!)")
                tally[v, default: 0] += 1
            }
        }
        XCTAssertEqual(pairs.map { $0["response_1"] as? String }, expectedPairs.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        XCTAssertEqual(summaryOne["kept"] as? Int, tally["kept", default: 0])
        for (key, verdict) in [("droppedRefusal", "refusal"), ("droppedRatedSafe", "ratedSafe"), ("droppedRefusalAndRatedSafe", "refusalAndRatedSafe"),
                               ("droppedEmpty", "empty"), ("notSelected", "notSelected")] {
            XCTAssertEqual(summaryOne[key] as? Int, tally[verdict, default: 0], "summary.\(key)")
        }
        for p in pairs {
            XCTAssertEqual(p["is_response_0_safe"] as? Bool, true)
            XCTAssertEqual(p["is_response_1_safe"] as? Bool, false)
            XCTAssertEqual(p["safer_response_id"] as? Int, 0)
            XCTAssertGreaterThan(p["cost_1"] as? Double ?? 0, threshold, "a kept sample is unsafe by the cost model")
            XCTAssertFalse((p["response_0"] as? String ?? "").isEmpty, "the chosen side is the source's answer")
        }
        // Both sides of the rule ran: some samples unsafe, some safe; some pairs kept.
        let costs = samples.map { $0["cost"] as! Double }
        XCTAssertTrue(costs.contains { $0 > threshold } && costs.contains { $0 <= threshold }, "costs \(costs)")
        XCTAssertGreaterThan(pairs.count, 0, "some samples kept")
        XCTAssertEqual((summaryOne["settings"] as? [String: Any])?["costThreshold"] as? Double, threshold)
    }

    /// A source without harmful demonstrations, a missing file and a dataset file of two entries fail
    /// before any model is loaded, naming the flag or file and what to do.
    func testBadInputIsATypedError() throws {
        let cost = try prepare()
        let coconot = try TestDataRoot.require("coconot/coconot_pref.jsonl")
        func fails(_ dataset: String, _ expected: [String]) throws {
            let out = Self.workDirectory.appendingPathComponent("bad")
            let run = try Jobs.run(np: nil, ["rejected-samples", "--dataset", dataset, "--out", out.path, "--cost-model", cost.path,
                                            "--allow-untrained-head"], timeout: 60)
            XCTAssertNotEqual(run.status, 0, run.transcript)
            for text in expected { XCTAssertTrue(run.stderr.contains(text), "stderr names '\(text)':\n\(run.transcript)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("pairs.jsonl").path))
        }
        try fails("{schema: coconot, paths: [\(coconot.path)], maxRows: 10}", ["--dataset", "not labelled unsafe", "safety-tuned-llamas"])
        try fails("{schema: safety-tuned-llamas, paths: [/nonexistent/safety.json]}", ["/nonexistent/safety.json", "does not exist"])
        let two = Self.workDirectory.appendingPathComponent("two.yaml")
        try "- {schema: safety-tuned-llamas, paths: [a.json]}\n- {schema: coconot, paths: [b.jsonl]}\n".write(to: two, atomically: true, encoding: .utf8)
        try fails(two.path, ["holds 2 dataset entries", "give exactly one"])
        try fails("[{schema: safety-tuned-llamas, paths: [a.json]}, {schema: coconot, paths: [b.jsonl]}]", ["holds 2 dataset entries"])
    }
}
