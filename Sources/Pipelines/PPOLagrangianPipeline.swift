// Safe-RLHF's PPO-Lagrangian as a pipeline (`dualign align ppo-lag`): one stage, a PPO run on the reward and
// cost streams whose multiplier λ = exp(log λ) is stepped on rank 0 once per rollout batch from the window of
// recent episode costs against the threshold d and broadcast (algorithms.md §5.5). The stage resumes from its
// checkpoints (λ, its history and the episode-cost window travel in them); every λ step is appended to
// `pipeline.jsonl`, and `align.json` lists the model, the final λ, its history and the budget in the same
// accounting as MoCAN, PeCAN, SACPO and primal–dual (wall time, generated, forward-only and trained tokens).

import Foundation
import Alignment
import Training

/// What the PPO-Lagrangian stage produced.
public struct PPOLagrangianResult: Codable, Equatable, Sendable {
    /// The trained policy (GGUF when the model came from one, else the Hugging Face directory), relative to the run.
    public var model: String
    public var steps: Int
    public var rollouts: Int
    public var lambdaHistory: [LagrangeStepRecord]
    public var eval: [String: Double]
    /// Seconds spent sampling and scoring rollouts (all invocations).
    public var rolloutSeconds: Double
}

/// `dualign align ppo-lag`.
public struct PPOLagrangianPipeline {
    public let context: AlignmentContext

    public init(context: AlignmentContext) { self.context = context }

    public func run() throws {
        let c = context.config, a = c.align, run = context.run, comm = context.comm
        let inputs = AlignmentContext.hash(["ppo-lag", AlignmentContext.fileIdentity(c.model), AlignmentContext.fileIdentity(a.rewardModel),
                                            AlignmentContext.fileIdentity(a.costModel), c.trainingHash])
        let stage = "1-ppo-lag"
        let result: PPOLagrangianResult = try run.stage(stage, inputs: inputs) { dir in
            var cc = c
            cc.task = .ppo
            cc.outputDir = dir.path
            try cc.validate()
            let (trainer, objective) = try PPOTraining(lagrangianConfig: cc, communicator: comm).makeTrainer()
            trainer.checkpointFields = ["pipeline_method": AlignMethod.ppoLagrangian.rawValue, "pipeline_stage": stage, "pipeline_inputs": inputs]
            objective.onRollout = { record in
                run.record("ppo-lag rollout \(Int(record["rollout"] ?? 0))",
                           record.filter { ["step", "rollout", "dual/lambda", "dual/episode_cost", "objective/scores", "objective/costs", "objective/kl"].contains($0.key) })
            }
            let summary = try trainer.run()
            let b = objective.budget
            let file = FileManager.default.fileExists(atPath: dir.appendingPathComponent("final.gguf").path) ? "final.gguf" : "final"
            let path = "stages/\(stage)/\(file)"
            return (PPOLagrangianResult(model: path, steps: summary.steps, rollouts: Int(summary.finalMetrics["ppo/rollouts"] ?? 0),
                                        lambdaHistory: objective.lambdaHistory, eval: summary.evalMetrics, rolloutSeconds: b.rolloutSeconds),
                    StageBudget(generatedTokens: b.generated, forwardTokens: b.forward, trainTokens: b.trained))
        }
        let lambda = result.lambdaHistory.last?.lambda ?? a.lambdaInit
        let history: [[String: Double]] = result.lambdaHistory.map { ["rollout": Double($0.step), "episode_cost": $0.episodeCost, "lambda": $0.lambda] }
        try run.writeSummary(method: .ppoLagrangian, models: [ProducedModel(name: "ppo-lag", path: result.model, lambda: [lambda])],
                             extra: ["lambdaHistory": history, "rollouts": result.rollouts, "steps": result.steps,
                                     "rolloutSeconds": result.rolloutSeconds, "costThreshold": a.costThreshold])
    }
}
