// XSTest labelled completions: refusal/compliance pairs across models for each prompt.

import Foundation
import Tokenizers

/// The `xstest` schema: XSTest's `xstest_prompts.csv` (`id,prompt,type,label,…`) and its
/// `model_completions/*.csv` (`id,type,prompt,completion,…,final_label`), in any order; files are
/// told apart by their header (a `completion` column). Directories are expanded.
///
/// Each completion's prompt is labelled `safe` or `unsafe` from, in order: a `label` column in the
/// completions file, the prompts file (joined by id — `v2-12` matches `12` — or else by prompt
/// text), or the `type` (`contrast_*` types are XSTest's unsafe prompts). The model is a `model`
/// column, or the file name after `completions_` (`xstest_v2_completions_gpt4.csv` → `gpt4`).
///
/// Completions of one prompt (same id and prompt text) by different models are paired:
/// unsafe prompts give refusal ≻ compliance (aspect harmlessness, plus a `SafetyPair` with the
/// refusal safe and the compliance unsafe); safe prompts give compliance ≻ refusal (aspect
/// helpfulness: over-refusal, plus an unranked `SafetyPair` with both answers safe). `final_label` ∈ {1_full_compliance, 2_full_refusal,
/// 3_partial_refusal}; partial refusals are skipped or count as refusals (`partialRefusal`).
public enum XSTestSchema {
    /// A completion's annotation.
    public enum Verdict: String, Sendable {
        case compliance = "1_full_compliance"
        case refusal = "2_full_refusal"
        case partialRefusal = "3_partial_refusal"

        /// Parses `final_label` (`1_full_compliance`, or just `1`, `full_compliance`).
        public init?(label: String) {
            let t = label.trimmingCharacters(in: .whitespaces).lowercased()
            for v in [Verdict.compliance, .refusal, .partialRefusal] {
                let number = String(v.rawValue.prefix(1)), name = String(v.rawValue.dropFirst(2))
                if t == v.rawValue || t == number || t == name { self = v; return }
            }
            return nil
        }
    }

    private struct PromptInfo {
        var id: String
        var text: String
        var label: String
        var type: String?
        var source: SourceLocation
    }

    private struct Completion {
        var model: String
        var text: String
        var verdict: Verdict
        var source: SourceLocation
    }

    private struct Group {
        var id: String
        var prompt: String
        var label: String
        var type: String?
        var completions: [Completion] = []
    }

