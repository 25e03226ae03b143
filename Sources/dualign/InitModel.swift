// `dualign init-model`: a randomly initialised model of a chosen shape, saved as GGUF with another
// model's tokenizer — for experiments from scratch, tests and benchmarks.

import ArgumentParser
import Foundation
import Models
import Training
import Formats

struct InitModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init-model",
        abstract: "Write a randomly initialised Llama model (GGUF, F32) that uses another model's tokenizer.")

    @Option(help: "Tokenizer source: a GGUF file or a named model (smollm2-135m); its vocabulary size is used.")
    var tokenizerFrom = "smollm2-135m"
    @Option(help: "Output GGUF file.")
    var out: String
    @Option(help: "Width (C).") var hiddenSize = 64
    @Option(help: "MLP features (F).") var intermediateSize = 128
    @Option(help: "Blocks (L).") var layers = 2
    @Option(help: "Query heads.") var heads = 4
    @Option(help: "Key/value heads.") var kvHeads = 2
    @Option(help: "Longest sequence.") var maxPositions = 1024
    @Option(help: "Initialisation seed.") var seed: UInt64 = 0

    func run() throws {
        let url = try ModelSource.resolve(tokenizerFrom)
        let source = try GGUFFile(contentsOf: url)
        guard let vocab = source.metadataStrings("tokenizer.ggml.tokens")?.count else {
            throw ValidationError("\(url.path) has no tokenizer.ggml.tokens; pass a GGUF with a tokenizer")
        }
        let config = ModelConfig(vocabSize: vocab, hiddenSize: hiddenSize, intermediateSize: intermediateSize, numLayers: layers,
                                 numHeads: heads, numKVHeads: kvHeads, ropeTheta: 10_000, maxPositions: maxPositions,
                                 tieWordEmbeddings: true, ropeLayout: .interleaved)
        do { try config.validate() } catch { throw ValidationError("\(error)") }
        let model = try Transformer(config: config, trainable: false)
        model.initializeRandomly(seed: seed)
        try model.saveGGUF(to: URL(fileURLWithPath: out), type: .f32, metadataSource: source, name: "dualign random init")
        Output.line("wrote \(out): \(model.layout.count) parameters, tokenizer of \(url.lastPathComponent)")
    }
}
