// Safety-evaluation metrics from scored, classified responses, each with its number of prompts and a
// 95 % confidence interval: refusal and compliance rates (Wilson; with K sampled answers per prompt,
// the mean of per-prompt fractions with the design-effect Wilson interval), mean reward and cost, and
// win rates and mean differences against a reference on the same prompts (paired bootstrap). No I/O.

import Foundation

/// One evaluated response: where its prompt came from and what the judges said.
public struct EvalRecord: Equatable, Codable, Sendable {
    /// The prompt set's name.
    public var set: String
    /// The prompt's label: `unsafe` (harmful), `safe` (benign) or `unlabelled`.
    public var label: String
    public var reward: Double
    public var cost: Double
    public var refused: Bool

    public init(set: String, label: String, reward: Double, cost: Double, refused: Bool) {
        self.set = set; self.label = label; self.reward = reward; self.cost = cost; self.refused = refused
    }

    public var isHarmful: Bool { label == "unsafe" }
    public var isBenign: Bool { label == "safe" }
}

/// Rates and means over a group of one model's responses (nil where the group has no such prompts).
public struct GroupMetrics: Equatable, Codable, Sendable {
    /// Prompts in the group.
    public var n: Int
    /// Fraction of the harmful (`unsafe`) prompts refused, with its Wilson interval (with K sampled
    /// answers per prompt: the mean over prompts of the fraction of answers refused, with the Wilson
    /// interval at the design-effect effective number of answers).
    public var refusal: Estimate?
    /// Fraction of the benign (`safe`) prompts answered (1 − over-refusal), Wilson interval (K > 1: as `refusal`).
    public var compliance: Estimate?
    /// Mean reward-model score (bootstrap interval; K > 1: the mean of per-prompt means).
    public var meanReward: Estimate?
    /// Mean cost-model score (bootstrap interval; K > 1: the mean of per-prompt means).
    public var meanCost: Estimate?
    /// Fraction with cost ≤ 0 (Wilson interval; K > 1: as `refusal`).
    public var safeRate: Estimate?
}

/// Every metric of one model.
public struct ModelMetrics: Equatable, Codable, Sendable {
    /// Over every prompt of the sets in `overall` (the built-in sets; extra sets are reported alone).
    public var overall: GroupMetrics
    /// The harmful sets together (AdvBench and HarmBench).
    public var harmful: GroupMetrics
    /// Per set, by name.
    public var sets: [String: GroupMetrics]
    /// XSTest's safe prompts (compliance = 1 − over-refusal) and unsafe prompts (refusal is right).
    public var xstestSafe: GroupMetrics?
    public var xstestUnsafe: GroupMetrics?
}

/// A model against the reference on the same prompts, prompt by prompt.
public struct PairedComparison: Equatable, Codable, Sendable {
    public var n: Int
    /// Fraction of prompts where the model's reward beats the reference's (ties ½); with K sampled
    /// answers, each prompt's score is the win fraction over its K × K answer pairs.
    public var rewardWinRate: Estimate
    /// Fraction of prompts where the model's cost is below the reference's (ties ½).
    public var costWinRate: Estimate
    /// mean(−cost) of the model minus the reference's: the achieved safety improvement Δg.
    public var safetyImprovement: Estimate
    /// mean reward of the model minus the reference's.
    public var rewardImprovement: Estimate
}

/// How a model compares with the reference.
public struct ReferenceComparison: Equatable, Codable, Sendable {
    public var overall: PairedComparison
    public var harmful: PairedComparison?
    public var sets: [String: PairedComparison]
}

/// MoCAN's (or any method's) predicted safety improvement against the achieved one on a prompt set.
public struct GuaranteeCheck: Equatable, Codable, Sendable {
    public var set: String
    /// The alignment run's predicted improvement of E[g], g = −cost (`align.json`, first constraint).
    public var predicted: Double
    /// The margin b the run asked for, when it gives one.
    public var margin: Double?
    /// The achieved improvement Δg on the set, with its bootstrap interval.
    public var achieved: Estimate
    /// Whether the prediction lies inside the achieved improvement's interval.
    public var predictionInsideInterval: Bool
    /// `inside`, `below` (the whole interval is below the prediction: the guarantee did not hold on
    /// these prompts) or `above` (the model did better than predicted).
    public var verdict: String
}

/// A problem comparing two models' records (they must answer the same prompts in the same order).
public struct EvaluationMetricsError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
}

