// MoCAN (algorithms.md §1.3–1.5): sample K responses per prompt from the reference, score them with
// the reward and cost models, solve the dual on rank 0 for λ*, pseudo-label the preference pairs with
// r + λ*·g (g = −cost), and run one DPO from the reference with the same β.

import Foundation
import Alignment
import Datasets
import Distributed
import Training
import Rollout

/// The dual's outcome as a stage records it.
public struct DualStageResult: Codable, Equatable, Sendable {
    public var lambda: [Double]
    public var dual: Double?
    public var gradient: [Double]?
    /// Predicted improvement of E[g] over the reference under π_λ (per constraint).
    public var improvement: [Double]
    /// The margin b asked for (or implied by a threshold or a fixed λ).
    public var margin: [Double]
    public var referenceUtility: [Double]
    public var iterations: Int
    public var objective: Double?
}

/// Scores of a pair's two responses (y0 = the dataset's chosen, y1 = its rejected).
public struct PairScores: Codable, Equatable, Sendable {
    public var rewards: [[Float]]
    public var costs: [[Float]]

    /// Groups row scores from index `start` on in twos (the rows of `AlignmentContext.pairRows`).
    public init(rewards: [Float], costs: [Float], from start: Int = 0) {
        self.rewards = stride(from: start, to: rewards.count, by: 2).map { [rewards[$0], rewards[$0 + 1]] }
        self.costs = stride(from: start, to: costs.count, by: 2).map { [costs[$0], costs[$0 + 1]] }
    }

    /// P(y1 ≻ y0) = σ((r1 + λ·g1) − (r0 + λ·g0)) with g = −cost, for pair i.
    public func labelProbability(_ i: Int, lambda: Double) -> Double {
        pseudoLabelProbability(r0: Double(rewards[i][0]), g0: -Double(costs[i][0]), r1: Double(rewards[i][1]), g1: -Double(costs[i][1]),
                               lambda: lambda)
    }
}

/// `dualign align mocan`.
public struct MoCANPipeline {
    public let context: AlignmentContext

    public init(context: AlignmentContext) { self.context = context }

