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
                dataset.demonstrations.append(Demonstration(
                    id: id, prompt: [.user(text)], promptText: text, response: RowLoop.trimmed(output),
                    model: try row.optionalString("generator") ?? folder, category: category, source: row.location))
            }
            if !more { break }
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
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
