// Every alignment pipeline with LoRA adapters instead of full fine-tuning (`lora.rank` in the run config):
// each DPO stage trains adapters on a frozen base, exports the merged model and a PEFT adapter directory,
// and the pipeline's models differ from the reference.

import Foundation
import XCTest

extension AlignRunTests {
    func testEveryPipelineRunsWithLoRA() throws {
        try prepareModels()
        let settings: [String: String] = [
            "mocan": "margin: 0.01",
            "pecan": "marginFraction: 0.3",
            "sacpo": "betaOverLambda: [0.05]\nmergeWeights: [0.5]",
            "primal-dual": "rounds: 2\npromptsPerRound: 3\ncostThreshold: 0",
        ]
        for method in settings.keys.sorted() {
            let (cfg, out) = try config("lora-\(method)", align: settings[method]!)
            let text = try String(contentsOf: cfg, encoding: .utf8) + "\nlora: {rank: 4, alpha: 8, targets: [q, v, down]}\n"
            try text.write(to: cfg, atomically: true, encoding: .utf8)
            let run = try align(method, np: nil, cfg)
            XCTAssertEqual(run.status, 0, "\(method)\n" + run.transcript)
            XCTAssertTrue(run.stderr.contains("LoRA r=4"), "\(method): DPO stages train adapters\n" + run.transcript)
            let stages = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("stages").path)
            let dpo = stages.filter { FileManager.default.fileExists(atPath: out.appendingPathComponent("stages/\($0)/final.gguf").path) }
            XCTAssertFalse(dpo.isEmpty, "\(method): at least one DPO stage")
            for stage in dpo {
                let adapter = out.appendingPathComponent("stages/\(stage)/final-adapter/adapter_model.safetensors")
                XCTAssertTrue(FileManager.default.fileExists(atPath: adapter.path), "\(method) \(stage): PEFT adapters exported")
            }
            if method == "primal-dual" {
                // Round 2 continues round 1's adapters against the base (the reference): its first step is not at h = 0.
                let first = try String(contentsOf: out.appendingPathComponent("stages/2.3-dpo/metrics.jsonl"), encoding: .utf8)
                    .split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                    .first { $0["loss"] != nil }
                XCTAssertNotEqual((first?["loss"] as? Double) ?? log(2), log(2), accuracy: 1e-9, "round 2 starts from round 1's adapters")
            }
            let summary = try json(out.appendingPathComponent("align.json"))
            XCTAssertFalse((summary["models"] as? [Any] ?? []).isEmpty, "\(method): align.json lists its models")
        }
    }
}