    /// Loads the prompts file(s) and completion files among `paths` (plus `options.xstestPrompts`).
    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .xstest)
        var report = LoadReport()
        var files = try RowLoop.expand(paths, extensions: ["csv"])
        if let extra = options.xstestPrompts { files.insert(extra, at: 0) }
        var promptFiles: [RowSource] = [], completionFiles: [RowSource] = []
        for path in files {
            let source = try RowSource(path: path, format: .csv)
            let header = source.csvHeader ?? []
            if header.contains("completion") {
                guard header.contains("final_label") else {
                    throw DatasetError(.missingField, file: path, line: 1, field: "final_label",
                                       "the completions file has no 'final_label' column; XSTest completions need final_label (1_full_compliance, 2_full_refusal, 3_partial_refusal)")
                }
                completionFiles.append(source)
            } else if header.contains("prompt") && header.contains("label") {
                promptFiles.append(source)
            } else {
                throw DatasetError(.unsupportedFormat, file: path, line: 1,
                                   "the header (\(header.joined(separator: ","))) is neither XSTest prompts (id,prompt,type,label,…) nor completions (id,type,prompt,completion,…,final_label)")
            }
        }
        guard !completionFiles.isEmpty else {
            throw DatasetError(.invalidConfiguration, file: files.joined(separator: ", "), field: "paths",
                               "no XSTest completions file given (a CSV with 'completion' and 'final_label'); add model_completions/ to the paths")
        }

        // Prompts: by id and by text.
        var byID: [String: PromptInfo] = [:], byText: [String: PromptInfo] = [:]
        for source in promptFiles {
            try RowLoop.forEachRow(in: source, options: options, report: &report) { row, report in
                let text = try row.string("prompt")
                let label = try normalizedLabel(row, field: "label")
                let id = row.has("id") ? try row.string("id") : "\(byID.count + 1)"
                let type = row.has("type") ? try row.string("type") : nil
                let info = PromptInfo(id: id, text: text, label: label, type: type, source: row.location)
                byID[id] = info
                byText[text] = byText[text] ?? info
                dataset.prompts.append(PromptRecord(id: "xstest:\(id)", prompt: [.user(RowLoop.trimmed(text))],
                                                    promptText: text, label: label, category: type, source: row.location))
            }
        }

        // Completions grouped by (id, prompt text), in first-seen order.
        var groups: [Group] = []
        var groupIndex: [String: Int] = [:]
        for source in completionFiles {
            let fileModel = modelName(fromFile: source.path)
            try RowLoop.forEachRow(in: source, options: options, report: &report) { row, report in
                let text = try row.string("prompt")
                let rawID = row.has("id") ? try row.string("id") : nil
                let type = row.has("type") ? try row.string("type") : nil
                let known = rawID.flatMap { byID[$0] ?? byID[shortID($0)] } ?? byText[text]
                let label: String
                if row.has("label") {
                    label = try normalizedLabel(row, field: "label")
                } else if let known {
                    label = known.label
                } else if let type {
                    label = type.hasPrefix("contrast_") ? "unsafe" : "safe"
                } else {
                    throw row.error(.missingField, field: "label",
                                    "cannot tell whether this prompt is safe or unsafe: the row has no label or type and no prompts file matches its id or text; add xstest_prompts.csv to the paths")
                }
                guard let verdict = Verdict(label: try row.string("final_label")) else {
                    throw row.error(.invalidValue, field: "final_label",
                                    "final_label is '\(DataRow.clip(try row.string("final_label")))'; expected 1_full_compliance, 2_full_refusal or 3_partial_refusal")
                }
                let completion = try row.string("completion")
                if options.dropEmptyResponses, RowLoop.isBlank(completion) {
                    report.droppedEmptyResponse += 1
                    return
                }
                let model = row.has("model") ? try row.string("model") : fileModel
                let id = known?.id ?? rawID.map(shortID) ?? "\(groups.count + 1)"
                let key = id + "\u{1F}" + text
                if groupIndex[key] == nil {
                    groupIndex[key] = groups.count
                    groups.append(Group(id: id, prompt: text, label: label, type: type ?? known?.type))
                }
                groups[groupIndex[key]!].completions.append(Completion(
                    model: model, text: RowLoop.trimmed(completion), verdict: verdict, source: row.location))
            }
        }

        for group in groups {
            var refusals: [Completion] = [], compliances: [Completion] = []
            for c in group.completions {
                switch c.verdict {
                case .compliance: compliances.append(c)
                case .refusal: refusals.append(c)
                case .partialRefusal:
                    if options.partialRefusal == .refusal { refusals.append(c) } else { report.skippedPartialRefusal += 1 }
                }
            }
            let unsafe = group.label == "unsafe"
            let prompt: [ChatMessage] = [.user(RowLoop.trimmed(group.prompt))]
            for r in refusals {
                for c in compliances where c.model != r.model {
                    let (chosen, rejected) = unsafe ? (r, c) : (c, r)
                    guard RowLoop.keepPair(chosen: chosen.text, rejected: rejected.text, options: options,
                                           report: &report) else { continue }
                    let id = "xstest:\(group.id):\(chosen.model)>\(rejected.model)"
                    dataset.pairs.append(PreferencePair(
                        id: id, prompt: prompt, promptText: group.prompt, chosen: chosen.text, rejected: rejected.text,
                        aspect: unsafe ? .harmlessness : .helpfulness, source: chosen.source, rejectedSource: rejected.source))
                    // Unsafe prompt: the refusal is safe, the compliance unsafe. Safe prompt: both are safe and
                    // neither is less harmful (an unranked pair: the cost model learns their signs only).
                    dataset.safetyPairs.append(SafetyPair(
                        id: id, prompt: prompt, promptText: group.prompt, safer: r.text, unsafer: c.text,
                        saferIsSafe: true, unsaferIsSafe: !unsafe, ranked: unsafe, source: r.source, unsaferSource: c.source))
                }
            }
            if promptFiles.isEmpty, let first = group.completions.first {
                dataset.prompts.append(PromptRecord(id: "xstest:\(group.id)", prompt: prompt, promptText: group.prompt,
                                                    label: group.label, category: group.type, source: first.source))
            }
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }

    /// `v2-12` → `12` (the completions files prefix the prompts file's ids).
    private static func shortID(_ id: String) -> String {
        guard let dash = id.lastIndex(of: "-") else { return id }
        return String(id[id.index(after: dash)...])
    }

    /// The model name from a completions file name.
    static func modelName(fromFile path: String) -> String {
        var name = RowLoop.fileName(path)
        for ext in [".gz", ".csv"] where name.lowercased().hasSuffix(ext) { name.removeLast(ext.count) }
        if let r = name.range(of: "completions_") { return String(name[r.upperBound...]) }
        return name
    }

    private static func normalizedLabel(_ row: DataRow, field: String) throws -> String {
        let raw = try row.string(field)
        let label = raw.trimmingCharacters(in: .whitespaces).lowercased()
        guard label == "safe" || label == "unsafe" else {
            throw row.error(.invalidValue, field: field, "the label is '\(DataRow.clip(raw))'; expected safe or unsafe")
        }
        return label
    }
}