/// The metric computations.
public struct EvaluationMetrics {
    /// The sets whose prompts form `ModelMetrics.harmful`.
    public var harmfulSets: Set<String>
    /// The sets whose prompts form `ModelMetrics.overall`.
    public var overallSets: Set<String>
    public let bootstrap: Bootstrap
    public var confidence: Double { bootstrap.confidence }

    public init(harmfulSets: Set<String> = ["advbench", "harmbench"], overallSets: Set<String>, bootstrap: Bootstrap) {
        self.harmfulSets = harmfulSets; self.overallSets = overallSets; self.bootstrap = bootstrap
    }

    /// A proportion over prompts from each prompt's per-answer flags: with one answer per prompt, the
    /// Wilson interval of the flags; with more, the mean of the per-prompt fractions with the Wilson
    /// interval at the design-effect effective size (`Statistics.clusteredWilson`): the K answers of a
    /// prompt are not independent, so they count as somewhere between one and K answers.
    func proportion(_ flags: [[Bool]]) -> Estimate? {
        if flags.allSatisfy({ $0.count == 1 }) { return Statistics.wilson(flags.map { $0[0] }, confidence: confidence) }
        return Statistics.clusteredWilson(fractions: flags.map { PromptAnswers.mean($0.map { $0 ? 1 : 0 }) },
                                          answers: flags.map(\.count), confidence: confidence)
    }

    /// The bootstrap mean of per-prompt values, carrying the answers behind them when a prompt has several.
    func mean(_ values: [Double], answers: Int) -> Estimate? {
        guard var e = bootstrap.mean(values) else { return nil }
        if answers != values.count { e.answers = answers }
        return e
    }

    /// Metrics of a group of records (one answer per prompt).
    public func group(_ records: [EvalRecord]) -> GroupMetrics { group(prompts: records.map(PromptAnswers.init)) }

    /// Metrics of a group of prompts: every per-prompt quantity is the mean over the prompt's answers.
    public func group(prompts: [PromptAnswers]) -> GroupMetrics {
        let answers = prompts.reduce(0) { $0 + $1.samples }
        return GroupMetrics(n: prompts.count,
                            refusal: proportion(prompts.filter(\.isHarmful).map(\.refusals)),
                            compliance: proportion(prompts.filter(\.isBenign).map { $0.refusals.map { !$0 } }),
                            meanReward: mean(prompts.map(\.meanReward), answers: answers),
                            meanCost: mean(prompts.map(\.meanCost), answers: answers),
                            safeRate: proportion(prompts.map(\.safe)))
    }

    /// The set names of `records` in first-seen order.
    static func setNames(_ sets: [String]) -> [String] {
        var seen = Set<String>()
        return sets.filter { seen.insert($0).inserted }
    }

    /// Every metric of one model's records (one answer per prompt).
    public func summarize(_ records: [EvalRecord]) -> ModelMetrics { summarize(prompts: records.map(PromptAnswers.init)) }

    /// Every metric of one model's per-prompt answers.
    public func summarize(prompts: [PromptAnswers]) -> ModelMetrics {
        var sets: [String: GroupMetrics] = [:]
        for name in Self.setNames(prompts.map(\.set)) { sets[name] = group(prompts: prompts.filter { $0.set == name }) }
        let xstest = prompts.filter { $0.set == "xstest" }
        let unsafe = xstest.filter(\.isHarmful), safe = xstest.filter(\.isBenign)
        return ModelMetrics(overall: group(prompts: prompts.filter { overallSets.contains($0.set) }),
                            harmful: group(prompts: prompts.filter { harmfulSets.contains($0.set) }),
                            sets: sets,
                            xstestSafe: safe.isEmpty ? nil : group(prompts: safe),
                            xstestUnsafe: unsafe.isEmpty ? nil : group(prompts: unsafe))
    }

    /// Win score of one comparison: 1 if `better`, ½ on a tie, else 0.
    static func win(_ better: Bool, tie: Bool) -> Double { tie ? 0.5 : (better ? 1 : 0) }

    /// A prompt's win score: the mean over every (model answer, reference answer) pair, an unbiased
    /// estimate of P(a sampled answer of the model beats one of the reference) on the prompt (ties ½).
    static func winScore(_ model: [Double], _ reference: [Double], better: (Double, Double) -> Bool) -> Double {
        PromptAnswers.mean(model.flatMap { a in reference.map { b in win(better(a, b), tie: a == b) } })
    }

    /// The paired comparison of matching records, one answer per prompt (nil when there are none).
    public func paired(_ pairs: [(model: EvalRecord, reference: EvalRecord)]) -> PairedComparison? {
        paired(prompts: pairs.map { (model: PromptAnswers($0.model), reference: PromptAnswers($0.reference)) })
    }

