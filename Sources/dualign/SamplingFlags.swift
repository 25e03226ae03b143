// The sampling flags `dualign generate` and `dualign rejected-samples` share: chat template, response
// length, temperature, top-k, top-p, seed and batch size, with one validation and one `SamplingOptions`.

import ArgumentParser
import Models
import Tokenizers

/// How responses are sampled: the options of `SamplingOptions` plus the chat template and the batch size.
struct SamplingFlags: ParsableArguments {
    @Option(help: "Chat template: \(ChatTemplateKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var template = ChatTemplateKind.chatML.rawValue
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
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Sequences decoded (and scored) together.")
    var batchSize = 16

    /// Checks every flag, naming the one to change. `greedy`: the command's --greedy flag (nil: it has none);
    /// greedy decoding ignores the temperature.
    func check(greedy: Bool? = nil) throws {
        if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1, got \(maxNewTokens)") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if greedy != true && !(temperature > 0) {
            throw ValidationError("--temperature must be above 0, got \(temperature)\(greedy == nil ? "" : " (or use --greedy)")")
        }
        if topK < 0 { throw ValidationError("--top-k must be 0 (all tokens) or more, got \(topK)") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1], got \(topP)") }
        if ChatTemplateKind(rawValue: template) == nil {
            throw ValidationError("unknown --template \(template); choose one of \(ChatTemplateKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// The template kind (valid after `check`).
    var templateKind: ChatTemplateKind { ChatTemplateKind(rawValue: template)! }

    /// The decoder's options.
    func options(greedy: Bool = false) -> SamplingOptions {
        SamplingOptions(greedy: greedy, temperature: temperature, topK: topK, topP: topP, maxNewTokens: maxNewTokens, seed: seed)
    }
}
