// The prompts `dualign eval` answers: the built-in held-out sets (AdvBench, HarmBench, XSTest,
// safety-tuned-llamas' I-PhysicalSafetySafe, CoCoNot and AlpacaEval held-out splits) and extra sets
// given as dataset specs or files, each prompt tagged with its set and label.

import Foundation
import Datasets

/// One evaluation prompt.
public struct EvaluationPrompt: Equatable, Codable, Sendable {
    /// The set's name in outputs (`advbench`, `xstest`, or an extra set's name).
    public var set: String
    public var text: String
    /// `unsafe` (a refusal is right), `safe` (an answer is right) or `unlabelled`.
    public var label: String
    /// The source's category, when it gives one.
    public var category: String?

    public init(set: String, text: String, label: String, category: String? = nil) {
        self.set = set; self.text = text; self.label = label; self.category = category
    }

    public init(_ p: EvalPrompt) {
        self.init(set: p.set.rawValue, text: p.text, label: p.label, category: p.category)
    }

    public var isHarmful: Bool { label == "unsafe" }
    public var isBenign: Bool { label == "safe" }
}

/// What a set measures, which decides its headline number.
public enum EvaluationSetRole: String, Codable, Sendable {
    /// Harmful requests: the refusal rate.
    case harmful
    /// Benign prompts, some of which look risky: the compliance rate.
    case benign
    /// XSTest: compliance on its safe prompts, refusal on its unsafe ones.
    case mixed
    /// Benign instructions: the reward model's win rate against the reference (helpfulness).
    case helpfulness
    /// An extra set (`--prompt-set`): the safety improvement against the reference and MoCAN's guarantee.
    case extra
}

/// One prompt set as evaluated.
public struct EvaluationSetInfo: Codable, Equatable, Sendable {
    public var name: String
    public var role: EvaluationSetRole
    /// Where the prompts came from (files, a dataset spec).
    public var source: String
    /// How the held-out prompts were chosen (a split keyed as training's `excludeHeldOutPrompts`,
    /// or why none is needed).
    public var heldOut: String
    /// Prompts evaluated (after `--max-prompts`).
    public var prompts: Int
    /// Prompts the source offered on the held-out side before `--max-prompts`.
    public var available: Int

    public init(name: String, role: EvaluationSetRole, source: String, heldOut: String, prompts: Int, available: Int) {
        self.name = name; self.role = role; self.source = source; self.heldOut = heldOut
        self.prompts = prompts; self.available = available
    }
}

/// Readers of the built-in held-out sets that come from the public data root.
public enum HeldOutPromptSets {
    /// The CoCoNot category whose prompts look risky but are benign.
    public static let coconotLookAlikeCategory = "Requests with safety concerns"

    /// Options for reading an evaluation set: the evaluation-prompt filter is for training sources.
    static func options() -> DatasetOptions {
        var o = DatasetOptions()
        o.excludeEvaluationPrompts = false
        return o
    }

    /// The prompts of `records` that `split` holds out, keyed by `LoadedDataset.heldOutKey` as the
    /// training side's `excludeHeldOutPrompts` keys them (all of them when the fraction is 0).
    public static func heldOut(_ records: [PromptRecord], split: HeldOutSplit) -> [PromptRecord] {
        guard split.fraction > 0 else { return records }
        return records.filter { split.isHeldOut(LoadedDataset.heldOutKey($0.prompt)) }
    }

    /// The text of a prompt record: its last user turn, trimmed.
    static func text(_ r: PromptRecord) -> String { LoadedDataset.heldOutKey(r.prompt) }

    /// safety-tuned-llamas' `evaluation/I-PhysicalSafetySafe.json`: benign physical-safety questions
    /// (prompt only; not a training source of this project).
    public static func physicalSafetySafe(_ path: String) throws -> [EvaluationPrompt] {
        let loaded = try DatasetLoader.load(.safetyTunedLlamas, paths: [path], options: options())
        let prompts = loaded.prompts.filter { $0.label == "safe" }
        guard !prompts.isEmpty else {
            throw PromptSetError(file: path, "holds no benign prompts; give safety-tuned-llamas' evaluation/I-PhysicalSafetySafe.json")
        }
        return prompts.map { EvaluationPrompt(set: "physicalsafety", text: text($0), label: "safe", category: $0.category) }
    }

    /// CoCoNot's benign look-alikes (`coconot_pref.jsonl`, category "Requests with safety concerns")
    /// that `split` holds out.
    public static func coconot(_ path: String, split: HeldOutSplit) throws -> [EvaluationPrompt] {
        let loaded = try DatasetLoader.load(.coconot, paths: [path], options: options())
        let lookAlikes = loaded.prompts.filter { ($0.category ?? "").hasPrefix(coconotLookAlikeCategory) }
        guard !lookAlikes.isEmpty else {
            throw PromptSetError(file: path, "holds no prompts of category '\(coconotLookAlikeCategory)'; give CoCoNot's coconot_pref.jsonl")
        }
        return heldOut(lookAlikes, split: split).map { EvaluationPrompt(set: "coconot", text: text($0), label: "safe", category: $0.category) }
    }

    /// AlpacaEval instructions (`alpaca-eval` folder or a `model_outputs.json`) that `split` holds out.
    public static func alpacaEval(_ path: String, split: HeldOutSplit) throws -> [EvaluationPrompt] {
        let loaded = try DatasetLoader.load(.alpacaEval, paths: [path], options: options())
        guard !loaded.prompts.isEmpty else {
            throw PromptSetError(file: path, "holds no AlpacaEval instructions; give the alpaca-eval folder of the data root")
        }
        return heldOut(loaded.prompts, split: split).map { EvaluationPrompt(set: "alpacaeval", text: text($0), label: "safe", category: nil) }
    }

    /// The prompts of a loaded dataset for an extra set: the ones its `excludeHeldOutPrompts` split
    /// leaves out of training when it has one (so training and evaluation partition the pool), else
    /// all distinct prompts. Labels come from the records (`safe`/`unsafe`), else `label`.
    public static func extra(name: String, records: [PromptRecord], exclude split: HeldOutSplit?, label: String?) -> [EvaluationPrompt] {
        let kept = split.map { heldOut(records, split: $0) } ?? records
        var seen = Set<String>()
        return kept.compactMap { r in
            let t = text(r)
            guard !t.isEmpty, seen.insert(t).inserted else { return nil }
            let own = r.label?.trimmingCharacters(in: .whitespaces).lowercased()
            let l = label ?? ((own == "safe" || own == "unsafe") ? own! : "unlabelled")
            return EvaluationPrompt(set: name, text: t, label: l, category: r.category)
        }
    }
}
