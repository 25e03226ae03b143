// PyRIT human harm scores: lower-harm ≻ higher-harm pairs among responses to one objective.

import Tokenizers

/// The `pyrit-harm` schema: PyRIT's `scorer_evals/harm/*.csv` (first line a `# dataset_version=…`
/// comment; columns `harm_category, objective, assistant_response, human_score_1[, _2, _3]`; some
/// files name a single column `human_score`; scores in [0, 1]).
///
/// A response's harm is the mean of its non-empty `human_score*` cells. Within one file, the
/// responses to one (harm_category, objective) are paired in file order: the lower-harm response is
/// chosen when the means differ by at least `harmScoreGap` (and differ at all). Pairs have aspect
/// harmlessness. Every response also becomes a `ScoredResponse` with `cost` = mean harm, and every
/// objective a `PromptRecord` with the harm category.
///
/// Files are grouped separately, so a file that repeats another's rows (PyRIT's
/// `mini_hate_speech.csv` is a subset of `hate_speech_multi_score.csv`) adds its own pairs.
///
/// To fetch the files (MIT licence; the package is not imported, only its CSVs are read):
/// ```
/// CACHE=${DUALIGN_CACHE:-$HOME/.cache/dualign}
/// python3 -m pip download --no-deps pyrit==1.1.0 -d "$CACHE/pip"
/// mkdir -p "$CACHE/pyrit/scorer_evals/harm"
/// unzip -o -j "$CACHE/pip/pyrit-1.1.0-py3-none-any.whl" 'pyrit/datasets/scorer_evals/harm/*.csv' \
///       -d "$CACHE/pyrit/scorer_evals/harm"
/// ```
public enum PyRITHarmSchema {
    private struct Scored {
        var category: String
        var objective: String
        var response: String
        var harm: Double
        var source: SourceLocation
    }

    /// Loads `paths` (CSV files or directories of them).
    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        try options.validate()
        var dataset = LoadedDataset(schema: .pyritHarm)
        var report = LoadReport()
        var seenPrompts = Set<String>()
        for path in try RowLoop.expand(paths, extensions: ["csv"]) {
            let source = try RowSource(path: path, format: .csv)
            let header = source.csvHeader ?? []
            let scoreColumns = header.filter { $0.hasPrefix("human_score") }
            guard !scoreColumns.isEmpty else {
                throw DatasetError(.missingField, file: path, line: 1, field: "human_score_1",
                                   "the header (\(header.joined(separator: ","))) has no human_score column; is this a PyRIT scorer_evals/harm file?")
            }
            var rows: [Scored] = []
            let more = try RowLoop.forEachRow(in: source, options: options, report: &report) { row, report in
                let objective = try row.string("objective")
                let response = try row.string("assistant_response")
                let category = row.has("harm_category") ? try row.string("harm_category") : ""
                var scores: [Double] = []
                for column in scoreColumns {
                    guard let s = try row.optionalDouble(column) else { continue }
                    guard (0...1).contains(s) else {
                        throw row.error(.invalidValue, field: column, "the score is \(s); harm scores lie in [0, 1]")
                    }
                    scores.append(s)
                }
                guard !scores.isEmpty else {
                    throw row.error(.missingField, field: scoreColumns[0],
                                    "the row has no human score (\(scoreColumns.joined(separator: ", ")) are all empty)")
                }
                if options.dropEmptyResponses, RowLoop.isBlank(response) {
                    report.droppedEmptyResponse += 1
                    return
                }
                let harm = scores.reduce(0, +) / Double(scores.count)
                let item = Scored(category: category, objective: objective, response: RowLoop.trimmed(response),
                                  harm: harm, source: row.location)
                rows.append(item)
                let prompt: [ChatMessage] = [.user(RowLoop.trimmed(objective))]
                dataset.scoredResponses.append(ScoredResponse(
                    id: "\(RowLoop.fileName(path)):\(row.line)", prompt: prompt, promptText: objective,
                    response: item.response, cost: harm, source: row.location))
                if seenPrompts.insert(category + "\u{1F}" + objective).inserted {
                    dataset.prompts.append(PromptRecord(id: "\(RowLoop.fileName(path)):\(row.line)", prompt: prompt,
                                                        promptText: objective, category: category, source: row.location))
                }
            }
            appendPairs(rows, file: path, options: options, pairs: &dataset.pairs, report: &report)
            if !more { break }
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }

    private static func appendPairs(_ rows: [Scored], file: String, options: DatasetOptions,
                                    pairs: inout [PreferencePair], report: inout LoadReport) {
        var order: [String] = []
        var groups: [String: [Scored]] = [:]
        for r in rows {
            let key = r.category + "\u{1F}" + r.objective
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(r)
        }
        let gap = options.harmScoreGap
        for key in order {
            let g = groups[key]!
            for i in g.indices {
                for j in g.indices where j > i {
                    let difference = abs(g[i].harm - g[j].harm)
                    guard difference > 1e-9, difference >= gap - 1e-9 else { continue }
                    let (chosen, rejected) = g[i].harm < g[j].harm ? (g[i], g[j]) : (g[j], g[i])
                    guard RowLoop.keepPair(chosen: chosen.response, rejected: rejected.response, options: options,
                                           report: &report) else { continue }
                    pairs.append(PreferencePair(
                        id: "\(RowLoop.fileName(file)):\(chosen.source.line)>\(rejected.source.line)",
                        prompt: [.user(RowLoop.trimmed(chosen.objective))], promptText: chosen.objective,
                        chosen: chosen.response, rejected: rejected.response, aspect: .harmlessness,
                        source: chosen.source, rejectedSource: rejected.source))
                }
            }
        }
    }
}
