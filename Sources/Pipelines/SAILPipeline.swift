// `dualign align sail`: SAIL online alignment (algorithms.md §4) as one training stage. The policy starts
// from `model` and is its own reference (the base with adapters off under LoRA); the `sail` section says
// which routes are on; SAIL-PR labels with `align.rewardModel`, or `align.costModel` reversed
// (`sail.labeller: cost`: online safety alignment). The stage resumes from its checkpoints, whose objective
// state holds the generation queue, the buffers and their cursors.

import Foundation
import Alignment
import Datasets
import Models
import Tensors
import Training

/// `dualign align sail`.
public struct SAILPipeline {
    public let context: AlignmentContext

    public init(context: AlignmentContext) { self.context = context }

    /// The labeller model of SAIL-PR (nil without the PR route) and a key identifying its weights.
    func loadLabeller(_ c: RunConfig) throws -> (model: Transformer?, key: String) {
        guard c.sail.routes.contains(.pr) else { return (nil, "") }
        let key = c.sail.labeller == .reward ? "align.rewardModel" : "align.costModel"
        let path = c.sail.labeller == .reward ? c.align.rewardModel : c.align.costModel
        let loaded = try ModelSource.load(path, scoreHead: true)
        guard try loaded.hasScoreHeadTensor() else {
            throw RunConfigError(key: key, message: "\(path) has no trained score head; give the final.gguf of `dualign train \(c.sail.labeller.rawValue)`")
        }
        let p = loaded.model.parameters.pointer, n = loaded.model.layout.count
        var bytes: [UInt8] = Array("\(c.sail.labeller.rawValue) \(n) ".utf8)
        var i = 0
        while i < n { withUnsafeBytes(of: p[i].bitPattern) { bytes.append(contentsOf: $0) }; i += 4093 }
        return (loaded.model, "\(c.sail.labeller.rawValue):" + StableHash.hex(bytes))
    }

    /// The run config of the training stage: DPO settings of the run, epochs divided by 1 − r − p − g when
    /// the length is given in epochs (the authors' rule), outputs in the stage directory.
    public static func stageConfig(_ c: RunConfig, directory: URL) throws -> RunConfig {
        var t = c
        t.task = .dpo
        t.outputDir = directory.path
        if t.optimizer.maxSteps < 1 && c.sail.scaleEpochs {
            t.optimizer.epochs *= try c.sail.sailConfig(beta: c.dpo.beta, runSeed: c.seed).offlineEpochScale()
        }
        try t.validate()
        try t.sail.validate(t)
        return t
    }

    public func run() throws {
        let c = context.config, comm = context.comm, run = context.run
        try c.sail.validate(c)
        let variant = c.sail.variantName
        let stageName = "1-sail-\(variant)"
        let inputs = AlignmentContext.hash(["sail", stageName, c.trainingHash])
        let result: AlignmentContext.DPOResult
        do { result = try run.stage(stageName, inputs: inputs) { dir in
            let t = try Self.stageConfig(c, directory: dir)
            if t.optimizer.epochs != c.optimizer.epochs {
                run.note(String(format: "sail: %.3g epochs of dataset pairs become %.3g (÷ 1 − r − p − g, so plain DPO rows see as many pairs)",
                                c.optimizer.epochs, t.optimizer.epochs))
            }
            let data = try TrainingData.load(t, template: context.template)
            let loaded = try ModelSource.load(t.model, trainable: true, loadWeights: comm.rank == 0)
            let (labeller, key) = try loadLabeller(t)
            let tokenizer = context.template.tokenizer
            var stops: Set<Int32> = [Int32(context.template.endOfTurnID)]
            if let eos = tokenizer.eosTokenID { stops.insert(Int32(eos)) }
            let pad = Int32(tokenizer.padTokenID ?? tokenizer.eosTokenID ?? 0)
            let objective = try SAILObjective(config: t, data: data, padToken: pad, stopTokens: stops, labeller: labeller, labellerKey: key)
            let trainer = try Trainer(config: t, communicator: comm, model: loaded, objective: objective)
            trainer.checkpointFields = ["pipeline_method": "sail", "pipeline_stage": stageName, "pipeline_inputs": inputs, "sail_routes": variant]
            let summary = try trainer.run()
            if summary.steps < trainer.totalSteps {
                throw StageIncomplete(stage: stageName, message: "stopped after step \(summary.steps) of \(trainer.totalSteps) as checkpoint.stopAfterStep asks; rerun to continue")
            }
            let root = run.directory.standardizedFileURL.path
            var path = dir.appendingPathComponent("final.gguf").standardizedFileURL.path
            if path.hasPrefix(root + "/") { path = String(path.dropFirst(root.count + 1)) }
            return (AlignmentContext.DPOResult(model: path, steps: summary.steps, eval: summary.evalMetrics),
                    StageBudget(generatedTokens: objective.generatedTokens,
                                forwardTokens: objective.offline.referenceTokens + objective.forwardTokens, trainTokens: summary.trainTokens))
        } } catch let stopped as StageIncomplete {
            run.note(stopped.description)
            return
        }
        let s = c.sail.sailConfig(beta: c.dpo.beta, runSeed: c.seed)
        try run.writeSummary(method: .sail, models: [ProducedModel(name: "sail-\(variant)", path: result.model)], extra: [
            "routes": c.sail.routes.map(\.rawValue),
            "probabilities": ["dp": s.dataPolicyProbability, "pp": s.policyPolicyProbability, "pr": s.policyRewardProbability],
            "coefficients": ["rho": s.dataPolicyCoefficient, "pi": s.policyPolicyCoefficient, "gamma": s.policyRewardCoefficient],
            "scoreTerm": s.scoreTerm.rawValue, "labeller": c.sail.labeller.rawValue,
        ])
    }
}
