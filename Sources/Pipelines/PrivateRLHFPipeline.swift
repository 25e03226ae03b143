// The DP alignment paper's pipeline as `dualign align dp-rlhf` (algorithms.md §3.1; Wu et al. 2024):
//
//   0-split   the private data's prompts are split into disjoint shares for the three stages (a split file,
//             written once; every stage checks it), so one user's rows reach one stage only;
//   1-sft     DP-SFT of the model on its share's chosen responses (per-example normalisation);
//   2-reward  a DP reward model, the SFT model with a score head, on its share's preference pairs
//             (or a public reward model, `dpRLHF.rewardModel`: the paper's no-human-in-the-loop case);
//   3-ppo     DP-PPO from the SFT model against that reward model on its share's prompts: one PPO epoch per
//             Poisson-sampled rollout batch, a fixed KL coefficient, policy and value loss clipped jointly.
//
// Each stage runs DP-SGD with the whole dp.epsilon at δ = dp.delta (default 1/N of its share): by parallel
// composition the pipeline is (max ε, max δ)-DP, which `align.json` states with every stage's ε, δ, σ and q.
// Without dp.epsilon or dp.noiseMultiplier the same stages train without noise on the same shares (ε = ∞).

import Foundation
import Alignment
import Models
import Privacy
import Training

/// What one stage of the private pipeline trained and spent.
public struct PrivateStageResult: Codable, Equatable, Sendable {
    /// The trained model (final.gguf), relative to the run directory.
    public var model: String
    public var steps: Int
    /// ε spent (at `delta`), σ and q; nil when the stage trained without DP.
    public var epsilon: Double?
    public var delta: Double?
    public var noiseMultiplier: Double?
    public var sampleRate: Double?
    /// False when the noise was seeded (tests): the weights are not private.
    public var secureNoise: Bool
    public var eval: [String: Double]
}

/// The split of stage 0: how many distinct prompts each stage received.
public struct PrivateSplitResult: Codable, Equatable, Sendable {
    public var file: String
    public var rows: [String: Int]
}

/// `dualign align dp-rlhf`.
public struct PrivateRLHFPipeline {
    public let context: AlignmentContext

    public init(context: AlignmentContext) { self.context = context }

