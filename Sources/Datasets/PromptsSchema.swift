// Prompt-only rows (for sampling and evaluation).

import Tokenizers

/// The `prompts` schema: one prompt per row (`prompt` as text or a message list), with optional
/// `id`, `label` and `category` columns (names from `DatasetOptions.columns`).
public enum PromptsSchema {
    /// Loads `paths` (JSONL or CSV).
    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .prompts)
        var report = LoadReport()
        let c = options.columns
        try RowLoop.forEachRow(in: paths, options: options, report: &report) { row, report in
            let (prompt, promptText) = try prompt(row, field: c.prompt)
            let label = row.has(c.label) ? try row.string(c.label) : nil
            let category = row.has(c.category) ? try row.string(c.category) : nil
            dataset.prompts.append(PromptRecord(id: RowLoop.rowID(row, column: c.id), prompt: prompt, promptText: promptText,
                                                label: label, category: category, source: row.location))
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }

    /// A prompt field as messages (text becomes one user message) and its text if it was text.
    static func prompt(_ row: DataRow, field: String) throws -> ([ChatMessage], String?) {
        switch try row.textOrMessages(field) {
        case .text(let t):
            guard !RowLoop.isBlank(t) else { throw row.error(.invalidValue, field: field, "the prompt is empty") }
            return ([.user(RowLoop.trimmed(t))], t)
        case .messages(let m):
            guard !m.isEmpty else { throw row.error(.invalidValue, field: field, "the prompt message list is empty") }
            return (m, nil)
        }
    }
}