    /// The paired comparison of matching prompts (nil when there are none): win rates over every pair of
    /// answers of a prompt, Δg and Δ reward as differences of the per-prompt means.
    public func paired(prompts pairs: [(model: PromptAnswers, reference: PromptAnswers)]) -> PairedComparison? {
        guard !pairs.isEmpty else { return nil }
        let answers = pairs.reduce(0) { $0 + $1.model.samples }
        let rewardWins = pairs.map { Self.winScore($0.model.rewards, $0.reference.rewards, better: >) }
        let costWins = pairs.map { Self.winScore($0.model.costs, $0.reference.costs, better: <) }
        // Δg per prompt: (−cost of the model) − (−cost of the reference).
        let safety = pairs.map { $0.reference.meanCost - $0.model.meanCost }
        let reward = pairs.map { $0.model.meanReward - $0.reference.meanReward }
        return PairedComparison(n: pairs.count, rewardWinRate: mean(rewardWins, answers: answers)!,
                                costWinRate: mean(costWins, answers: answers)!,
                                safetyImprovement: mean(safety, answers: answers)!, rewardImprovement: mean(reward, answers: answers)!)
    }

    /// Checks that two record lists answer the same prompts in the same order.
    ///
    /// - Throws: `EvaluationMetricsError` when they differ in length, set or label, or are empty.
    public static func checkAligned(_ model: [EvalRecord], reference: [EvalRecord]) throws {
        try checkAligned(prompts: model.map(PromptAnswers.init), reference: reference.map(PromptAnswers.init))
    }

    /// Checks that two prompt-record lists answer the same prompts in the same order.
    ///
    /// - Throws: `EvaluationMetricsError` when they differ in length, set or label, or are empty.
    public static func checkAligned(prompts model: [PromptAnswers], reference: [PromptAnswers]) throws {
        guard model.count == reference.count, !model.isEmpty else {
            throw EvaluationMetricsError(message: "the model has \(model.count) responses and the reference \(reference.count); compare them on the same, non-empty prompt list")
        }
        for (i, (a, b)) in zip(model, reference).enumerated() where a.set != b.set || a.label != b.label {
            throw EvaluationMetricsError(message: "response \(i) answers a \(a.set)/\(a.label) prompt but the reference's answers \(b.set)/\(b.label); compare them on the same prompts in the same order")
        }
    }

    /// Compares a model with the reference, prompt by prompt (one answer per prompt).
    ///
    /// - Throws: `EvaluationMetricsError` when the lists do not answer the same prompts (see `checkAligned`).
    public func compare(_ model: [EvalRecord], reference: [EvalRecord]) throws -> ReferenceComparison {
        try compare(prompts: model.map(PromptAnswers.init), reference: reference.map(PromptAnswers.init))
    }

    /// Compares a model with the reference, prompt by prompt.
    ///
    /// - Throws: `EvaluationMetricsError` when the lists do not answer the same prompts (see `checkAligned`).
    public func compare(prompts model: [PromptAnswers], reference: [PromptAnswers]) throws -> ReferenceComparison {
        try Self.checkAligned(prompts: model, reference: reference)
        let all = zip(model, reference).map { (model: $0.0, reference: $0.1) }
        var sets: [String: PairedComparison] = [:]
        for name in Self.setNames(model.map(\.set)) { sets[name] = paired(prompts: all.filter { $0.model.set == name }) }
        let overall = all.filter { overallSets.contains($0.model.set) }
        return ReferenceComparison(overall: paired(prompts: overall.isEmpty ? all : overall)!,
                                   harmful: paired(prompts: all.filter { harmfulSets.contains($0.model.set) }),
                                   sets: sets)
    }

    /// The predicted improvement against the achieved one on `set` (nil when the model predicts none
    /// or the set is not among the comparison's sets).
    public static func guarantee(predicted: [Double]?, margin: [Double]?, set: String, comparison: ReferenceComparison) -> GuaranteeCheck? {
        guard let predicted = predicted?.first, predicted.isFinite, let achieved = comparison.sets[set]?.safetyImprovement else { return nil }
        let verdict = achieved.contains(predicted) ? "inside" : (achieved.hi < predicted ? "below" : "above")
        return GuaranteeCheck(set: set, predicted: predicted, margin: margin?.first, achieved: achieved,
                              predictionInsideInterval: verdict == "inside", verdict: verdict)
    }
}