    public func run() throws {
        let c = context.config, s = c.dpRLHF, run = context.run, comm = context.comm
        try s.validate()
        let base = AlignmentContext.hash(["dp-rlhf", AlignmentContext.fileIdentity(c.model), c.trainingHash])
        // Stage 0: the disjoint split of the private rows (keyed by prompt, as every private stage keys them).
        let splitURL = run.directory.appendingPathComponent("stages/0-split/split.json")
        let split: PrivateSplitResult = try run.stage("0-split", inputs: base) { dir in
            var rows: [String: Int] = [:]
            if comm.rank == 0 {
                var pairs = c
                pairs.task = .dpo
                pairs.dp.split = nil
                pairs.dp.stage = nil
                let data = try TrainingData.load(pairs, template: context.template)
                let stages = s.stages.filter { $0.name != "reward" || s.rewardModel.isEmpty }.map { ($0.name, $0.settings.fraction) }
                let file = try PrivateSplitFile.assign(keys: PrivateStageRows.keys(data.train), stages: stages, seed: s.splitSeed,
                                                       key: PrivateStageRows.keyName, template: c.data.template)
                // No stage has trained yet (this stage is not complete), so a partial file from a killed run is replaced.
                try file.write(to: splitURL)
                for stage in file.stages { rows[stage.name] = stage.rows.count }
            }
            return (PrivateSplitResult(file: "stages/0-split/split.json", rows: rows), StageBudget())
        }
        context.run.note("split: " + split.rows.keys.sorted().map { "\($0) \(split.rows[$0]!)" }.joined(separator: ", ") + " distinct prompts")

        let sft: PrivateStageResult = try run.stage("1-sft", inputs: AlignmentContext.hash([base, "sft"])) { dir in
            var cc = stageConfig("sft", s.sft, dir: dir, split: splitURL)
            cc.task = .sft
            cc.sft.normalization = .example
            try cc.validate()
            let loaded = try ModelSource.load(c.model, trainable: true, loadWeights: comm.rank == 0)
            return try train(Trainer(config: cc, communicator: comm, model: loaded, template: context.template), stage: "1-sft", dir: dir)
        }
        let rewardModel: String
        var reward: PrivateStageResult? = nil
        if s.rewardModel.isEmpty {
            let inputs = AlignmentContext.hash([base, "reward", sft.model])
            let result: PrivateStageResult = try run.stage("2-reward", inputs: inputs) { dir in
                var cc = stageConfig("reward", s.reward, dir: dir, split: splitURL)
                cc.task = .reward
                try cc.validate()
                let loaded = try ModelSource.load(context.path(sft.model), trainable: true, scoreHead: true, loadWeights: comm.rank == 0)
                return try train(Trainer(config: cc, communicator: comm, model: loaded, template: context.template), stage: "2-reward", dir: dir)
            }
            reward = result
            rewardModel = context.path(result.model)
        } else {
            rewardModel = s.rewardModel
        }
        let ppoInputs = AlignmentContext.hash([base, "ppo", sft.model, AlignmentContext.fileIdentity(rewardModel)])
        let ppo: PrivateStageResult = try run.stage("3-ppo", inputs: ppoInputs) { dir in
            var cc = stageConfig("ppo", s.ppo, dir: dir, split: splitURL)
            cc.task = .ppo
            cc.model = context.path(sft.model)
            cc.ppo.rewardModel = rewardModel
            cc.ppo.ppoEpochs = 1
            cc.ppo.rolloutBatchSize = cc.optimizer.globalBatchSize
            try cc.validate()
            let (trainer, objective) = try PPOTraining(config: cc, communicator: comm).makeTrainer()
            var (result, budget) = try train(trainer, stage: "3-ppo", dir: dir)
            let b = objective.budget
            budget.generatedTokens = b.generated
            budget.forwardTokens = b.forward
            result.eval = result.eval.filter { $0.key.hasPrefix("eval/objective/") }
            return (result, budget)
        }

        let stages = [("sft", sft), ("reward", reward), ("ppo", ppo)].compactMap { name, r in r.map { (name, $0) } }
        let epsilons = stages.compactMap(\.1.epsilon), deltas = stages.compactMap(\.1.delta)
        let isPrivate = epsilons.count == stages.count
        var stageObjects: [String: Any] = [:]
        for (name, r) in stages {
            var o: [String: Any] = ["model": r.model, "steps": r.steps, "secureNoise": r.secureNoise]
            if let e = r.epsilon { o["epsilon"] = e }
            if let d = r.delta { o["delta"] = d }
            if let n = r.noiseMultiplier { o["noiseMultiplier"] = n }
            if let q = r.sampleRate { o["sampleRate"] = q }
            stageObjects[name] = o
        }
        // Parallel composition over disjoint shares: the pipeline's guarantee is the worst stage's.
        let privacy: [String: Any]
        if isPrivate {
            privacy = ["epsilon": epsilons.max()!, "delta": deltas.max()!, "composition": "parallel (disjoint splits)",
                       "secureNoise": stages.allSatisfy { $0.1.secureNoise }]
        } else {
            privacy = ["epsilon": "inf", "note": "trained without DP (no dp.epsilon or dp.noiseMultiplier)"]
        }
        var extra: [String: Any] = [:]
        extra["privacy"] = privacy
        extra["privateStages"] = stageObjects
        extra["split"] = ["file": split.file, "rows": split.rows] as [String: Any]
        extra["rewardModel"] = s.rewardModel.isEmpty ? (reward?.model ?? "") : s.rewardModel
        extra["eval"] = ppo.eval
        let models = [ProducedModel(name: "dp-sft", path: sft.model), ProducedModel(name: "dp-ppo", path: ppo.model)]
        try run.writeSummary(method: .dpRLHF, models: models, extra: extra)
    }

    /// The run config of a private stage: its steps, learning rate, batch and share of the split.
    func stageConfig(_ name: String, _ s: PrivateStageSettings, dir: URL, split: URL) -> RunConfig {
        var cc = context.config
        cc.align = AlignConfig()
        cc.outputDir = dir.path
        cc.optimizer.maxSteps = s.maxSteps
        cc.optimizer.learningRate = s.learningRate
        // The non-private global batch (ε = ∞) is the expected batch, rounded up to what the ranks split evenly.
        let parts = context.comm.size * cc.optimizer.microBatchSize
        cc.optimizer.globalBatchSize = max(parts, (s.expectedBatchSize + parts - 1) / parts * parts)
        if cc.dp.isEnabled { cc.dp.expectedBatchSize = Double(s.expectedBatchSize) }
        cc.dp.split = split.path
        cc.dp.stage = name
        return cc
    }

    /// Runs a stage's trainer and reads what it spent from its last metrics.
    func train(_ trainer: Trainer, stage: String, dir: URL) throws -> (PrivateStageResult, StageBudget) {
        trainer.checkpointFields = ["pipeline_method": AlignMethod.dpRLHF.rawValue, "pipeline_stage": stage]
        let summary = try trainer.run()
        let m = summary.finalMetrics, dp = context.config.dp.isEnabled
        let file = FileManager.default.fileExists(atPath: dir.appendingPathComponent("final.gguf").path) ? "final.gguf" : "final"
        let result = PrivateStageResult(model: "stages/\(stage)/\(file)", steps: summary.steps,
                                        epsilon: dp ? m["dp/epsilon"] : nil, delta: dp ? m["dp/delta"] : nil,
                                        noiseMultiplier: dp ? m["dp/noise_multiplier"] : nil, sampleRate: dp ? m["dp/sample_rate"] : nil,
                                        secureNoise: dp && m["dp/private"] == 1, eval: summary.evalMetrics)
        return (result, StageBudget(forwardTokens: summary.referenceTokens, trainTokens: summary.trainTokens))
    }
}
