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
            "pecan": "margin: 0.01",
            "sacpo": "betaOverLambda: [0.05]\n  mergeWeights: [0.5]",
            "primal-dual": "rounds: 2\n  promptsPerRound: 3\n  costThreshold: 0",
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
            let summary = try json(out.appendingPathComponent("align.json"))
            XCTAssertFalse((summary["models"] as? [Any] ?? []).isEmpty, "\(method): align.json lists its models")
        }
    }
}
