// SACPO (algorithms.md §2): DPO for one aspect from the reference (β), then DPO for the other with the
// stage-1 model as reference and coefficient β/λ — one model per β/λ in the sweep — and P-SACPO's
// linear merges θ(q) = (1 − q)·θ_stage1 + q·θ_stage2.

import Foundation
import Datasets
import Models
import Training

/// `dualign align sacpo`.
public struct SACPOPipeline {
    public let context: AlignmentContext

    public init(context: AlignmentContext) { self.context = context }

    public func run() throws {
        let c = context.config, a = c.align, run = context.run
        let (first, second): (PreferenceAspect, PreferenceAspect) = a.order == .helpfulnessFirst ? (.helpfulness, .harmlessness) : (.harmlessness, .helpfulness)
        for aspect in [first, second] { _ = try context.pairs(in: context.datasets(aspect: aspect)) }  // fail early on a missing aspect
        let name1 = "dpo-\(first.rawValue)"
        let inputs1 = AlignmentContext.hash(["sacpo", name1, c.trainingHash])
        let stage1: AlignmentContext.DPOResult = try run.stage("1-\(name1)", inputs: inputs1) { dir in
            try context.dpo(directory: dir, datasets: context.datasets(aspect: first), initial: c.model, beta: c.dpo.beta,
                            fields: ["pipeline_method": "sacpo", "pipeline_stage": "1-\(name1)", "pipeline_inputs": inputs1])
        }
        var models = [ProducedModel(name: name1, path: stage1.model)]
        var realigned: [(betaOverLambda: Double, model: String)] = []
        for (i, v) in a.betaOverLambda.enumerated() {
            let name = "dpo-\(second.rawValue)-\(Self.label(v))"
            let inputs = AlignmentContext.hash([inputs1, name, "\(v)"])
            let result: AlignmentContext.DPOResult = try run.stage("2.\(i + 1)-\(name)", inputs: inputs) { dir in
                try context.dpo(directory: dir, datasets: context.datasets(aspect: second), initial: context.path(stage1.model),
                                reference: context.path(stage1.model), beta: v,
                                fields: ["pipeline_method": "sacpo", "pipeline_stage": "2.\(i + 1)-\(name)", "pipeline_inputs": inputs,
                                         "beta_over_lambda": "\(v)"])
            }
            // λ = β / (β/λ): the multiplier of the aspect realigned second.
            models.append(ProducedModel(name: "sacpo-\(Self.label(v))", path: result.model, lambda: [c.dpo.beta / v]))
            realigned.append((v, result.model))
        }
        if let strongest = realigned.min(by: { $0.betaOverLambda < $1.betaOverLambda }) {
            for q in a.mergeWeights {
                let name = "p-sacpo-q\(Self.label(q))"
                let inputs = AlignmentContext.hash([inputs1, strongest.model, "\(q)"])
                let path: String = try run.stage("3-\(name)", inputs: inputs) { dir in
                    let out = dir.appendingPathComponent("merged.gguf")
                    if context.comm.rank == 0 {
                        let base = try ModelSource.load(context.path(stage1.model)), safe = try ModelSource.load(context.path(strongest.model))
                        let merged = try WeightMerging.merge([base.model, safe.model], weights: [Float(1 - q), Float(q)],
                                                             names: [stage1.model, strongest.model])
                        try merged.saveGGUF(to: out, metadataSource: base.gguf, name: "dualign p-sacpo q=\(q)")
                    }
                    return ("stages/3-\(name)/merged.gguf", StageBudget())
                }
                models.append(ProducedModel(name: name, path: path, lambda: [c.dpo.beta / strongest.betaOverLambda]))
            }
        }
        try run.writeSummary(method: .sacpo, models: models, extra: ["order": a.order.rawValue, "betaOverLambda": a.betaOverLambda])
    }

    /// A compact decimal for names (0.05 → "0.05").
    static func label(_ v: Double) -> String { String(format: "%g", v) }
}
