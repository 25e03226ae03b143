// The prompts PPO samples from: the distinct prompts of `data.datasets` (prompt-only schemas, or the prompts
// of pairs), rendered with the chat template, the end kept when longer than data.maxPromptLength (as pairs
// are truncated), and split into training and held-out prompts by each dataset's evalFraction, keyed by
// the prompt (the last user turn) so a prompt is on the same side whatever else is loaded. Pre-tokenized
// pairs (schema `tokens`) give their prompt ids directly (no template needed).

import Foundation
import Datasets
import Tensors
import Tokenizers
import Training

/// Tokenized training and held-out prompts.
public struct PPOPrompts: Sendable {
    /// Training prompts, in data order (duplicates removed).        // each (P_i)
    public var train: [[Int32]]
    /// Held-out prompts (evaluation: reward and KL of fresh samples).
    public var eval: [[Int32]]
    /// What loading kept and cut, for the run log.
    public var report: String

    public init(train: [[Int32]], eval: [[Int32]], report: String = "") {
        self.train = train; self.eval = eval; self.report = report
    }

    /// Loads the prompts of `config.data`; `template` renders text prompts (pre-tokenized data needs none).
    /// - Throws: `RunConfigError` when a text dataset has no template to render it or no prompt survives.
    public static func load(_ config: RunConfig, template: ChatTemplate?) throws -> PPOPrompts {
        let maxPrompt = config.data.maxPromptLength
        var train: [[Int32]] = [], eval: [[Int32]] = []
        var seen = Set<[Int32]>()
        var truncated = 0
        func add(_ tokens: [Int], heldOut: Bool) {
            var t = tokens.map(Int32.init)
            guard !t.isEmpty else { return }
            if t.count > maxPrompt { t = Array(t.suffix(maxPrompt)); truncated += 1 }
            guard seen.insert(t).inserted else { return }
            if heldOut { eval.append(t) } else { train.append(t) }
        }
        for (i, spec) in config.data.datasets.enumerated() {
            let loaded = try spec.load()
            let split = try spec.heldOutSplit()
            if spec.schema == .tokens {
                for p in loaded.tokenizedPairs { add(p.promptTokens, heldOut: spec.evalFraction > 0 && split.isHeldOut(p.id)) }
                continue
            }
            guard let template else {
                throw RunConfigError(key: "data.datasets[\(i)]", message: "schema \(spec.schema.rawValue) holds text, and the model has no tokenizer to render it; give a model with its tokenizer or pre-tokenized prompts (schema: tokens)")
            }
            for record in loaded.distinctPrompts {
                let key = LoadedDataset.heldOutKey(record.prompt)
                add(template.renderPrompt(record.prompt).tokens, heldOut: spec.evalFraction > 0 && split.isHeldOut(key))
            }
        }
        // A private stage of a split (DP-PPO in `align dp-rlhf`) samples its own prompts only, keyed as pairs are.
        var splitNote = ""
        if let (keep, note) = try PrivateStageRows.selection(config, keys: train.map { PrivateStageRows.rowKey(promptTokens: $0.map(Int.init)) },
                                                           what: "training prompts") {
            train = zip(train, keep).filter(\.1).map(\.0)
            splitNote = "; " + note
        }
        // data.maxPairs caps the training prompts, evenly spaced so every listed dataset keeps some.
        if let n = config.data.maxPairs, n > 0, train.count > n { train = (0..<n).map { train[$0 * train.count / n] } }
        if eval.count > config.evaluation.maxPairs { eval = Array(eval.prefix(config.evaluation.maxPairs)) }
        guard !train.isEmpty else {
            throw RunConfigError(key: "data.datasets", message: "no training prompts in the listed datasets; check the paths, schema and evalFraction")
        }
        let report = "\(train.count) training and \(eval.count) held-out prompts" + (truncated > 0 ? ", \(truncated) cut to their last \(maxPrompt) tokens" : "") + splitNote
        return PPOPrompts(train: train, eval: eval, report: report)
    }

    /// A fingerprint of the token ids (part of the run's prepared key).
    public var fingerprint: String {
        var bytes: [UInt8] = []
        for p in train + [[-1]] + eval {
            for t in p { withUnsafeBytes(of: UInt32(bitPattern: t).littleEndian) { bytes.append(contentsOf: $0) } }
            bytes.append(0xFF)
        }
        return StableHash.hex(bytes)
    }
}
