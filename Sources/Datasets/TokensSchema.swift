// Pre-tokenized preference pairs: token ids a user (or a test) prepared, used as they are.

/// The `tokens` schema: JSONL (or CSV cells holding JSON lists) with `prompt_ids`, `chosen_ids` and
/// `rejected_ids` — token ids of the rendered prompt and of each response (end-of-turn included if wanted).
/// No chat template or tokenizer is applied; truncation limits still are (see `PairTokenizer`'s rules).
public enum TokensSchema {
    /// Loads `paths`; every id must be ≥ 0 (the model checks the vocabulary size).
    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .tokens)
        var report = LoadReport()
        try RowLoop.forEachRow(in: paths, options: options, report: &report) { row, report in
            let prompt = try row.intArray("prompt_ids"), chosen = try row.intArray("chosen_ids"), rejected = try row.intArray("rejected_ids")
            for (field, ids) in [("prompt_ids", prompt), ("chosen_ids", chosen), ("rejected_ids", rejected)] {
                if ids.isEmpty { throw DatasetError(.invalidValue, file: row.file, line: row.line, field: field, "the list is empty; every part of a pair needs at least one token") }
                if let bad = ids.first(where: { $0 < 0 || $0 > Int(Int32.max) }) {
                    throw DatasetError(.invalidValue, file: row.file, line: row.line, field: field, "token id \(bad) is not a valid id (0 … 2³¹−1)")
                }
            }
            dataset.tokenizedPairs.append(TokenizedPair(id: RowLoop.rowID(row, column: options.columns.id), promptTokens: prompt,
                                                        chosenTokens: chosen, rejectedTokens: rejected, aspect: options.aspect,
                                                        source: row.location))
        }
        dataset.report = report
        dataset.report.pairs = dataset.tokenizedPairs.count
        return dataset
    }
}

extension TruncationLimits {
    /// Applies the limits to a pre-tokenized pair as `PairTokenizer` does to rendered ones (left-truncated
    /// prompt, right-truncated responses, dropped when the prompt leaves no room); counts into `report`.
    public func truncate(_ pair: TokenizedPair, report: inout LoadReport) -> TokenizedPair? {
        var p = pair
        if let maxPrompt = maxPromptLength, p.promptTokens.count > maxPrompt {
            p.promptTokens = Array(p.promptTokens.suffix(maxPrompt))
            report.truncatedPrompts += 1
        }
        if let maxLength {
            let budget = maxLength - p.promptTokens.count
            guard budget >= 1 else { report.droppedPromptTooLong += 1; return nil }
            if p.chosenTokens.count > budget || p.rejectedTokens.count > budget { report.truncatedResponses += 1 }
            p.chosenTokens = Array(p.chosenTokens.prefix(budget))
            p.rejectedTokens = Array(p.rejectedTokens.prefix(budget))
        }
        return p
    }
}
