// The prompt sets of `dualign eval`: the built-in held-out sets from the prompt assets and the data
// root, and extra sets given on the command line as dataset specs (a YAML/JSON file, a run config
// whose `align.prompts` is the dual's pool, or an inline `{schema: …, paths: […]}`) or prompt files.

import ArgumentParser
import Foundation
import Yams
import Datasets
import Evaluation
import Models
import Tokenizers

/// One prompt set ready to evaluate.
struct LoadedPromptSet {
    var info: EvaluationSetInfo
    var prompts: [EvaluationPrompt]
}

/// Reads the prompt sets the `eval` command's options name.
struct EvalPromptSetLoader {
    var maxPrompts: Int
    var holdoutSeed: UInt64

    /// The first `maxPrompts` of `prompts`, with the set's description.
    func limit(_ prompts: [EvaluationPrompt], name: String, role: EvaluationSetRole, source: String, heldOut: String) throws -> LoadedPromptSet {
        guard !prompts.isEmpty else {
            throw ValidationError("the \(name) set has no prompts on the held-out side (\(heldOut)) in \(source); use a larger held-out fraction or give the set as `none`")
        }
        let kept = Array(prompts.prefix(maxPrompts))
        return LoadedPromptSet(info: EvaluationSetInfo(name: name, role: role, source: source, heldOut: heldOut,
                                                       prompts: kept.count, available: prompts.count),
                               prompts: kept)
    }

    /// The rule of a held-out split in words (the `excludeHeldOutPrompts` entry training uses).
    func splitRule(_ fraction: Double) -> String {
        "HeldOutSplit(fraction: \(fraction), seed: \(holdoutSeed)) on the last user turn; training leaves the same prompts out with excludeHeldOutPrompts: {fraction: \(fraction), seed: \(holdoutSeed)}"
    }

