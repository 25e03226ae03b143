// PKU-SafeRLHF rows: two responses with safety labels, a helpfulness and a harmlessness preference.

import Tokenizers

/// The `pku-saferlhf` schema (algorithms.md §5.6):
/// `prompt, response_0, response_1, is_response_0_safe, is_response_1_safe, better_response_id,
/// safer_response_id` (ids 0 or 1; booleans as JSON booleans or true/false/1/0 text).
///
/// Each row yields a helpfulness pair (better ≻ worse), a harmlessness pair (safer ≻ unsafer),
/// a `SafetyPair` with both safety labels (cost-model records), and two `ScoredResponse`s with
/// `isSafe` (KTO rows). A row whose safer response is labelled unsafe while the other is safe is an
/// error (`inconsistentLabels`) — it would train the cost model against its own labels.
/// Identical responses are dropped from the pairs (counted) but kept as scored responses.
public enum PKUSafeRLHFSchema {
    public static let fields = ["prompt", "response_0", "response_1", "is_response_0_safe",
                                "is_response_1_safe", "better_response_id", "safer_response_id"]

    /// Loads `paths` (JSONL or CSV).
    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .pkuSafeRLHF)
        var report = LoadReport()
        try RowLoop.forEachRow(in: paths, options: options, report: &report) { row, report in
            let promptText = try row.string("prompt")
            let responses = [RowLoop.trimmed(try row.string("response_0")), RowLoop.trimmed(try row.string("response_1"))]
            let safe = [try row.bool("is_response_0_safe"), try row.bool("is_response_1_safe")]
            let better = try responseID(row, "better_response_id")
            let safer = try responseID(row, "safer_response_id")
            let unsafer = 1 - safer
            if !safe[safer] && safe[unsafer] {
                throw row.error(.inconsistentLabels, field: "safer_response_id",
                                "safer_response_id is \(safer) but response_\(safer) is labelled unsafe while response_\(unsafer) is safe; fix the labels or set skipInvalidRows: true to leave the row out")
            }
            let id = RowLoop.rowID(row, column: options.columns.id)
            let prompt: [ChatMessage] = [.user(RowLoop.trimmed(promptText))]
            for i in 0..<2 {
                dataset.scoredResponses.append(ScoredResponse(
                    id: "\(id)#\(i)", prompt: prompt, promptText: promptText, response: responses[i],
                    isSafe: safe[i], source: row.location))
            }
            if options.dropEmptyResponses, responses.contains(where: RowLoop.isBlank) {
                report.droppedEmptyResponse += 1
                dataset.scoredResponses.removeLast(2)
                return
            }
            if options.dropIdenticalResponses, responses[0] == responses[1] {
                report.droppedIdenticalResponses += 1
                return
            }
            dataset.pairs.append(PreferencePair(
                id: "\(id)/helpful", prompt: prompt, promptText: promptText, chosen: responses[better],
                rejected: responses[1 - better], aspect: .helpfulness, source: row.location))
            let safety = SafetyPair(
                id: "\(id)/safe", prompt: prompt, promptText: promptText, safer: responses[safer],
                unsafer: responses[unsafer], saferIsSafe: safe[safer], unsaferIsSafe: safe[unsafer], source: row.location)
            dataset.pairs.append(safety.preferencePair)
            dataset.safetyPairs.append(safety)
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }

    private static func responseID(_ row: DataRow, _ field: String) throws -> Int {
        let value = try row.int(field)
        guard value == 0 || value == 1 else {
            throw row.error(.invalidValue, field: field, "the value is \(value); expected 0 or 1 (which of response_0 / response_1)")
        }
        return value
    }
}
