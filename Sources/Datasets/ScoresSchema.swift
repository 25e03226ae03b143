// Per-response score rows (reward and/or cost), for reward/cost regression and MoCAN score tables.

import Tokenizers

/// The `scores` schema: one response per row with `prompt`, `response` and at least one of
/// `reward`, `cost`, `is_safe` (column names from `DatasetOptions.columns`; empty cells are absent).
/// The prompt may be text or a message list.
public enum ScoresSchema {
    /// Loads `paths` (JSONL or CSV).
    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .scores)
        var report = LoadReport()
        let c = options.columns
        try RowLoop.forEachRow(in: paths, options: options, report: &report) { row, report in
            let (prompt, promptText) = try PromptsSchema.prompt(row, field: c.prompt)
            let response = try row.string(c.response)
            let reward = try row.optionalDouble(c.reward)
            let cost = try row.optionalDouble(c.cost)
            let isSafe = row.has(c.isSafe) ? try row.bool(c.isSafe) : nil
            guard reward != nil || cost != nil || isSafe != nil else {
                throw row.error(.missingField, field: c.reward,
                                "the row has none of '\(c.reward)', '\(c.cost)', '\(c.isSafe)'; give at least one score, or set the column names in the dataset options")
            }
            if options.dropEmptyResponses, RowLoop.isBlank(response) {
                report.droppedEmptyResponse += 1
                return
            }
            dataset.scoredResponses.append(ScoredResponse(
                id: RowLoop.rowID(row, column: c.id), prompt: prompt, promptText: promptText,
                response: RowLoop.trimmed(response), reward: reward, cost: cost, isSafe: isSafe, source: row.location))
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }
}
