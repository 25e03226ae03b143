// AlpacaEval: instructions answered by several generators, and GPT-4's pairwise preferences.

import Foundation
import Tokenizers

/// The `alpaca-eval` schema: tatsu-lab/alpaca_eval results (code Apache-2.0; outputs under their
/// generators' terms), JSON arrays told apart by their keys:
/// - `model_outputs.json`: `{instruction, output, generator, dataset}` → a `Demonstration` per row
///   (model = generator, category = the instruction's origin dataset);
/// - `annotations.json`: `{instruction, output_1, generator_1, output_2, generator_2, preference}`
///   (GPT-4 as annotator) → a helpfulness `PreferencePair`: preference 1 prefers output_1, 2 prefers
///   output_2; 0 or null (a tie or no verdict) counts in `LoadReport.skippedUnlabelled`.
/// Every distinct instruction is also a `PromptRecord` (label `safe`), for held-out helpfulness
/// evaluation. A directory is searched for `model_outputs.json` and `annotations.json` files.
/// With `generatorPairs`, two generators' answers to one instruction also make a helpfulness pair
/// (the first generator's answer chosen); an instruction one of them did not answer is counted in
/// `LoadReport.skippedUnlabelled`, and a generator with no answer at all is an error.
public enum AlpacaEvalSchema {
    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .alpacaEval)
        var report = LoadReport()
        let files = try RowLoop.files(in: paths, what: "AlpacaEval model_outputs.json or annotations.json files") {
            let name = ($0 as NSString).lastPathComponent
            return name == "model_outputs.json" || name == "annotations.json"
        }
        var seenPrompts = Set<String>()
        func addPrompt(_ text: String, category: String?, source: SourceLocation) {
            guard seenPrompts.insert(text).inserted else { return }
            dataset.prompts.append(PromptRecord(id: "alpaca-eval:\(seenPrompts.count - 1)", prompt: [.user(text)], promptText: text,
                                                label: "safe", category: category, source: source))
        }
        // generator → instruction → (answer, where it was read); only when generatorPairs asks for it.
        var answers: [String: [String: (String, SourceLocation)]] = [:]
        for path in files {
            let document = try JSONDocument.load(path)
            let items = try RowLoop.topArray(document, file: path, what: "AlpacaEval outputs or annotations")
            report.files += 1
            let folder = ((path as NSString).deletingLastPathComponent as NSString).lastPathComponent
            let more = try RowLoop.forEachNode(items, options: options, report: &report) { node, report in
                let row = try RowLoop.objectRow(node, file: path, what: "an AlpacaEval object")
                let instruction = try row.string("instruction")
                guard !RowLoop.isBlank(instruction) else { throw row.error(.invalidValue, field: "instruction", "the instruction is empty") }
                let text = RowLoop.trimmed(instruction)
                let category = try row.optionalString("dataset")
                let id = "alpaca-eval:\(folder)/\(RowLoop.fileName(path)):\(row.line)"
                addPrompt(text, category: category, source: row.location)
                if row.has("preference") || row.has("output_1") {
                    try annotation(row, id: id, text: text, category: category, options: options, dataset: &dataset, report: &report)
                    return
                }
                let output = try row.string("output")
                if options.dropEmptyResponses, RowLoop.isBlank(output) {
                    report.droppedEmptyResponse += 1
                    return
                }
                let generator = try row.optionalString("generator") ?? folder
                dataset.demonstrations.append(Demonstration(
                    id: id, prompt: [.user(text)], promptText: text, response: RowLoop.trimmed(output),
                    model: generator, category: category, source: row.location))
                if options.generatorPairs != nil { answers[generator, default: [:]][text] = (RowLoop.trimmed(output), row.location) }
            }
            if !more { break }
        }
        for g in options.generatorPairs ?? [] {
            try generatorPairs(g, answers: answers, paths: paths, options: options, dataset: &dataset, report: &report)
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }

    /// The pairs `g.chosen`'s answer ≻ `g.rejected`'s, in the order the instructions were first read.
    private static func generatorPairs(_ g: GeneratorPair, answers: [String: [String: (String, SourceLocation)]], paths: [String],
                                       options: DatasetOptions, dataset: inout LoadedDataset, report: inout LoadReport) throws {
        for name in [g.chosen, g.rejected] where answers[name] == nil {
            throw DatasetError(.invalidConfiguration, file: paths.joined(separator: ", "), field: "generatorPairs",
                               "no model_outputs.json row of generator '\(name)' was read; generators read: \(answers.keys.sorted().joined(separator: ", ")) (add that generator's model_outputs.json to paths)")
        }
        let better = answers[g.chosen]!, worse = answers[g.rejected]!
        for (k, record) in dataset.prompts.enumerated() {
            let text = record.promptText ?? ""
            guard let b = better[text], let w = worse[text] else {
                if better[text] != nil || worse[text] != nil { report.skippedUnlabelled += 1 }
                continue
            }
            let (chosen, location) = b, rejected = w.0
            guard RowLoop.keepPair(chosen: chosen, rejected: rejected, options: options, report: &report) else { continue }
            dataset.pairs.append(PreferencePair(id: "alpaca-eval:\(g.chosen)>\(g.rejected):\(k)", prompt: record.prompt,
                                                promptText: text, chosen: chosen, rejected: rejected,
                                                aspect: .helpfulness, source: location, category: record.category))
        }
    }

    private static func annotation(_ row: DataRow, id: String, text: String, category: String?, options: DatasetOptions,
                                   dataset: inout LoadedDataset, report: inout LoadReport) throws {
        let first = RowLoop.trimmed(try row.string("output_1"))
        let second = RowLoop.trimmed(try row.string("output_2"))
        guard let preference = try row.optionalDouble("preference"), preference != 0 else {
            report.skippedUnlabelled += 1
            return
        }
        let (chosen, rejected): (String, String)
        switch preference {
        case 1: (chosen, rejected) = (first, second)
        case 2: (chosen, rejected) = (second, first)
        default:
            throw row.error(.invalidValue, field: "preference",
                            "the preference is \(preference); AlpacaEval annotations use 1 (output_1 better), 2 (output_2 better) or 0/null (no verdict)")
        }
        guard RowLoop.keepPair(chosen: chosen, rejected: rejected, options: options, report: &report) else { return }
        dataset.pairs.append(PreferencePair(id: id, prompt: [.user(text)], promptText: text, chosen: chosen, rejected: rejected,
                                            aspect: .helpfulness, source: row.location, category: category))
    }
}
