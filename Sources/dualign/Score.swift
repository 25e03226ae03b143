// `dualign score`: score (prompt, response) rows with a reward or cost model, sharded over ranks.

import ArgumentParser
import Foundation
import Models
import Tokenizers
import Training
import Distributed
import Rollout

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score (prompt, response) rows with a reward or cost model; adds \"score\" to each JSONL line (sharded under mpirun).")

    @Option(help: "A score model (final.gguf or a Hugging Face directory from `dualign train reward|cost`).")
    var model: String
    @Option(help: "JSONL rows with string fields \"prompt\" and \"response\" (e.g. `dualign generate --prompts` output).")
    var data: String
    @Option(help: "Where the scored JSONL goes (same rows, in input order, plus \"score\"); written by rank 0.")
    var out: String
    @Option(help: "Chat template the score model was trained with: \(ChatTemplateKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var template = ChatTemplateKind.chatML.rawValue
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Sequences scored together.")
    var batchSize = 16
    @Option(name: .customLong("max-length"), parsing: .unconditional, help: "Longest sequence in tokens (default: the model's context); longer responses are truncated as in training.")
    var maxLength: Int?
    @Flag(name: .customLong("allow-untrained-head"), help: "Score with a model whose file has no score head (a random head; for tests only).")
    var allowUntrainedHead = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if let maxLength, maxLength < 2 { throw ValidationError("--max-length must be at least 2, got \(maxLength)") }
        if ChatTemplateKind(rawValue: template) == nil {
            throw ValidationError("unknown --template \(template); choose one of \(ChatTemplateKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        let comm = try MPICommunicator.world()
        try compute.apply(ranks: comm.size)
        let loaded = try ModelSource.load(model, trainable: false, scoreHead: true)
        if !allowUntrainedHead, try !loaded.hasScoreHeadTensor() {
            throw ResponseScoringError(file: model, "has no trained score head (no cls.output.weight / score.weight tensor); give the final.gguf of `dualign train reward|cost`, or pass --allow-untrained-head to score with a random head")
        }
        let tokenizer = try loaded.requireTokenizer()
        let kind = ChatTemplateKind(rawValue: template)!
        // The same default system prompt as `dualign train` uses for ChatML.
        let system = kind == .chatML ? loaded.gguf?.metadataString("tokenizer.chat_template").flatMap(ChatTemplate.defaultSystemPrompt(fromJinja:)) : nil
        let chatTemplate = try ChatTemplate(kind: kind, tokenizer: tokenizer, defaultSystemPrompt: system)
        let rows = try ScoringFile.read(data)
        let scorer = ResponseScorer(model: loaded.model, template: chatTemplate, batchSize: batchSize, maxLength: maxLength)
        let start = Date()
        guard let scores = try scorer.scoreAll(rows, communicator: comm, source: data) else { return }
        var text = ""
        for (row, score) in zip(rows, scores) { text += ScoringFile.outputLine(row, score: score) + "\n" }
        try text.write(toFile: out, atomically: true, encoding: .utf8)
        let mean = scores.reduce(0.0) { $0 + Double($1) } / Double(scores.count)
        let seconds = Date().timeIntervalSince(start)
        Output.line("scored \(rows.count) rows of \(data) to \(out) (mean score \(String(format: "%.4f", mean)), \(String(format: "%.1f", Double(rows.count) / seconds)) rows/s over \(comm.size) rank(s))")
    }
}
