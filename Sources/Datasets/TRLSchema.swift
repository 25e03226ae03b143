// TRL preference rows: prompt/chosen/rejected as text or as chat message lists.

import Tokenizers

/// The `trl` schema: TRL's preference dataset conventions.
///
/// - Standard: `{"prompt": "…", "chosen": "…", "rejected": "…"}`.
/// - Conversational: `prompt` is a message list ending with the user's turn; `chosen`/`rejected`
///   are message lists holding the assistant reply, either alone or after the prompt's messages
///   (`[prompt…, reply]`). A plain-text prompt matches a leading single user message.
/// - Implicit prompt (no `prompt` field): conversational `chosen`/`rejected` whose shared leading
///   messages are the prompt. Text rows need a prompt (use `hh-rlhf` for dialogue text).
/// After the prompt, each completion must be exactly one assistant message.
/// Column names come from `DatasetOptions.columns` (`prompt`, `chosen`, `rejected`, `id`).
public enum TRLSchema {
    /// Loads `paths` (JSONL or CSV; message lists in CSV cells as JSON text).
    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .trl)
        var report = LoadReport()
        let c = options.columns
        try RowLoop.forEachRow(in: paths, options: options, report: &report) { row, report in
            let pair = try self.pair(from: row, columns: c, aspect: options.aspect)
            if RowLoop.keepPair(chosen: pair.chosen, rejected: pair.rejected, options: options, report: &report) {
                dataset.pairs.append(pair)
            }
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }

    /// Converts one row to a pair.
    public static func pair(from row: DataRow, columns c: ColumnNames = ColumnNames(),
                            aspect: PreferenceAspect = .general) throws -> PreferencePair {
        let chosenField = try row.textOrMessages(c.chosen)
        let rejectedField = try row.textOrMessages(c.rejected)
        var prompt: [ChatMessage]
        var promptText: String?
        if row.has(c.prompt) {
            switch try row.textOrMessages(c.prompt) {
            case .text(let t):
                prompt = [.user(RowLoop.trimmed(t))]
                promptText = t
            case .messages(let m):
                guard !m.isEmpty else {
                    throw row.error(.invalidValue, field: c.prompt, "the prompt message list is empty")
                }
                prompt = m
            }
        } else {
            guard case .messages(let cm) = chosenField, case .messages(let rm) = rejectedField else {
                throw row.error(.missingField, field: c.prompt,
                                "a row without a '\(c.prompt)' needs conversational chosen/rejected message lists; add the prompt, or use schema hh-rlhf for \\n\\nHuman:/\\n\\nAssistant: dialogue text")
            }
            var shared = 0
            while shared < min(cm.count, rm.count) - 1, cm[shared] == rm[shared] { shared += 1 }
            guard shared > 0 else {
                throw row.error(.missingField, field: c.prompt,
                                "the row has no '\(c.prompt)' and chosen/rejected share no leading messages, so the prompt is unknown; add the prompt column")
            }
            prompt = Array(cm[..<shared])
        }
        let chosen = try completion(chosenField, prompt: prompt, row: row, field: c.chosen)
        let rejected = try completion(rejectedField, prompt: prompt, row: row, field: c.rejected)
        return PreferencePair(id: RowLoop.rowID(row, column: c.id), prompt: prompt, promptText: promptText,
                              chosen: chosen, rejected: rejected, aspect: aspect, source: row.location)
    }

    /// The assistant reply of a completion field, after removing the prompt's messages if repeated.
    static func completion(_ field: TextOrMessages, prompt: [ChatMessage], row: DataRow, field name: String) throws -> String {
        switch field {
        case .text(let t):
            return RowLoop.trimmed(t)
        case .messages(let m):
            var rest = m[...]
            if m.count > 1 {
                let head = Array(m.prefix(prompt.count))
                let plainPrompt = prompt.count == 1 && prompt[0].role == .user
                if head == prompt {
                    rest = m.dropFirst(prompt.count)
                } else if plainPrompt, m.first?.role == .user,
                          RowLoop.trimmed(m[0].content) == RowLoop.trimmed(prompt[0].content) {
                    rest = m.dropFirst()
                } else {
                    throw row.error(.invalidValue, field: name,
                                    "the completion has \(m.count) messages whose leading turns differ from the prompt; give only the assistant reply, or the prompt's messages followed by it")
                }
            }
            guard rest.count == 1, let reply = rest.first else {
                throw row.error(.invalidValue, field: name,
                                "the completion has \(rest.count) messages after the prompt; expected exactly one assistant message")
            }
            guard reply.role == .assistant else {
                throw row.error(.invalidValue, field: name,
                                "the completion's message has role '\(reply.role.rawValue)'; expected 'assistant'")
            }
            return RowLoop.trimmed(reply.content)
        }
    }
}
