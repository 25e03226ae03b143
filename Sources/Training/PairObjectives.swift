// The objectives over tokenized preference pairs: SFT (the chosen response), and the base of DPO,
// reward and cost models (both responses). A pair is one example; its rows are its chosen sequence
// and, unless SFT, its rejected sequence (rows 0..<m chosen, m..<2m rejected).

import Foundation
import Datasets
import Models

/// The shared part of every pair objective: the data and the rows of a set of pairs.
public class PairObjective: TrainingObjective {
    public let config: RunConfig
    /// Training and held-out pairs (identical on every rank).
    public let data: TrainingData
    let padToken: Int32
    /// Whether each pair contributes its rejected sequence too.
    let bothResponses: Bool

    init(config: RunConfig, data: TrainingData, padToken: Int32, bothResponses: Bool) {
        self.config = config; self.data = data; self.padToken = padToken; self.bothResponses = bothResponses
    }

    public var name: String { config.task.rawValue }
    public var request: ModelRequest { .logProbs }
    public var trainCount: Int { data.train.count }
    public var evalCount: Int { data.eval.count }
    public var dataReport: String { ([data.report.description] + data.sourceReports).joined(separator: "\n  ") }
    public var evalMetricKeys: Set<String>? { nil }
    public var preparedKey: String { "" }
    public func evalSource(_ i: Int) -> String? { data.evalSourceName(i) }

    /// The pairs of a split.
    func pairs(_ split: ExampleSplit) -> [TokenizedPair] { split == .train ? data.train : data.eval }

    public func prepare(_ context: ObjectiveContext) throws {}
    public func beginStep(_ plan: inout StepPlan, context: ObjectiveContext) throws {}
    public func checkpointState() throws -> Data? { nil }
    public func restore(checkpointState: Data) throws {}
    /// A pair's loss reads its own rows, its fixed reference log-probs (the initial or a given model, not
    /// trained on this data during the run) and the loss settings: per-example, so DP-SGD's accounting holds.
    public func privacyRefusal(config: RunConfig) -> RunConfigError? { nil }

    public func microBatch(_ examples: [Int], split: ExampleSplit) throws -> MicroBatch {
        let all = pairs(split)
        let chosen = examples.map { all[$0] }
        var sequences = chosen.map { $0.chosenSequence.map(Int32.init) }
        var starts = chosen.map(\.responseStart)
        var rowExample = Array(chosen.indices)
        if bothResponses {
            sequences += chosen.map { $0.rejectedSequence.map(Int32.init) }
            starts += starts
            rowExample += chosen.indices
        }
        return MicroBatch(examples: examples, batch: TokenBatch(sequences: sequences, padToken: padToken),
                          responseStarts: starts, rowExample: rowExample)
    }

    public func evaluate(_ batch: MicroBatch, outputs: ModelOutputs, split: ExampleSplit) throws -> ObjectiveResult {
        preconditionFailure("\(type(of: self)) must override evaluate")
    }

    /// Sums token log-probs into per-row sequence log-probs (mean when `reduction` is `.mean`).  // (R)
    static func sequenceSums(_ outputs: ModelOutputs, rows: Int, reduction: SequenceReduction) -> (sums: [Double], counts: [Int]) {
        var sums = [Double](repeating: 0, count: rows), counts = [Int](repeating: 0, count: rows)
        for (n, r) in outputs.targets.sequence.enumerated() { sums[r] += Double(outputs.logProbs[n]); counts[r] += 1 }
        if reduction == .mean { for r in sums.indices where counts[r] > 0 { sums[r] /= Double(counts[r]) } }
        return (sums, counts)
    }

    /// Spreads ∂ℓ/∂(sequence log-prob of row r) over the row's targets (÷ count for `.mean`).      // (N)
    static func tokenGradients(_ dRows: [Double], outputs: ModelOutputs, counts: [Int], reduction: SequenceReduction) -> [Float] {
        outputs.targets.sequence.map { r in Float(reduction == .mean ? dRows[r] / Double(counts[r]) : dRows[r]) }
    }
}

/// Supervised fine-tuning on the chosen responses. `sft.normalization: tokens` (the default): the mean
/// next-token loss over every response token of the global batch (not per micro-batch, so accumulation and
/// ranks do not change the weighting). `example`: each example's mean over its own response tokens, then the
/// mean over examples — the form DP-SGD needs.
public final class SFTObjective: PairObjective {
    /// Response tokens of the current step's global batch.
    private var stepTokens = 1
    /// Examples of the current step's global batch.
    private var globalExamples = 1
    /// Response tokens of the whole held-out split.
    private let evalTokens: Int

    public init(config: RunConfig, data: TrainingData, padToken: Int32) {
        evalTokens = max(1, data.eval.reduce(0) { $0 + $1.chosenSequence.count - $1.responseStart })
        super.init(config: config, data: data, padToken: padToken, bothResponses: false)
    }

    public override var evalMetricKeys: Set<String>? { [] }

    public override func beginStep(_ plan: inout StepPlan, context: ObjectiveContext) throws {
        stepTokens = max(1, plan.global.reduce(0) { $0 + data.train[$1].chosenSequence.count - data.train[$1].responseStart })
        globalExamples = plan.global.count
    }

    /// Refuses the global-token normalisation under DP: there ℓ_i = (G/N)·Σ_{t∈i} −log p_t, and N, the response
    /// tokens of the whole batch, depends on the other examples' lengths (and G on the Poisson batch size), so
    /// example i's gradient is not a function of example i alone: adding or removing one example rescales
    /// every other example's gradient, and the clipped-sum sensitivity C no longer bounds the change.
    public override func privacyRefusal(config: RunConfig) -> RunConfigError? {
        guard config.sft.normalization == .tokens else { return nil }
        return RunConfigError(key: "sft.normalization", message: "SFT's default loss is the mean over the response tokens of the whole batch, which makes each example's gradient depend on the other examples' lengths; DP-SGD's per-example clipping bounds one example's effect only when its loss is its own. Set sft.normalization: example (each example's mean over its own tokens) to train SFT with dp")
    }

    public override func evaluate(_ batch: MicroBatch, outputs: ModelOutputs, split: ExampleSplit) throws -> ObjectiveResult {
        if config.sft.normalization == .example {
            // ℓ_i = −(1/n_i)·Σ_{t∈i} log p_t over example i's n_i response tokens.
            var counts = [Int](repeating: 0, count: batch.examples.count)
            for r in outputs.targets.sequence { counts[batch.rowExample[r]] += 1 }
            var losses = [Double](repeating: 0, count: batch.examples.count)
            var d = [Float](repeating: 0, count: outputs.targets.count)
            for (n, r) in outputs.targets.sequence.enumerated() {
                let e = batch.rowExample[r], w = 1 / Double(counts[e])
                losses[e] -= w * Double(outputs.logProbs[n])
                d[n] = Float(-w)
            }
            return ObjectiveResult(losses: losses, dLogProbs: d)
        }
        // ℓ_i = (G / N)·Σ_{t∈i} −log p_t, so (1/G)·Σ_i ℓ_i = Σ_t −log p_t / N over the N tokens of the G examples.
        let weight = split == .train ? Double(globalExamples) / Double(stepTokens) : Double(evalCount) / Double(evalTokens)
        var losses = [Double](repeating: 0, count: batch.examples.count)
        for (n, r) in outputs.targets.sequence.enumerated() { losses[batch.rowExample[r]] -= weight * Double(outputs.logProbs[n]) }
        let d = [Float](repeating: Float(-weight), count: outputs.targets.count)
        return ObjectiveResult(losses: losses, dLogProbs: d)
    }
}
