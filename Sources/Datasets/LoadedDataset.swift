// The records a dataset produced, with the load report.

import Tokenizers

/// Everything one dataset produced. Which arrays are filled depends on the schema
/// (see `DatasetSchema`).
public struct LoadedDataset: Sendable {
    public var schema: DatasetSchema
    public var pairs: [PreferencePair] = []
    public var safetyPairs: [SafetyPair] = []
    public var scoredResponses: [ScoredResponse] = []
    public var prompts: [PromptRecord] = []
    /// Pairs given as token ids (`tokens` schema); no template applies to them.
    public var tokenizedPairs: [TokenizedPair] = []
    public var demonstrations: [Demonstration] = []
    public var labelledCompletions: [LabelledCompletion] = []
    public var report = LoadReport()

    public init(schema: DatasetSchema) {
        self.schema = schema
    }

    /// The pairs about one aspect.
    public func pairs(_ aspect: PreferenceAspect) -> [PreferencePair] {
        pairs.filter { $0.aspect == aspect }
    }

    /// The distinct prompts: `prompts` if the schema gave any, else the prompts of the pairs,
    /// scored responses and safety pairs in first-seen order.
    public var distinctPrompts: [PromptRecord] {
        if !prompts.isEmpty { return prompts }
        var seen = Set<String>()
        var out: [PromptRecord] = []
        func add(_ id: String, _ prompt: [ChatMessage], _ text: String?, _ source: SourceLocation) {
            let key = text ?? PromptRecord.key(for: prompt)
            if seen.insert(key).inserted {
                out.append(PromptRecord(id: id, prompt: prompt, promptText: text, source: source))
            }
        }
        for p in pairs { add(p.id, p.prompt, p.promptText, p.source) }
        for p in safetyPairs { add(p.id, p.prompt, p.promptText, p.source) }
        for r in scoredResponses { add(r.id, r.prompt, r.promptText, r.source) }
        for d in demonstrations { add(d.id, d.prompt, d.promptText, d.source) }
        return out
    }

    /// Fills the report's output counts from the arrays.
    mutating func countOutputs() {
        report.pairs = pairs.count
        report.safetyPairs = safetyPairs.count
        report.scoredResponses = scoredResponses.count
        report.prompts = prompts.count
        report.demonstrations = demonstrations.count
        report.labelledCompletions = labelledCompletions.count
    }
}
