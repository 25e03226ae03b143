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
    @Option(help: "Chat template: \(ChatTemplateKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var template = ChatTemplateKind.chatML.rawValue
    @Flag(help: "Pick the most likely token at every step.")
    var greedy = false
    @Option(name: .customLong("max-new-tokens"), parsing: .unconditional, help: "New tokens per response at most.")
    var maxNewTokens = 64
    @Option(parsing: .unconditional, help: "Softmax temperature.")
    var temperature: Float = 1
    @Option(name: .customLong("top-k"), parsing: .unconditional, help: "Sample among the k most likely tokens (0: all).")
    var topK = 0
    @Option(name: .customLong("top-p"), parsing: .unconditional, help: "Sample from the smallest set of tokens holding probability p.")
    var topP: Float = 1
    @Option(parsing: .unconditional, help: "Seed; sample k of prompt i uses its own generator, whatever the batch or rank.")
    var seed: UInt64 = 0
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Sequences decoded together.")
    var batchSize = 16
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if (prompt == nil) == (prompts == nil) { throw ValidationError("give exactly one of --prompt TEXT or --prompts FILE.jsonl") }
        if prompts != nil && out == nil { throw ValidationError("--prompts needs --out FILE.jsonl for the samples") }
        if samples < 1 || maxNewTokens < 1 || batchSize < 1 { throw ValidationError("--samples, --max-new-tokens and --batch-size must be at least 1") }
        if !greedy && !(temperature > 0) { throw ValidationError("--temperature must be above 0 (or use --greedy)") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
        if ChatTemplateKind(rawValue: template) == nil {
            throw ValidationError("unknown --template \(template); choose one of \(ChatTemplateKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        let comm = try MPICommunicator.world()
        try compute.apply(ranks: comm.size)
        let loaded = try ModelSource.load(model)
        let tokenizer = try loaded.requireTokenizer()
        let chatTemplate = chat ? try ChatTemplate(kind: ChatTemplateKind(rawValue: template)!, tokenizer: tokenizer,
                                                   defaultSystemPrompt: loaded.gguf?.metadataString("tokenizer.chat_template").flatMap(ChatTemplate.defaultSystemPrompt(fromJinja:))) : nil
        var sampler = PromptSampler(model: loaded.model, tokenizer: tokenizer, template: chatTemplate,
                                    options: SamplingOptions(greedy: greedy, temperature: temperature, topK: topK, topP: topP,
                                                             maxNewTokens: maxNewTokens, seed: seed))
        sampler.batchSize = batchSize
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
