// refusal-direction runs: the same model and prompt, refusing vs complying once its refusal direction
// is ablated, and answering vs refusing once refusal is induced.

import Foundation
import Tokenizers

/// The `refusal-direction` schema: completion files of andyrdt/refusal_direction
/// (`pipeline/runs/<model>/completions/<set>_<intervention>_evaluations.json`, Apache-2.0), a JSON
/// object whose `completions` array holds `{category, prompt, response,
/// is_jailbreak_substring_matching, is_jailbreak_llamaguard2?}`. A directory is searched for
/// `*_evaluations.json` files; the model is the file's folder name, the prompt set (`jailbreakbench`:
/// harmful behaviours, `harmless`: Alpaca instructions) and the intervention (`baseline`, `ablation`:
/// refusal direction removed, `actadd`: refusal direction added) come from the file name.
///
/// Labels: `is_jailbreak_substring_matching` is 0 when a refusal phrase occurs (refused) and 1 when
/// none does; `is_jailbreak_llamaguard2` (harmful prompts only) is 1 when LlamaGuard 2 judges the
/// response unsafe. Pairs are made within one model and one prompt, and only when the labels agree
/// with the pair:
/// - harmful: baseline ≻ ablation when the baseline refused and was judged safe, and the ablation
///   did not refuse and was judged unsafe — aspect harmlessness, plus a `SafetyPair` (safe ≻ unsafe);
/// - benign: baseline ≻ actadd when the baseline did not refuse and the actadd completion refused —
///   aspect helpfulness (over-refusal), plus an unranked `SafetyPair` with both answers labelled safe
///   (the cost model learns their signs only).
/// Other pairs count in `LoadReport.droppedDisagreeingLabels`. Pair texts are cut with
/// `options.completionCut` (default: first paragraph, first repetition, unfinished sentence).
///
/// Also: every completion as a `LabelledCompletion` (uncut, with both labels), and every distinct
/// prompt of a set as a `PromptRecord` (label `unsafe` for JailbreakBench, `safe` for Alpaca).
public enum RefusalDirectionSchema {
    /// One labelled completion as read.
    private struct Completion {
        var index: Int
        var prompt: String
        var response: String
        var category: String?
        var refused: Bool
        var unsafe: Bool?
        var source: SourceLocation
    }

    /// The parts of a file name `<set>_<intervention>_evaluations.json`.
    static func parseFileName(_ path: String) -> (set: String, intervention: String)? {
        let name = RowLoop.fileName(path)
        guard name.hasSuffix("_evaluations.json") else { return nil }
        let stem = name.dropLast("_evaluations.json".count)
        guard let underscore = stem.lastIndex(of: "_") else { return nil }
        let set = String(stem[..<underscore]), intervention = String(stem[stem.index(after: underscore)...])
        guard !set.isEmpty, !intervention.isEmpty else { return nil }
        return (set, intervention)
    }

