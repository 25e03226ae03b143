// The primal–dual baseline: rounds of (sample from the current policy, score, update log λ by the
// Safe-RLHF rule on the cost estimate, relabel the pairs with r + λ·g, DPO steps from the current
// policy against the fixed reference). Same pairs, scores and DPO settings as MoCAN; its DPO steps are
// split over the rounds, so both spend the same number of optimizer steps.

import Foundation
import Models
import Alignment
import Datasets
import Training
import Rollout

/// One round's estimate from the current policy's samples.
public struct RoundEstimate: Codable, Equatable, Sendable {
    public var meanReward: Double
    public var meanCost: Double
    public var samples: Int
}

/// `dualign align primal-dual`.
public struct PrimalDualPipeline {
    public let context: AlignmentContext

    public init(context: AlignmentContext) { self.context = context }

    public func run() throws {
        let c = context.config, a = c.align, run = context.run, comm = context.comm
        guard c.optimizer.maxSteps >= a.rounds else {
            throw RunConfigError(key: "optimizer.maxSteps", message: "the primal–dual baseline splits maxSteps over align.rounds (\(a.rounds)); give maxSteps ≥ rounds")
        }
        let prompts = try context.dualPrompts()
        let pairs = try context.pairs()
        let scoreInputs = AlignmentContext.hash(["pair-scores", AlignmentContext.fileIdentity(a.rewardModel), AlignmentContext.fileIdentity(a.costModel),
                                                 "\(a.scoreMaxLength)", AlignmentContext.json(c.data.datasets), c.data.template])
        let scores: PairScores = try run.stage("0-pair-scores", inputs: scoreInputs) { _ in
            let (rewards, costs, tokens) = try context.rewardsAndCosts(AlignmentContext.pairRows(pairs))
            return (PairScores(rewards: rewards ?? [], costs: costs ?? []), StageBudget(forwardTokens: tokens))
        }
        var multiplier = try LagrangeMultiplierUpdate(initialLambda: a.lambdaInit, learningRate: a.lambdaLearningRate,
                                                      threshold: a.costThreshold, lambdaMax: a.lambdaMax)
        var policy = c.model
        var inputs = AlignmentContext.hash([scoreInputs, c.trainingHash, AlignmentContext.json(a), "\(prompts)"])
        let steps = (c.optimizer.maxSteps + a.rounds - 1) / a.rounds
        for r in 1...a.rounds {
            let start = (r - 1) * a.promptsPerRound
            let roundPrompts = (0..<a.promptsPerRound).map { prompts[(start + $0) % prompts.count] }
            inputs = AlignmentContext.hash([inputs, "round \(r)", policy])
            let estimate: RoundEstimate = try run.stage("\(r).1-sample-score", inputs: inputs) { _ in
                let loaded = try ModelSource.load(r == 1 ? c.model : context.path(policy))
                let (samples, sampling) = try context.sample(loaded.model, tokenizer: try loaded.requireTokenizer(), prompts: roundPrompts,
                                                             samplesPerPrompt: a.samplesPerPrompt, seed: a.sampleSeed &+ UInt64(r))
                let rows = try comm.broadcastString(samples.map { AlignmentContext.json($0.map { [$0.prompt, $0.response] }) } ?? "", root: 0)
                let pairsOfText = try JSONDecoder().decode([[String]].self, from: Data(rows.utf8))
                let (rewards, costs, tokens) = try context.rewardsAndCosts(pairsOfText.map { ScoringRow(prompt: $0[0], response: $0[1]) })
                let n = Double(max(1, pairsOfText.count))
                let estimate = RoundEstimate(meanReward: (rewards ?? []).reduce(0) { $0 + Double($1) } / n,
                                             meanCost: (costs ?? []).reduce(0) { $0 + Double($1) } / n, samples: pairsOfText.count)
                var budget = sampling
                budget.forwardTokens += tokens
                return (estimate, budget)
            }
            // λ is replayed from the recorded estimates, so a resumed run continues with the same multiplier.
            let λ = multiplier.update(episodeCost: estimate.meanCost)
            run.record("round \(r)", ["round/mean_cost": estimate.meanCost, "round/mean_reward": estimate.meanReward, "dual/lambda": λ])
            inputs = AlignmentContext.hash([inputs, "\(λ)"])
            let labels: LabelStats = try run.stage("\(r).2-labels", inputs: inputs) { dir in
                guard comm.rank == 0 else { return (LabelStats(), StageBudget()) }
                let labelled = AlignmentContext.sampleLabels(pairs, seed: a.labelSeed &+ UInt64(r)) { scores.labelProbability($0, lambda: λ) }
                try AlignmentContext.writePairs(labelled, to: dir.appendingPathComponent("pairs.jsonl"))
                return (LabelStats(labelled), StageBudget())
            }
            run.record("round \(r)", ["labels/flipped": labels.flipped, "labels/mean_probability": labels.meanProbability])
            let stageName = "\(r).3-dpo"
            let stageInputs = inputs
            // Full fine-tuning continues from the last round's model against a frozen copy of the reference; LoRA keeps
            // the reference as its base and continues the last round's adapters (no second copy of the weights).
            let lora = c.lora.rank > 0, previous = run.stageDirectory("\(r - 1).3-dpo").appendingPathComponent("final-adapter").path
            let result: AlignmentContext.DPOResult = try run.stage(stageName, inputs: stageInputs) { dir in
                try context.dpo(directory: dir, datasets: [context.relabelledDataset(run.stageDirectory("\(r).2-labels").appendingPathComponent("pairs.jsonl"))],
                                initial: r == 1 || lora ? c.model : context.path(policy), reference: r == 1 || lora ? nil : c.model,
                                initialAdapters: r > 1 && lora ? previous : nil, beta: c.dpo.beta,
                                maxSteps: steps, seedOffset: UInt64(r),
                                fields: ["pipeline_method": "primal-dual", "pipeline_stage": stageName, "pipeline_inputs": stageInputs,
                                         "dual_lambda": "\(λ)"])
            }
            policy = result.model
        }
        try run.writeSummary(method: .primalDual, models: [ProducedModel(name: "primal-dual", path: policy, lambda: [multiplier.lambda])],
                             extra: ["rounds": a.rounds, "stepsPerRound": steps])
    }
}
