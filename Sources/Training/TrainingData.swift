// The examples of a run: every dataset loaded, rendered with the chat template, truncated,
// tokenized, and split into training and held-out pairs — identically on every rank.

import Foundation
import Tensors
import Datasets
import Tokenizers

/// Tokenized training and held-out pairs, with what loading dropped.
public struct TrainingData {
    public var train: [TokenizedPair]
    public var eval: [TokenizedPair]
    public var report: LoadReport
    /// Each dataset's own report, as `data.datasets[i] (schema): …` (what the evaluation filter and the
    /// held-out split dropped from that source).
    public var sourceReports: [String] = []
    /// The dataset each held-out pair came from, an index into `sourceNames`.  // (eval.count)
    public var evalSources: [Int] = []
    /// A name per dataset of the config: its schema, with `#i` when two datasets share a schema.
    public var sourceNames: [String] = []

    /// Loads `config.data` for `task`: safety pairs (chosen = safer, with labels) and preference pairs, rendered
    /// with `template` (which only pre-tokenized `tokens` datasets can do without).
    public static func load(_ config: RunConfig, template: ChatTemplate?, baseDirectory: URL? = nil) throws -> TrainingData {
        let limits = TruncationLimits(maxLength: config.data.maxLength, maxPromptLength: config.data.maxPromptLength)
        let tokenizer = try template.map { try PairTokenizer(template: $0, limits: limits) }
        var train: [TokenizedPair] = [], eval: [TokenizedPair] = []
        var evalSources: [Int] = []
        var report = LoadReport()
        var sourceReports: [String] = []
        let schemas = config.data.datasets.map(\.schema.rawValue)
        let sourceNames = schemas.enumerated().map { i, s in schemas.filter { $0 == s }.count > 1 ? "\(s)#\(i)" : s }
        for (i, spec) in config.data.datasets.enumerated() {
            var loaded = try spec.load(relativeTo: baseDirectory)
            if spec.schema == .tokens {
                let split = try spec.heldOutSplit()
                for p in loaded.tokenizedPairs.compactMap({ limits.truncate($0, report: &loaded.report) }) {
                    if spec.evalFraction > 0 && split.isHeldOut(p.id) { eval.append(p); evalSources.append(i) } else { train.append(p) }
                }
                report.merge(loaded.report)
                sourceReports.append("data.datasets[\(i)] (\(spec.schema.rawValue)): \(loaded.report)")
                continue
            }
            guard let tokenizer else {
                throw RunConfigError(key: "data.datasets[\(i)]", message: "schema \(spec.schema.rawValue) holds text, and the model has no tokenizer to render it; give a model with its tokenizer (a GGUF, or tokenizer.json beside the weights) or pre-tokenized data (schema: tokens)")
            }
            // SFT learns from a dataset's demonstrations when it has them (each as a pair whose chosen side is the
            // demonstration), else from its pairs' chosen responses. Cost models learn from safety pairs (with their
            // labels) when a dataset has them; every other task from the preference pairs (a dataset's safety pairs
            // restate its harmlessness pairs).
            let pairs: [TokenizedPair]
            if config.task == .sft && !loaded.demonstrations.isEmpty {
                let asPairs = loaded.demonstrations.map { d in
                    PreferencePair(id: d.id, prompt: d.prompt, promptText: d.promptText, chosen: d.response, rejected: d.response, source: d.source)
                }
                pairs = tokenizer.tokenize(asPairs, report: &loaded.report)
            } else {
                let useSafety = config.task == .cost ? !loaded.safetyPairs.isEmpty : loaded.pairs.isEmpty
                pairs = useSafety ? tokenizer.tokenize(loaded.safetyPairs, report: &loaded.report)
                                  : tokenizer.tokenize(loaded.pairs, report: &loaded.report)
            }
            let split = try spec.heldOutSplit()
            for p in pairs {
                if spec.evalFraction > 0 && split.isHeldOut(p.id) { eval.append(p); evalSources.append(i) } else { train.append(p) }
            }
            report.merge(loaded.report)
            sourceReports.append("data.datasets[\(i)] (\(spec.schema.rawValue)): \(loaded.report)")
        }
        // Evenly spaced, so a cap keeps pairs from every listed dataset (not just the first).
        if let n = config.data.maxPairs, n > 0, train.count > n { train = (0..<n).map { train[$0 * train.count / n] } }
        // Evenly spaced too, so every dataset keeps held-out pairs for its own `eval/<source>/…` metrics.
        if eval.count > config.evaluation.maxPairs {
            let n = config.evaluation.maxPairs, picked = (0..<n).map { $0 * eval.count / n }
            eval = picked.map { eval[$0] }
            evalSources = picked.map { evalSources[$0] }
        }
        guard !train.isEmpty else {
            throw RunConfigError(key: "data.datasets", message: "no training pairs survived loading and truncation (\(report)); check the paths, schema and maxLength")
        }
        return TrainingData(train: train, eval: eval, report: report, sourceReports: sourceReports,
                            evalSources: evalSources, sourceNames: sourceNames)
    }

    /// The name of the dataset held-out pair `i` came from (nil when the data was built without sources).
    public func evalSourceName(_ i: Int) -> String? {
        i < evalSources.count && evalSources[i] < sourceNames.count ? sourceNames[evalSources[i]] : nil
    }

    /// A fingerprint of the token ids, for cache keys.
    public var fingerprint: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity((train.count + eval.count) * 64)
        for p in train + eval {
            for seq in [p.promptTokens, p.chosenTokens, p.rejectedTokens] {
                for t in seq { withUnsafeBytes(of: UInt32(t).littleEndian) { bytes.append(contentsOf: $0) } }
                bytes.append(0xFF)
            }
        }
        return StableHash.hex(bytes)
    }
}

extension LoadReport {
    /// Adds another report's counts (the first invalid-row samples are kept).
    mutating func merge(_ o: LoadReport) {
        files += o.files; rows += o.rows; pairs += o.pairs; safetyPairs += o.safetyPairs
        scoredResponses += o.scoredResponses; prompts += o.prompts; skippedInvalid += o.skippedInvalid
        droppedEmptyResponse += o.droppedEmptyResponse; droppedIdenticalResponses += o.droppedIdenticalResponses
        skippedPartialRefusal += o.skippedPartialRefusal; droppedPromptTooLong += o.droppedPromptTooLong
        truncatedPrompts += o.truncatedPrompts; truncatedResponses += o.truncatedResponses
        demonstrations += o.demonstrations; labelledCompletions += o.labelledCompletions
        droppedDisagreeingLabels += o.droppedDisagreeingLabels; skippedUnlabelled += o.skippedUnlabelled
        leftOutByHeldOutSplit += o.leftOutByHeldOutSplit; heldOutSplitPrompts += o.heldOutSplitPrompts
        evaluationOverlap.merge(o.evaluationOverlap)
        invalidRowSamples += o.invalidRowSamples.prefix(max(0, LoadReport.maxSamples - invalidRowSamples.count))
    }
}
