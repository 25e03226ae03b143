import Foundation
import Tokenizers

// One entry point: load any schema from paths with options.

/// Loads datasets by schema name.
public enum DatasetLoader {
    /// Loads `paths` (files or directories) in `schema` with `options`.
    ///
    /// - Throws: `DatasetError` naming the file, line and field of the first invalid row (unless
    ///   `options.skipInvalidRows`), or a file/configuration problem.
    public static func load(_ schema: DatasetSchema, paths: [String],
                            options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        try options.validate()
        var loaded: LoadedDataset
        switch schema {
        case .trl: loaded = try TRLSchema.load(paths: paths, options: options)
        case .hhRLHF: loaded = try HHRLHFSchema.load(paths: paths, options: options)
        case .pkuSafeRLHF: loaded = try PKUSafeRLHFSchema.load(paths: paths, options: options)
        case .xstest: loaded = try XSTestSchema.load(paths: paths, options: options)
        case .pyritHarm: loaded = try PyRITHarmSchema.load(paths: paths, options: options)
        case .scores: loaded = try ScoresSchema.load(paths: paths, options: options)
        case .prompts: loaded = try PromptsSchema.load(paths: paths, options: options)
        case .tokens: loaded = try TokensSchema.load(paths: paths, options: options)
        case .refusalDirection: loaded = try RefusalDirectionSchema.load(paths: paths, options: options)
        case .safetyTunedLlamas: loaded = try SafetyTunedLlamasSchema.load(paths: paths, options: options)
        case .coconot: loaded = try CoCoNotSchema.load(paths: paths, options: options)
        case .jailbreakBench: loaded = try JailbreakBenchSchema.load(paths: paths, options: options)
        case .alpacaEval: loaded = try AlpacaEvalSchema.load(paths: paths, options: options)
        case .redInstruct: loaded = try RedInstructSchema.load(paths: paths, options: options)
        }
        loaded.applyFilters(options)
        if options.excludesEvaluationPrompts(for: schema) {
            let holdout = options.evaluationXSTestHoldout ?? EvaluationPromptFilter.defaultXSTestHoldout
            try EvaluationPromptFilter.standard(xstestHoldout: holdout).apply(to: &loaded)
        }
        return loaded
    }
}

extension LoadedDataset {
    /// The key `excludeHeldOutPrompts` hashes: the last user turn, trimmed (what `dualign eval` uses).
    public static func heldOutKey(_ prompt: [ChatMessage]) -> String {
        (prompt.last { $0.role == .user }?.content ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Applies `aspects` and `excludeHeldOutPrompts`, keeping the report's output counts in step.
    mutating func applyFilters(_ options: DatasetOptions) {
        if let aspects = options.aspects {
            pairs = pairs.filter { aspects.contains($0.aspect) }
            if !aspects.contains(.harmlessness) { safetyPairs = [] }
        }
        if let split = options.excludeHeldOutPrompts, split.fraction > 0 {
            // One pass per kind: keep what the split does not hold out, and count the held-out records
            // and the distinct held-out prompts they ask.
            var heldOutPrompts = Set<String>()
            var leftOut = 0
            func filter<T>(_ records: [T], _ prompt: (T) -> [ChatMessage]) -> [T] {
                records.filter { record in
                    let key = Self.heldOutKey(prompt(record))
                    guard split.isHeldOut(key) else { return true }
                    heldOutPrompts.insert(key)
                    leftOut += 1
                    return false
                }
            }
            pairs = filter(pairs, \.prompt)
            safetyPairs = filter(safetyPairs, \.prompt)
            scoredResponses = filter(scoredResponses, \.prompt)
            prompts = filter(prompts, \.prompt)
            demonstrations = filter(demonstrations, \.prompt)
            labelledCompletions = filter(labelledCompletions, \.prompt)
            report.leftOutByHeldOutSplit = leftOut
            report.heldOutSplitPrompts = heldOutPrompts.count
        }
        if options.aspects != nil || options.excludeHeldOutPrompts != nil { countOutputs() }
    }
}
