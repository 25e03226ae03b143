// `dualign export`: write a model as a Hugging Face directory (safetensors) or a GGUF file.

import ArgumentParser
import Foundation
import Models
import Training

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a model to safetensors (Hugging Face layout, loads in transformers) or GGUF (F32/F16, with the tokenizer).")

    enum Format: String, ExpressibleByArgument, CaseIterable { case safetensors, gguf }
    enum Precision: String, ExpressibleByArgument, CaseIterable { case f32, f16, bf16 }

    @Option(help: "A GGUF file, a Hugging Face directory, or a named model (smollm2-135m).")
    var model: String
    @Option(help: "Output directory (safetensors) or file (gguf).")
    var out: String
    @Option(help: "safetensors or gguf.")
    var format: Format = .safetensors
    @Option(help: "Tensor type: f32, f16 (both formats) or bf16 (safetensors only).")
    var dtype: Precision = .f32

    func validate() throws {
        if format == .gguf && dtype == .bf16 { throw ValidationError("GGUF export writes f32 or f16; choose --dtype f32 or f16") }
    }

    func run() throws {
        let loaded = try ModelSource.load(model)
        let url = URL(fileURLWithPath: out)
        switch format {
        case .safetensors:
            try loaded.model.saveHuggingFace(to: url, dtype: dtype == .f32 ? .f32 : (dtype == .f16 ? .f16 : .bf16))
            if let tokenizerJSON = loaded.source.hasDirectoryPath ? nil : loaded.gguf?.metadataString("tokenizer.huggingface.json") {
                try tokenizerJSON.write(to: url.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
            }
        case .gguf:
            try loaded.model.saveGGUF(to: url, type: dtype == .f16 ? .f16 : .f32, metadataSource: loaded.gguf)
        }
        Output.line("exported \(loaded.source.lastPathComponent) to \(out) (\(format.rawValue), \(dtype.rawValue))")
    }
}