    public func run() throws {
        let c = context.config, a = c.align, run = context.run, comm = context.comm
        let prompts = try context.dualPrompts()
        let pairs = try context.pairs()
        let (sampleInputs, sampleCount) = try context.referenceSamplesStage("1-samples", prompts: prompts)
        let scoreInputs = AlignmentContext.hash([sampleInputs, "\(sampleCount)", AlignmentContext.fileIdentity(a.rewardModel),
                                                 AlignmentContext.fileIdentity(a.costModel), "\(a.scoreMaxLength)", "\(pairs.count)",
                                                 AlignmentContext.json(c.data.datasets)])
        let scores: PairScores = try run.stage("2-scores", inputs: scoreInputs) { dir in
            let samples = try PromptSample.read(jsonLines: run.stageDirectory("1-samples").appendingPathComponent("samples.jsonl"))
            let rows = samples.map { ScoringRow(prompt: $0.prompt, response: $0.response) } + AlignmentContext.pairRows(pairs)
            let (rewards, costs, tokens) = try context.rewardsAndCosts(rows)
            var result = PairScores(rewards: [], costs: [])
            if let rewards, let costs {
                let n = samples.count, K = a.samplesPerPrompt
                // One line per prompt: the K rewards and one utility list, g = −cost.
                let lines = stride(from: 0, to: n, by: K).map { i in
                    DualPrompt(rewards: rewards[i..<i + K].map(Double.init), utilities: [costs[i..<i + K].map { -Double($0) }])
                }
                try Data(DualScoreFile.format(lines).utf8).write(to: dir.appendingPathComponent("dual-scores.jsonl"), options: .atomic)
                result = PairScores(rewards: rewards, costs: costs, from: n)
            }
            return (result, StageBudget(forwardTokens: tokens))
        }
        let dualInputs = AlignmentContext.hash([scoreInputs, "\(c.dpo.beta)", "\(String(describing: a.margin)) \(String(describing: a.threshold)) \(String(describing: a.marginFraction)) \(String(describing: a.lambda))"])
        let dual: DualStageResult = try run.stage("3-dual", inputs: dualInputs) { _ in
            guard comm.rank == 0 else { return (DualStageResult(lambda: [], improvement: [], margin: [], referenceUtility: [], iterations: 0), StageBudget()) }
            let file = run.stageDirectory("2-scores").appendingPathComponent("dual-scores.jsonl").path
            return (try Self.solveDual(scores: try DualScoreFile.readScores(path: file), beta: c.dpo.beta, align: a), StageBudget())
        }
        run.record("dual", ["dual/lambda": dual.lambda[0], "dual/predicted_improvement": dual.improvement[0], "dual/margin": dual.margin[0],
                            "dual/objective": dual.dual ?? .nan, "dual/reference_utility": dual.referenceUtility[0],
                            "dual/iterations": Double(dual.iterations)])
        let labelInputs = AlignmentContext.hash([dualInputs, "\(dual.lambda)", "\(a.labelSeed)"])
        let labels: LabelStats = try run.stage("4-labels", inputs: labelInputs) { dir in
            guard comm.rank == 0 else { return (LabelStats(), StageBudget()) }
            let λ = dual.lambda[0]
            let labelled = AlignmentContext.sampleLabels(pairs, seed: a.labelSeed) { scores.labelProbability($0, lambda: λ) }
            try AlignmentContext.writePairs(labelled, to: dir.appendingPathComponent("pairs.jsonl"))
            return (LabelStats(labelled), StageBudget())
        }
        run.record("labels", ["labels/pairs": Double(labels.pairs), "labels/flipped": labels.flipped, "labels/mean_probability": labels.meanProbability])
        let dpoInputs = AlignmentContext.hash([labelInputs, c.trainingHash])
        let fields = ["pipeline_method": "mocan", "pipeline_stage": "5-dpo", "pipeline_inputs": dpoInputs,
                      "dual_lambda": "\(dual.lambda)", "label_seed": "\(a.labelSeed)"]
        let trained: AlignmentContext.DPOResult = try run.stage("5-dpo", inputs: dpoInputs) { dir in
            try context.dpo(directory: dir, datasets: [context.relabelledDataset(run.stageDirectory("4-labels").appendingPathComponent("pairs.jsonl"))],
                            initial: c.model, beta: c.dpo.beta, fields: fields)
        }
        try run.writeSummary(method: .mocan, models: [ProducedModel(name: "mocan", path: trained.model, lambda: dual.lambda, margin: dual.margin,
                                                                   predictedImprovement: dual.improvement)],
                             extra: ["lambda": dual.lambda, "labelSeed": a.labelSeed])
    }

    /// λ* for the configured margin or threshold, or the margin a fixed λ guarantees.
    static func solveDual(scores: DualScores, beta: Double, align a: AlignConfig) throws -> DualStageResult {
        let reference = scores.referenceMeans
        if let λ = a.lambda {
            let problem = try DualProblem(scores: scores, beta: beta, bounds: .margins([0]))
            let guaranteed = try problem.marginGuaranteed(byLambda: [λ])
            return DualStageResult(lambda: [λ], improvement: guaranteed, margin: guaranteed, referenceUtility: reference, iterations: 0)
        }
        let margin = [a.margin ?? a.marginFraction.map { $0 * scores.largestMargins[0] } ?? (a.threshold! - reference[0])]
        let bounds: DualBounds = .margins(margin)
        let solution = try DualProblem(scores: scores, beta: beta, bounds: bounds).solve()
        return DualStageResult(lambda: solution.lambda, dual: solution.dual, gradient: solution.gradient, improvement: solution.improvement,
                               margin: margin, referenceUtility: reference, iterations: solution.iterations, objective: solution.objective)
    }
}

/// What pseudo-labelling did to the pairs.
public struct LabelStats: Codable, Equatable, Sendable {
    public var pairs = 0
    /// Fraction of pairs whose label disagrees with the dataset's original preference.
    public var flipped = 0.0
    public var meanProbability = 0.0

    public init() {}

    init(_ labelled: [(pair: PreferencePair, chosen: String, rejected: String, probability: Double)]) {
        pairs = labelled.count
        flipped = Double(labelled.filter { $0.chosen != $0.pair.chosen }.count) / Double(max(1, pairs))
        meanProbability = labelled.reduce(0) { $0 + $1.probability } / Double(max(1, pairs))
    }
}
