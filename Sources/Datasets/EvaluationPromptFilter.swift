// Keeps evaluation prompts out of training data: drops records whose prompt matches one, and counts.

import Foundation
import Tokenizers

/// What `EvaluationPromptFilter` dropped from one dataset.
public struct EvaluationOverlap: Equatable, Sendable, CustomStringConvertible {
    /// A dropped training prompt and the evaluation prompt it matched (for the log).
    public struct Sample: Equatable, Sendable {
        public var prompt: String
        public var evaluationPrompt: String
        public var set: PromptSetName
        public var kind: PromptMatchKind
        public var similarity: Double
    }

    /// How many samples are kept.
    public static let maxSamples = 50

    /// Records dropped (pairs, safety pairs, scored responses, prompts, demonstrations, labelled completions).
    public var records = 0
    /// Distinct training prompts dropped, per evaluation set and kind of match.
    public var prompts: [PromptSetName: [PromptMatchKind: Int]] = [:]
    /// The first `maxSamples` dropped prompts.
    public var samples: [Sample] = []

    public init() {}

    /// Distinct training prompts dropped because they match a prompt of `set` (any kind).
    public func prompts(matching set: PromptSetName) -> Int { prompts[set]?.values.reduce(0, +) ?? 0 }

    /// Distinct training prompts dropped in all.
    public var totalPrompts: Int { prompts.values.flatMap(\.values).reduce(0, +) }

    /// Adds another dataset's counts.
    public mutating func merge(_ other: EvaluationOverlap) {
        records += other.records
        for (set, kinds) in other.prompts {
            for (kind, n) in kinds { prompts[set, default: [:]][kind, default: 0] += n }
        }
        samples += other.samples.prefix(max(0, Self.maxSamples - samples.count))
    }

    /// `12 records, 8 prompts (advbench: 5 exact + 1 near; harmbench: 2 exact)`.
    public var description: String {
        let sets = PromptSetName.allCases.compactMap { set -> String? in
            guard let kinds = prompts[set], !kinds.isEmpty else { return nil }
            return "\(set.rawValue): " + PromptMatchKind.allCases.compactMap { k in kinds[k].map { "\($0) \(k.rawValue)" } }.joined(separator: " + ")
        }
        return "\(records) records, \(totalPrompts) prompts (\(sets.joined(separator: "; ")))"
    }
}

/// Drops from a loaded dataset every record whose prompt is an evaluation prompt or a near duplicate
/// of one (`PromptMatchIndex`), so that what `dualign eval` measures was never trained on.
///
/// Every user turn of a record's prompt is checked (a multi-turn dialogue that asks an evaluation
/// prompt in any turn goes). The standard set (`standard`) is what `dualign eval` asks by default:
/// AdvBench and HarmBench from the `launch/assets.sh prompts` cache and the held-out XSTest prompts
/// from the data root.
public struct EvaluationPromptFilter: Sendable {
    public let prompts: [EvalPrompt]
    private let index: PromptMatchIndex

    public init(prompts: [EvalPrompt]) {
        self.prompts = prompts
        self.index = PromptMatchIndex(prompts.map(\.text))
    }

    /// The evaluation prompt `text` matches, with how, or nil.
    public func match(_ text: String) -> (prompt: EvalPrompt, match: PromptMatch)? {
        guard let m = index.match(text) else { return nil }
        return (prompts[m.entry], m)
    }

    /// Removes matching records from `dataset` and records the counts in `dataset.report.evaluationOverlap`.
    public func apply(to dataset: inout LoadedDataset) {
        var overlap = dataset.report.evaluationOverlap
        var verdicts: [String: Bool] = [:]
        var counted = Set<String>()
        func keep(_ prompt: [ChatMessage]) -> Bool {
            let key = PromptRecord.key(for: prompt)
            if let verdict = verdicts[key] { return verdict }
            var found: (prompt: EvalPrompt, match: PromptMatch, text: String)?
            for message in prompt where message.role == .user {
                guard let m = match(message.content) else { continue }
                if found == nil || m.match.kind < found!.match.kind { found = (m.prompt, m.match, message.content) }
            }
            verdicts[key] = found == nil
            if let found, counted.insert(key).inserted {
                overlap.prompts[found.prompt.set, default: [:]][found.match.kind, default: 0] += 1
                if overlap.samples.count < EvaluationOverlap.maxSamples {
                    overlap.samples.append(EvaluationOverlap.Sample(
                        prompt: found.text, evaluationPrompt: found.prompt.text, set: found.prompt.set,
                        kind: found.match.kind, similarity: found.match.similarity))
                }
            }
            return found == nil
        }
        func filter<T>(_ items: inout [T], _ prompt: (T) -> [ChatMessage]) {
            let before = items.count
            items = items.filter { keep(prompt($0)) }
            overlap.records += before - items.count
        }
        filter(&dataset.pairs) { $0.prompt }
        filter(&dataset.safetyPairs) { $0.prompt }
        filter(&dataset.scoredResponses) { $0.prompt }
        filter(&dataset.prompts) { $0.prompt }
        filter(&dataset.demonstrations) { $0.prompt }
        filter(&dataset.labelledCompletions) { $0.prompt }
        dataset.report.evaluationOverlap = overlap
        dataset.countOutputs()
    }