    /// A data-root file unless the option names one (`none` skips: nil).
    static func dataPath(_ option: String?, default relative: String, flag: String) throws -> String? {
        if option == "none" { return nil }
        let path = try option ?? DataRoot.path(relative)
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("cannot read \(flag) \(path); give the path (default: $DUALIGN_DATA/\(relative), from `launch/assets.sh data`) or `none` to skip the set")
        }
        return path
    }

    func advBench(_ path: String) throws -> LoadedPromptSet {
        try limit(PromptSets.loadAdvBench(path).map(EvaluationPrompt.init), name: "advbench", role: .harmful, source: path,
                  heldOut: "an evaluation set: EvaluationPromptFilter drops its prompts and near-duplicates from every training source")
    }

    func harmBench(_ path: String) throws -> LoadedPromptSet {
        try limit(PromptSets.loadHarmBench(path).map(EvaluationPrompt.init), name: "harmbench", role: .harmful, source: path,
                  heldOut: "an evaluation set: EvaluationPromptFilter drops its prompts and near-duplicates from every training source")
    }

    func xstest(_ path: String, fraction: Double) throws -> LoadedPromptSet {
        let split = try HeldOutSplit(fraction: fraction, seed: holdoutSeed)
        return try limit(PromptSets.loadXSTest(path, heldOut: split).map(EvaluationPrompt.init), name: "xstest", role: .mixed, source: path,
                         heldOut: fraction > 0 ? splitRule(fraction) + " (and EvaluationPromptFilter drops them)" : "all prompts (no split)")
    }

    func physicalSafety(_ path: String) throws -> LoadedPromptSet {
        try limit(HeldOutPromptSets.physicalSafetySafe(path), name: "physicalsafety", role: .benign, source: path,
                  heldOut: "all prompts: an evaluation-only file (safety-tuned-llamas' evaluation/), not a training source")
    }

    func coconot(_ path: String, fraction: Double) throws -> LoadedPromptSet {
        let split = try HeldOutSplit(fraction: fraction, seed: holdoutSeed)
        return try limit(HeldOutPromptSets.coconot(path, split: split), name: "coconot", role: .benign, source: path,
                         heldOut: "category '\(HeldOutPromptSets.coconotLookAlikeCategory)'; " + splitRule(fraction))
    }

    func alpacaEval(_ path: String, fraction: Double) throws -> LoadedPromptSet {
        let split = try HeldOutSplit(fraction: fraction, seed: holdoutSeed)
        return try limit(HeldOutPromptSets.alpacaEval(path, split: split), name: "alpacaeval", role: .helpfulness, source: path,
                         heldOut: splitRule(fraction))
    }

    // MARK: - Extra sets

    /// `NAME=SPEC` split at the first `=`.
    static func split(_ spec: String) -> (String, String)? {
        guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex, spec.index(after: eq) != spec.endIndex else { return nil }
        return (String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
    }

    /// Dataset specs from a YAML/JSON value: one spec, a list of specs, or a run config (its
    /// `align.prompts`, else its `data.datasets`).
    static func specs(from node: Any?, source: String) throws -> [DatasetSpec] {
        func decode(_ value: Any) throws -> DatasetSpec {
            let data = try JSONSerialization.data(withJSONObject: yamlToJSON(value))
            do { return try JSONDecoder().decode(DatasetSpec.self, from: data) } catch {
                throw ValidationError("\(source): not a dataset spec ({schema: …, paths: […], excludeHeldOutPrompts: {fraction: …, seed: …}}): \(error)")
            }
        }
        switch node {
        case let list as [Any]: return try list.map(decode)
        case let map as [String: Any] where map["schema"] != nil: return [try decode(map)]
        case let map as [String: Any]:
            if let align = map["align"] as? [String: Any], let prompts = align["prompts"] as? [Any] { return try prompts.map(decode) }
            if let data = map["data"] as? [String: Any], let datasets = data["datasets"] as? [Any] { return try datasets.map(decode) }
            throw ValidationError("\(source): a mapping without `schema`, `align.prompts` or `data.datasets`; give a dataset spec, a list of them, or a run config")
        default:
            throw ValidationError("\(source): expected a dataset spec, a list of dataset specs, or a run config")
        }
    }

    /// An extra set from `SPEC`: inline YAML (`{…}` or `[…]`), a YAML/JSON file of dataset specs or
    /// a run config, a `.txt` file (one prompt per line), or any other file read with the `prompts`
    /// schema. For dataset specs with `excludeHeldOutPrompts`, the prompts that split leaves out of
    /// training are evaluated.
    func extra(name: String, spec: String, label: String?) throws -> LoadedPromptSet {
        let trimmed = spec.trimmingCharacters(in: .whitespaces)
        let isInline = trimmed.hasPrefix("{") || trimmed.hasPrefix("[")
        let ext = (trimmed as NSString).pathExtension.lowercased()
        if isInline || ["yaml", "yml", "json"].contains(ext) {
            let text: String, base: URL?
            if isInline { text = trimmed; base = nil } else {
                let path = try DataRoot.expand(trimmed)
                guard let t = try? String(contentsOfFile: path, encoding: .utf8) else {
                    throw ValidationError("--prompt-set \(name): cannot read \(path); give a dataset spec file, a run config, a prompt file or an inline {schema: …, paths: […]}")
                }
                text = t; base = URL(fileURLWithPath: path).deletingLastPathComponent()
            }
            let node: Any?
            do { node = try Yams.load(yaml: text) } catch { throw ValidationError("--prompt-set \(name): not valid YAML: \(error)") }
            var prompts: [EvaluationPrompt] = [], rules: [String] = []
            for var s in try Self.specs(from: node, source: "--prompt-set \(name)") {
                let split = s.options.excludeHeldOutPrompts.flatMap { $0.fraction > 0 ? $0 : nil }
                s.options.excludeHeldOutPrompts = nil          // load both sides, keep the held-out one below
                let loaded = try s.load(relativeTo: base)
                prompts += HeldOutPromptSets.extra(name: name, records: loaded.distinctPrompts, exclude: split, label: label)
                rules.append(split.map { "\(s.schema.rawValue): the prompts excludeHeldOutPrompts {fraction: \($0.fraction), seed: \($0.seed)} leaves out of training" }
                             ?? "\(s.schema.rawValue): all prompts (the spec has no excludeHeldOutPrompts split: held out only if training never read this dataset)")
            }
            var seen = Set<String>()
            prompts = prompts.filter { seen.insert($0.text).inserted }
            return try limit(prompts, name: name, role: .extra, source: isInline ? trimmed : spec, heldOut: rules.joined(separator: "; "))
        }
        let path = try DataRoot.expand(trimmed)
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("--prompt-set \(name): cannot read \(path); give a dataset spec file, a run config, a prompt file or an inline {schema: …, paths: […]}")
        }
        let records: [PromptRecord]
        if ext == "txt" {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            records = try PromptSets.parseLines(text, source: path).enumerated().map { i, t in
                PromptRecord(id: "\(name):\(i)", prompt: [.user(t)], promptText: t, source: SourceLocation(file: path, line: i + 1))
            }
        } else {
            records = try DatasetLoader.load(.prompts, paths: [path]).prompts
        }
        return try limit(HeldOutPromptSets.extra(name: name, records: records, exclude: nil, label: label), name: name, role: .extra,
                         source: path, heldOut: "all prompts of the file (held out only if training never read it)")
    }
}
