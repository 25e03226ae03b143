// `dualign merge`: linear weight merge θ = Σ w_i θ_i of models of one architecture (P-SACPO).

import ArgumentParser
import Foundation
import Models
import Training

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge models linearly, θ = Σ w_i θ_i (P-SACPO: --weights 0.75 0.25); writes a GGUF file or a Hugging Face directory.")

    enum Precision: String, ExpressibleByArgument, CaseIterable { case f32, f16 }

    @Option(name: .customLong("models"), parsing: .upToNextOption, help: "Two or more models (GGUF files, Hugging Face directories or named models).")
    var models: [String] = []
    @Option(name: .customLong("weights"), parsing: .upToNextOption, help: "One weight per model, same order; must sum to 1 unless --allow-unnormalized.")
    var weights: [Float] = []
    @Option(help: "Output: FILE.gguf (with the first model's tokenizer) or a directory (Hugging Face safetensors).")
    var out: String
    @Option(help: "Tensor type of the output: f32 or f16.")
    var dtype: Precision = .f32
    @Flag(name: .customLong("allow-unnormalized"), help: "Accept weights that do not sum to 1.")
    var allowUnnormalized = false

    func validate() throws {
        if models.count < 2 { throw ValidationError("--models needs at least two models, got \(models.count)") }
        do { try WeightMerging.validate(weights: weights, count: models.count, allowUnnormalized: allowUnnormalized) } catch let e as WeightMergeError {
            throw ValidationError(e.message)
        }
    }

    func run() throws {
        // Score heads travel only when every model has one.
        var loaded: [LoadedModel] = []
        var heads: [Bool] = []
        for spec in models {
            let probe = try ModelSource.load(spec, trainable: false, scoreHead: false, loadWeights: false)
            heads.append(try probe.hasScoreHeadTensor())
        }
        if Set(heads).count > 1 {
            let with = zip(models, heads).filter { $0.1 }.map(\.0), without = zip(models, heads).filter { !$0.1 }.map(\.0)
            throw WeightMergeError(message: "tensor score.weight is in \(with) but not in \(without); merge score models with score models and policies with policies")
        }
        for spec in models { loaded.append(try ModelSource.load(spec, trainable: false, scoreHead: heads[0])) }
        let merged = try WeightMerging.merge(loaded.map(\.model), weights: weights, allowUnnormalized: allowUnnormalized, names: models)
        let url = URL(fileURLWithPath: out)
        let first = loaded[0]
        if out.lowercased().hasSuffix(".gguf") {
            try merged.saveGGUF(to: url, type: dtype == .f16 ? .f16 : .f32, metadataSource: first.gguf, name: "dualign merge")
        } else {
            try merged.saveHuggingFace(to: url, dtype: dtype == .f16 ? .f16 : .f32)
            let tokenizerURL = url.appendingPathComponent("tokenizer.json")
            if first.gguf == nil {
                let src = first.source.appendingPathComponent("tokenizer.json")
                if FileManager.default.fileExists(atPath: src.path) {
                    try? FileManager.default.removeItem(at: tokenizerURL)
                    try FileManager.default.copyItem(at: src, to: tokenizerURL)
                }
            } else if let json = first.gguf?.metadataString("tokenizer.huggingface.json") {
                try json.write(to: tokenizerURL, atomically: true, encoding: .utf8)
            }
        }
        let terms = zip(weights, models).map { "\($0.0)·\(URL(fileURLWithPath: $0.1).lastPathComponent)" }.joined(separator: " + ")
        Output.line("merged \(terms) into \(out) (\(dtype.rawValue)\(heads[0] ? ", with score head" : ""))")
    }
}
