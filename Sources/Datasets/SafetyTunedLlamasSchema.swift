// safety-tuned-llamas: harmful instructions with safe answers (demonstrations), and its prompt sets.

import Foundation
import Tokenizers

/// The `safety-tuned-llamas` schema: vinid/safety-tuned-llamas (data licence CC BY-NC 4.0).
///
/// - `safety_only_data_Instructions.json`: a JSON array of `{instruction, input, output}` — harmful
///   instructions (from Anthropic's red-team prompts) with safe GPT-3.5 answers, most of them
///   refusals. Each row gives a `Demonstration` (the prompt is the instruction, followed by the input
///   after a blank line when there is one) and a `PromptRecord` labelled `unsafe`. There is no
///   rejected answer: preference pairs come from the policy's own samples, later.
/// - `evaluation/*.json` (`{"instructions": [...], "tags"?: [...]}`): prompt sets, each instruction a
///   `PromptRecord` with the file's name as category (a `tags` entry when present) and label `safe`
///   for `I-Alpaca` and `I-PhysicalSafetySafe`, `unsafe` for the other known sets.
///
/// A directory gives its training file and, if present, its `evaluation/` sets.
public enum SafetyTunedLlamasSchema {
    /// The training file's name.
    public static let trainingFile = "safety_only_data_Instructions.json"
    /// The benign evaluation sets; the other known sets are harmful.
    public static let safeSets: Set<String> = ["I-Alpaca", "I-PhysicalSafetySafe"]
    public static let unsafeSets: Set<String> = ["I-CoNa", "I-Controversial", "I-MaliciousInstructions", "I-PhysicalSafetyUnsafe", "Q-Harm"]

    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .safetyTunedLlamas)
        var report = LoadReport()
        let files = try RowLoop.files(in: paths, what: "\(trainingFile) or evaluation/*.json") { relative in
            relative == trainingFile || (relative.hasPrefix("evaluation/") && relative.hasSuffix(".json"))
        }
        for path in files {
            let document = try JSONDocument.load(path)
            report.files += 1
            let more: Bool
            if document.elements != nil {
                more = try loadTraining(document, file: path, options: options, dataset: &dataset, report: &report)
            } else if document.member("instructions") != nil {
                more = try loadPromptSet(document, file: path, options: options, dataset: &dataset, report: &report)
            } else {
                throw DatasetError(.unsupportedFormat, file: path, line: document.line,
                                   "expected the training array of {instruction, input, output} or an evaluation set {\"instructions\": [...]}; found \(document.typeName)")
            }
            if !more { break }
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }

    private static func loadTraining(_ document: JSONNode, file: String, options: DatasetOptions,
                                     dataset: inout LoadedDataset, report: inout LoadReport) throws -> Bool {
        try RowLoop.forEachNode(document.elements!, options: options, report: &report) { node, report in
            let row = try RowLoop.objectRow(node, file: file, what: "an {instruction, input, output} object")
            let instruction = try row.string("instruction")
            let input = row.has("input") ? try row.string("input") : ""
            let output = try row.string("output")
            guard !RowLoop.isBlank(instruction) else { throw row.error(.invalidValue, field: "instruction", "the instruction is empty") }
            if options.dropEmptyResponses, RowLoop.isBlank(output) {
                report.droppedEmptyResponse += 1
                return
            }
            var text = RowLoop.trimmed(instruction)
            if !RowLoop.isBlank(input) { text += "\n\n" + RowLoop.trimmed(input) }
            let id = "safety-tuned-llamas:\(row.line)"
            dataset.demonstrations.append(Demonstration(id: id, prompt: [.user(text)], promptText: text,
                                                        response: RowLoop.trimmed(output), source: row.location))
            dataset.prompts.append(PromptRecord(id: id, prompt: [.user(text)], promptText: text, label: "unsafe",
                                                category: "safety-tuned-llamas", source: row.location))
        }
    }

    private static func loadPromptSet(_ document: JSONNode, file: String, options: DatasetOptions,
                                      dataset: inout LoadedDataset, report: inout LoadReport) throws -> Bool {
        let set = ((RowLoop.fileName(file)) as NSString).deletingPathExtension
        let label: String? = safeSets.contains(set) ? "safe" : unsafeSets.contains(set) ? "unsafe" : nil
        let items = try RowLoop.topArray(document, file: file, key: "instructions", what: "a safety-tuned-llamas evaluation set")
        let tags = document.member("tags")?.elements
        if let tags, tags.count != items.count {
            throw DatasetError(.invalidValue, file: file, line: document.member("tags")!.line, field: "tags",
                               "has \(tags.count) entries for \(items.count) instructions; they must pair up")
        }
        var i = 0
        return try RowLoop.forEachNode(items, options: options, report: &report) { node, report in
            defer { i += 1 }
            guard let text = node.string, !RowLoop.isBlank(text) else {
                throw DatasetError(.invalidValue, file: file, line: node.line, field: "instructions",
                                   "the instruction is \(node.string == nil ? node.typeName : "empty"), expected text; fix it or set skipInvalidRows: true")
            }
            let category = tags?[i].string.map { "\(set)/\($0)" } ?? set
            let prompt = RowLoop.trimmed(text)
            dataset.prompts.append(PromptRecord(id: "safety-tuned-llamas:\(set):\(i)", prompt: [.user(prompt)], promptText: prompt,
                                                label: label, category: category, source: SourceLocation(file: file, line: node.line)))
        }
    }
}