    /// Loads `paths` (completion files, model folders, or the whole `refusal-direction` folder).
    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .refusalDirection)
        var report = LoadReport()
        let files = try RowLoop.files(in: paths, what: "refusal-direction completion files (*_evaluations.json)") {
            $0.hasSuffix("_evaluations.json")
        }
        // (model, set) → intervention → completions in file order.
        var runs: [String: [String: [Completion]]] = [:]
        var runOrder: [(model: String, set: String)] = []
        var more = true
        for path in files where more {
            guard let (set, intervention) = parseFileName(path) else {
                throw DatasetError(.unsupportedFormat, file: path,
                                   "the file name is not <set>_<intervention>_evaluations.json (e.g. jailbreakbench_baseline_evaluations.json); refusal-direction files are told apart by name")
            }
            let model = ((path as NSString).deletingLastPathComponent as NSString).lastPathComponent
            let document = try JSONDocument.load(path)
            let items = try RowLoop.topArray(document, file: path, key: "completions", what: "a refusal-direction evaluations file")
            report.files += 1
            var completions: [Completion] = []
            more = try RowLoop.forEachNode(items, options: options, report: &report) { node, report in
                let row = try RowLoop.objectRow(node, file: path, what: "a completion object {prompt, response, is_jailbreak_substring_matching}")
                let prompt = try row.string("prompt")
                let response = try row.string("response")
                let category = row.has("category") ? try row.string("category") : nil
                let complied = try label(row, "is_jailbreak_substring_matching")
                let unsafe = row.has("is_jailbreak_llamaguard2") ? try label(row, "is_jailbreak_llamaguard2") : nil
                guard !RowLoop.isBlank(prompt) else { throw row.error(.invalidValue, field: "prompt", "the prompt is empty") }
                let c = Completion(index: completions.count, prompt: RowLoop.trimmed(prompt), response: response,
                                   category: category, refused: !complied, unsafe: unsafe, source: row.location)
                completions.append(c)
                dataset.labelledCompletions.append(LabelledCompletion(
                    id: "refusal-direction:\(model):\(set)_\(intervention):\(c.index)", prompt: [.user(c.prompt)],
                    promptText: c.prompt, response: response, model: model, intervention: intervention,
                    promptIsHarmful: set != "harmless", refused: c.refused, harmful: unsafe, category: category,
                    source: row.location))
            }
            let key = model + "\u{1F}" + set
            if runs[key] == nil { runOrder.append((model, set)) }
            runs[key, default: [:]][intervention, default: []] += completions
        }

        var seenPrompts = Set<String>()
        for (model, set) in runOrder {
            let run = runs[model + "\u{1F}" + set]!
            let harmful = set != "harmless"
            for c in run["baseline"] ?? [] where seenPrompts.insert(set + "\u{1F}" + c.prompt).inserted {
                dataset.prompts.append(PromptRecord(id: "refusal-direction:\(set):\(c.index)", prompt: [.user(c.prompt)],
                                                    promptText: c.prompt, label: harmful ? "unsafe" : "safe",
                                                    category: c.category, source: c.source))
            }
            let other = harmful ? "ablation" : "actadd"
            guard let baseline = run["baseline"], let changed = run[other] else { continue }
            var byPrompt: [String: Completion] = [:]
            for c in changed where byPrompt[c.prompt] == nil { byPrompt[c.prompt] = c }
            for b in baseline {
                guard let o = byPrompt[b.prompt] else { continue }
                // Harmful: the baseline refuses safely and the ablation complies unsafely. Benign: the
                // baseline answers and the induced refusal refuses.
                let agree = harmful ? (b.refused && b.unsafe != true && !o.refused && o.unsafe != false)
                                    : (!b.refused && o.refused)
                guard agree else { report.droppedDisagreeingLabels += 1; continue }
                let chosen = b, rejected = o   // the baseline is preferred in both sets
                let chosenText = options.completionCut.apply(chosen.response)
                let rejectedText = options.completionCut.apply(rejected.response)
                guard RowLoop.keepPair(chosen: chosenText, rejected: rejectedText, options: options, report: &report) else { continue }
                let id = "refusal-direction:\(model):\(set):\(b.index)"
                let prompt: [ChatMessage] = [.user(b.prompt)]
                dataset.pairs.append(PreferencePair(
                    id: id, prompt: prompt, promptText: b.prompt, chosen: chosenText, rejected: rejectedText,
                    aspect: harmful ? .harmlessness : .helpfulness, source: chosen.source,
                    rejectedSource: rejected.source, category: b.category))
                if harmful {
                    dataset.safetyPairs.append(SafetyPair(
                        id: id, prompt: prompt, promptText: b.prompt, safer: chosenText, unsafer: rejectedText,
                        saferIsSafe: true, unsaferIsSafe: false, source: chosen.source, unsaferSource: rejected.source))
                } else if b.unsafe != true {
                    // A helpful answer and an induced refusal of a harmless instruction: both safe, neither less harmful.
                    dataset.safetyPairs.append(SafetyPair(
                        id: id, prompt: prompt, promptText: b.prompt, safer: chosenText, unsafer: rejectedText,
                        saferIsSafe: true, unsaferIsSafe: true, ranked: false, source: chosen.source,
                        unsaferSource: rejected.source))
                }
            }
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }

    /// A 0/1 label (also true/false).
    private static func label(_ row: DataRow, _ field: String) throws -> Bool {
        do {
            return try row.bool(field)
        } catch let e as DatasetError where e.kind == .invalidValue {
            throw row.error(.invalidValue, field: field, "the label must be 0 or 1; fix the row or set skipInvalidRows: true")
        }
    }
}
