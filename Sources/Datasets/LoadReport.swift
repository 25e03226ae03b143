// Counts of what loading (and tokenizing) a dataset kept, dropped and skipped.

/// What happened while loading and tokenizing a dataset.
public struct LoadReport: Equatable, Sendable, CustomStringConvertible {
    /// How many invalid-row errors are kept in `invalidRowSamples`.
    public static let maxSamples = 10

    /// Files read.
    public var files = 0
    /// Data rows read (header, comment and blank lines excluded), including invalid ones.
    public var rows = 0
    /// Preference pairs produced (after tokenization: pairs kept).
    public var pairs = 0
    /// Safety pairs produced.
    public var safetyPairs = 0
    /// Scored responses produced.
    public var scoredResponses = 0
    /// Prompt records produced.
    public var prompts = 0
    /// Demonstrations (prompt and response to imitate) produced.
    public var demonstrations = 0
    /// Labelled completions (responses with the source's refusal verdict) produced.
    public var labelledCompletions = 0
    /// Malformed rows skipped because `skipInvalidRows` is on.
    public var skippedInvalid = 0
    /// Pairs/rows dropped because a response was empty: whitespace-only text when loading, or no
    /// response token left (besides the end-of-turn token) after tokenization.
    public var droppedEmptyResponse = 0
    /// Pairs dropped because chosen and rejected are the same text.
    public var droppedIdenticalResponses = 0
    /// XSTest completions left out as partial refusals.
    public var skippedPartialRefusal = 0
    /// Pairs left out because the source's labels contradict the pair (refusal-direction: the
    /// "refusal" was not labelled a refusal, or the ablated "compliance" was labelled a refusal or safe).
    public var droppedDisagreeingLabels = 0
    /// Rows left out because the source gives them no usable label or response (JailbreakBench
    /// behaviours with no submitted prompt, AlpacaEval ties and missing preferences).
    public var skippedUnlabelled = 0
    /// Records dropped because their prompt matches an evaluation prompt (`excludeEvaluationPrompts`).
    public var evaluationOverlap = EvaluationOverlap()
    /// Records left out by `excludeHeldOutPrompts` (the evaluation's split of this source), and their distinct prompts.
    public var leftOutByHeldOutSplit = 0
    public var heldOutSplitPrompts = 0
    /// Pairs dropped because the (truncated) prompt leaves no room for a response within `maxLength`.
    public var droppedPromptTooLong = 0
    /// Pairs whose prompt was left-truncated.
    public var truncatedPrompts = 0
    /// Pairs with at least one right-truncated response.
    public var truncatedResponses = 0
    /// The first `maxSamples` skipped errors, for the log.
    public var invalidRowSamples: [DatasetError] = []

    public init() {}

    /// Records one skipped invalid row.
    public mutating func recordInvalid(_ error: DatasetError) {
        skippedInvalid += 1
        if invalidRowSamples.count < Self.maxSamples { invalidRowSamples.append(error) }
    }

    /// One line of counts, naming only the non-zero drop reasons.
    public var description: String {
        var parts = ["\(files) files", "\(rows) rows", "\(pairs) pairs"]
        if safetyPairs > 0 { parts.append("\(safetyPairs) safety pairs") }
        if scoredResponses > 0 { parts.append("\(scoredResponses) scored responses") }
        if prompts > 0 { parts.append("\(prompts) prompts") }
        if demonstrations > 0 { parts.append("\(demonstrations) demonstrations") }
        if labelledCompletions > 0 { parts.append("\(labelledCompletions) labelled completions") }
        for (name, n) in [("skipped invalid", skippedInvalid), ("dropped empty response", droppedEmptyResponse),
                          ("dropped identical responses", droppedIdenticalResponses),
                          ("skipped partial refusals", skippedPartialRefusal),
                          ("dropped disagreeing labels", droppedDisagreeingLabels), ("skipped unlabelled", skippedUnlabelled),
                          ("dropped prompt too long", droppedPromptTooLong),
                          ("truncated prompts", truncatedPrompts), ("truncated responses", truncatedResponses)] where n > 0 {
            parts.append("\(n) \(name)")
        }
        if evaluationOverlap.records > 0 { parts.append("dropped as evaluation overlap: \(evaluationOverlap)") }
        if leftOutByHeldOutSplit > 0 {
            parts.append("left out as the evaluation's held-out split: \(leftOutByHeldOutSplit) records, \(heldOutSplitPrompts) prompts")
        }
        return parts.joined(separator: ", ")
    }
}