    /// The held-out XSTest split `dualign eval` uses by default (`--xstest-holdout 0.3 --holdout-seed 11`).
    public static let defaultXSTestHoldout = try! HeldOutSplit(fraction: 0.3, seed: 11)

    /// The files of the standard evaluation set.
    public struct Files: Hashable, Sendable {
        public var advbench: String
        public var harmbench: String
        public var xstest: String

        /// AdvBench and HarmBench in the asset cache (`launch/assets.sh prompts`), XSTest in the data root.
        ///
        /// - Throws: `DatasetError` naming `DUALIGN_DATA` when the data root is unusable.
        public static func standard(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Files {
            let prompts = DataRoot.cacheDirectory(environment: environment).appendingPathComponent("prompts")
            let xstest: String
            do {
                xstest = try DataRoot.path("xstest/xstest_prompts.csv", environment: environment)
            } catch let e as DataRootError {
                throw DatasetError(.invalidConfiguration, file: e.subject, field: "excludeEvaluationPrompts",
                                   "the held-out XSTest prompts must be kept out of training, but \(e.description)")
            }
            return Files(advbench: prompts.appendingPathComponent("adv_bench.prompt").path,
                         harmbench: prompts.appendingPathComponent("harmbench_prompts.txt").path, xstest: xstest)
        }
    }

    private struct CacheKey: Hashable {
        var files: Files
        var holdoutFraction: Double
        var holdoutSeed: UInt64
    }

    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var cache: [CacheKey: EvaluationPromptFilter] = [:]

    /// The filter of the standard evaluation set: every AdvBench and HarmBench prompt and the XSTest
    /// prompts `xstestHoldout` holds out. Loaded once per process and files.
    ///
    /// - Throws: `DatasetError` telling the user to run `launch/assets.sh prompts` when the prompt
    ///   files are missing (training must not silently skip the check), or naming `DUALIGN_DATA`.
    public static func standard(xstestHoldout: HeldOutSplit = defaultXSTestHoldout,
                                environment: [String: String] = ProcessInfo.processInfo.environment) throws -> EvaluationPromptFilter {
        let files = try Files.standard(environment: environment)
        return try load(files, xstestHoldout: xstestHoldout)
    }

    /// The filter of the prompts in `files` (AdvBench, HarmBench, held-out XSTest), cached per process.
    public static func load(_ files: Files, xstestHoldout: HeldOutSplit) throws -> EvaluationPromptFilter {
        let key = CacheKey(files: files, holdoutFraction: xstestHoldout.fraction, holdoutSeed: xstestHoldout.seed)
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let cached = cache[key] { return cached }
        for path in [files.advbench, files.harmbench] where !FileManager.default.fileExists(atPath: path) {
            throw DatasetError(.invalidConfiguration, file: path, field: "excludeEvaluationPrompts",
                               "the evaluation prompts are missing, so training data cannot be checked against them; run `launch/assets.sh prompts` (or set excludeEvaluationPrompts: false to train without the check)")
        }
        var prompts: [EvalPrompt] = []
        do {
            prompts += try PromptSets.loadAdvBench(files.advbench)
            prompts += try PromptSets.loadHarmBench(files.harmbench)
            prompts += try PromptSets.loadXSTest(files.xstest, heldOut: xstestHoldout)
        } catch let e as PromptSetError {
            throw DatasetError(.invalidConfiguration, file: e.file, line: e.line, field: "excludeEvaluationPrompts",
                               "cannot read the evaluation prompts: \(e.message); run `launch/assets.sh prompts` and `launch/assets.sh data` to restore them")
        }
        let filter = EvaluationPromptFilter(prompts: prompts)
        cache[key] = filter
        return filter
    }
}
