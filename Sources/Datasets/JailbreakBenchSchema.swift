// JailbreakBench attack artifacts: responses of target models to jailbreak prompts, judged jailbroken or not.

import Foundation
import Tokenizers

/// The `jailbreakbench` schema: JailbreakBench/artifacts `attack-artifacts/<method>/<attack type>/<model>.json`
/// (MIT), each `{parameters: {method, model, …}, jailbreaks: [{index, goal, behavior, category, prompt,
/// response, jailbroken, …}]}`. A directory is searched for such files (`attack-info.json`,
/// `evaluation.json`, `submission.json` and the `test-artifact` placeholders are left out).
///
/// The prompt of every record is the behaviour's `goal` (the plain harmful request); the jailbreak
/// `prompt` that produced the response is not kept. Rows whose `response` is null (the attack
/// submitted nothing for that behaviour) count in `LoadReport.skippedUnlabelled`.
/// - Scored responses: (goal, response) with `isSafe` = not `jailbroken` (JailbreakBench's judge).
/// - Pairs on one goal: every jailbroken response is paired with a not-jailbroken response to the
///   same goal, taken in turn (round robin in file order), not jailbroken ≻ jailbroken, aspect
///   harmlessness, plus a `SafetyPair` with the judge's labels. "Not jailbroken" is the judge's
///   verdict: mostly refusals (about 3 in 4 open with one), otherwise off-topic or harmless answers.
/// - Prompts: each distinct goal, label `unsafe`, JailbreakBench's category.
public enum JailbreakBenchSchema {
    private struct Response {
        var id: String
        var goal: String
        var category: String?
        var text: String
        var jailbroken: Bool
        var source: SourceLocation
    }

    /// Whether a file under a directory is an attack artifact (`<method>/<type>/<model>.json`): a
    /// `.json` file other than a method's `attack-info.json`, `evaluation.json` or `submission.json`,
    /// and not one of the `test-artifact` placeholders.
    static func isArtifact(_ relative: String) -> Bool {
        let parts = relative.split(separator: "/")
        guard let name = parts.last, name.hasSuffix(".json") else { return false }
        return !parts.contains("test-artifact") && !["attack-info.json", "evaluation.json", "submission.json"].contains(String(name))
    }

    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .jailbreakBench)
        var report = LoadReport()
        let files = try RowLoop.files(in: paths, what: "JailbreakBench artifacts (<method>/<attack type>/<model>.json)", include: isArtifact)
        var responses: [Response] = []
        for path in files {
            let document = try JSONDocument.load(path)
            let items = try RowLoop.topArray(document, file: path, key: "jailbreaks", what: "a JailbreakBench artifact")
            let parameters = document.member("parameters")
            let method = parameters?.member("method")?.string ?? "unknown"
            let model = parameters?.member("model")?.string ?? (RowLoop.fileName(path) as NSString).deletingPathExtension
            report.files += 1
            let more = try RowLoop.forEachNode(items, options: options, report: &report) { node, report in
                let row = try RowLoop.objectRow(node, file: path, what: "a jailbreak object {goal, response, jailbroken}")
                let goal = try row.string("goal")
                guard !RowLoop.isBlank(goal) else { throw row.error(.invalidValue, field: "goal", "the goal is empty") }
                guard let response = try row.optionalString("response") else {
                    report.skippedUnlabelled += 1
                    return
                }
                let jailbroken = try row.bool("jailbroken")
                if options.dropEmptyResponses, RowLoop.isBlank(response) {
                    report.droppedEmptyResponse += 1
                    return
                }
                let index = RowLoop.rowID(row, column: "index")
                let r = Response(id: "jailbreakbench:\(method)/\(model):\(index)", goal: RowLoop.trimmed(goal),
                                 category: try row.optionalString("category"), text: RowLoop.trimmed(response),
                                 jailbroken: jailbroken, source: row.location)
                responses.append(r)
                dataset.scoredResponses.append(ScoredResponse(id: r.id, prompt: [.user(r.goal)], promptText: r.goal,
                                                              response: r.text, isSafe: !jailbroken, source: r.source))
            }
            if !more { break }
        }

        var order: [String] = []
        var groups: [String: [Response]] = [:]
        for r in responses {
            if groups[r.goal] == nil {
                order.append(r.goal)
                dataset.prompts.append(PromptRecord(id: "jailbreakbench:\(order.count - 1)", prompt: [.user(r.goal)],
                                                    promptText: r.goal, label: "unsafe", category: r.category, source: r.source))
            }
            groups[r.goal, default: []].append(r)
        }
        for goal in order {
            let group = groups[goal]!
            let safe = group.filter { !$0.jailbroken }, unsafe = group.filter(\.jailbroken)
            guard !safe.isEmpty else { continue }
            for (k, bad) in unsafe.enumerated() {
                let good = safe[k % safe.count]
                guard RowLoop.keepPair(chosen: good.text, rejected: bad.text, options: options, report: &report) else { continue }
                let id = "\(good.id)>\(bad.id)"
                dataset.pairs.append(PreferencePair(id: id, prompt: [.user(goal)], promptText: goal, chosen: good.text,
                                                    rejected: bad.text, aspect: .harmlessness, source: good.source,
                                                    rejectedSource: bad.source, category: bad.category))
                dataset.safetyPairs.append(SafetyPair(id: id, prompt: [.user(goal)], promptText: goal, safer: good.text,
                                                      unsafer: bad.text, saferIsSafe: true, unsaferIsSafe: false,
                                                      source: good.source, unsaferSource: bad.source))
            }
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }
}
