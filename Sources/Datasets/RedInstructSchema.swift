// red-instruct's harmful questions: HarmfulQA (topic → subtopic → questions) and DangerousQA.

import Foundation
import Tokenizers

/// The `red-instruct` schema: declare-lab/red-instruct `harmful_questions/harmfulqa.json` (a JSON
/// object topic → subtopic → array of questions) and `dangerousqa.json` (a JSON array of questions),
/// Apache-2.0. Prompts only, each labelled `unsafe`, with category `topic/subtopic` (HarmfulQA) or
/// `dangerousqa`. A directory is searched for `.json` files.
public enum RedInstructSchema {
    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .redInstruct)
        var report = LoadReport()
        let files = try RowLoop.files(in: paths, what: "red-instruct question files (.json)") { $0.hasSuffix(".json") }
        for path in files {
            let document = try JSONDocument.load(path)
            report.files += 1
            let name = (RowLoop.fileName(path) as NSString).deletingPathExtension
            var groups: [(category: String, questions: [JSONNode])] = []
            switch document.kind {
            case .array(let questions):
                groups = [(name, questions)]
            case .object(let topics):
                for topic in topics {
                    guard case .object(let subtopics) = topic.value.kind else {
                        throw DatasetError(.unsupportedFormat, file: path, line: topic.value.line, field: topic.key,
                                           "the topic holds \(topic.value.typeName); HarmfulQA maps topic → subtopic → [questions]")
                    }
                    for subtopic in subtopics {
                        guard let questions = subtopic.value.elements else {
                            throw DatasetError(.unsupportedFormat, file: path, line: subtopic.value.line, field: subtopic.key,
                                               "the subtopic holds \(subtopic.value.typeName), expected an array of questions")
                        }
                        groups.append(("\(topic.key)/\(subtopic.key)", questions))
                    }
                }
            default:
                throw DatasetError(.unsupportedFormat, file: path, line: document.line,
                                   "expected an array of questions (DangerousQA) or topic → subtopic → questions (HarmfulQA); found \(document.typeName)")
            }
            var more = true
            for group in groups where more {
                var i = 0
                more = try RowLoop.forEachNode(group.questions, options: options, report: &report) { node, report in
                    defer { i += 1 }
                    guard let question = node.string, !RowLoop.isBlank(question) else {
                        throw DatasetError(.invalidValue, file: path, line: node.line,
                                           "the question is \(node.string == nil ? node.typeName : "empty"), expected text; fix it or set skipInvalidRows: true")
                    }
                    let text = RowLoop.trimmed(question)
                    dataset.prompts.append(PromptRecord(id: "red-instruct:\(name):\(group.category):\(i)", prompt: [.user(text)],
                                                        promptText: text, label: "unsafe", category: group.category,
                                                        source: SourceLocation(file: path, line: node.line)))
                }
            }
            if !more { break }
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }
}
