// `dualign generate`: sample from a model, one prompt or a JSONL file of prompts sharded over ranks.

import ArgumentParser
import Foundation
import Models
import Tokenizers
import Training
import Distributed
import Rollout

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with KV-cache decoding; with --prompts, sample K responses per prompt (sharded under mpirun).")

    @Option(help: "A GGUF file, a Hugging Face directory, or a named model (smollm2-135m).")
    var model = "smollm2-135m"
    @Option(help: "One prompt; the continuation is printed.")
    var prompt: String?
    @Option(help: "A JSONL file with one {\"prompt\": \"…\"} per line.")
    var prompts: String?
    @Option(help: "Where the JSONL samples go (with --prompts); written by rank 0.")
    var out: String?
    @Option(parsing: .unconditional, help: "Samples per prompt (with --prompts).")
    var samples = 1
    @Flag(help: "Render the prompt with the model's chat template (ChatML for SmolLM2).")
    var chat = false
    @Flag(help: "Pick the most likely token at every step.")
    var greedy = false
    @OptionGroup var sampling: SamplingFlags
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if (prompt == nil) == (prompts == nil) { throw ValidationError("give exactly one of --prompt TEXT or --prompts FILE.jsonl") }
        if prompts != nil && out == nil { throw ValidationError("--prompts needs --out FILE.jsonl for the samples") }
        if samples < 1 { throw ValidationError("--samples must be at least 1, got \(samples)") }
        try sampling.check(greedy: greedy)
    }

    func run() throws {
        let comm = try MPICommunicator.world()
        try compute.apply(ranks: comm.size)
        let loaded = try ModelSource.load(model)
        let tokenizer = try loaded.requireTokenizer()
        let chatTemplate = chat ? try ChatTemplate(kind: sampling.templateKind, tokenizer: tokenizer,
                                                   defaultSystemPrompt: loaded.gguf?.metadataString("tokenizer.chat_template").flatMap(ChatTemplate.defaultSystemPrompt(fromJinja:))) : nil
        var sampler = PromptSampler(model: loaded.model, tokenizer: tokenizer, template: chatTemplate,
                                    options: sampling.options(greedy: greedy))
        sampler.batchSize = sampling.batchSize
        if let prompt {
            let s = sampler.sampleShard([prompt], samplesPerPrompt: 1, rank: 0, size: 1)[0]
            if comm.rank == 0 { Output.line(s.response) }
            return
        }
        let list = try PromptFile.read(prompts!)
        let start = Date()
        if let all = try sampler.sampleAll(list, samplesPerPrompt: samples, communicator: comm) {
            try PromptSample.jsonLines(all).write(toFile: out!, atomically: true, encoding: .utf8)
            let tokens = all.reduce(0) { $0 + $1.tokens.count }
            let seconds = Date().timeIntervalSince(start)
            Output.line("wrote \(all.count) samples of \(list.count) prompts to \(out!) (\(tokens) tokens, \(String(format: "%.1f", Double(tokens) / seconds)) tokens/s over \(comm.size) rank(s))")
        }
    }
}

/// Prompt files: JSONL with a "prompt" string per line.
enum PromptFile {
    static func read(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read --prompts \(path); check the path")
        }
        var prompts: [String] = []
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(t.utf8)) as? [String: Any], let p = obj["prompt"] as? String else {
                throw ValidationError("\(path):\(i + 1): expected a JSON object with a string field \"prompt\"")
            }
            prompts.append(p)
        }
        if prompts.isEmpty { throw ValidationError("\(path) holds no prompts") }
        return prompts
    }
}

/// Whole-line output on standard output (safe under mpirun, where ranks share a pipe).
enum Output {
    static func line(_ s: String) {
        FileHandle.standardOutput.write(Data((s + "\n").utf8))
    }
}
