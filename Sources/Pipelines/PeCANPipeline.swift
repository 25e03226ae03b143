// PeCAN (algorithms.md §1.4): DPO policies π_h (helpfulness pairs) and π_s (safety pairs) from the
// reference; sequence log-probs of reference samples and of the pairs' responses under π_ref, π_h,
// π_s; the PeCAN dual on rank 0; labels σ(scale·((h1 − h0) + λ(s1 − s0))) with h = ℓ_h − ℓ_ref,
// s = ℓ_s − ℓ_ref; one DPO from the reference.
//
// `align.labelLogitScale`: 1 reproduces the official code (its DPO(β) then targets
// π_ref·exp((h + λs)/β)); β matches the dual's target π_ref·exp(h + λs), since the DPO-implied rewards
// are β·h and β·s (up to per-prompt constants).

import Foundation
import Alignment
import Datasets
import Models
import Training
import Rollout

/// Log-ratios h = ℓ_h − ℓ_ref and s = ℓ_s − ℓ_ref of the dual's samples and of the pairs' responses.
public struct PeCANLogRatios: Codable, Equatable, Sendable {
    /// Per sample (prompt-major, K per prompt): ℓ_ref, ℓ_h, ℓ_s.
    public var sampleReference: [Double], sampleHelpful: [Double], sampleSafe: [Double]
    /// Per pair: [h0, h1] and [s0, s1] (0 for pairs truncation drops).
    public var pairHelpful: [[Double]], pairSafe: [[Double]]
}

/// `dualign align pecan`.
public struct PeCANPipeline {
    public let context: AlignmentContext

    public init(context: AlignmentContext) { self.context = context }

    public func run() throws {
        let c = context.config, a = c.align, run = context.run, comm = context.comm
        guard a.threshold == nil else {
            throw RunConfigError(key: "align.threshold", message: "PeCAN's dual takes a margin over the reference (align.margin), not an absolute threshold")
        }
        let prompts = try context.dualPrompts()
        let pairs = try context.pairs()
        var policies: [String] = []
        for (i, aspect) in [PreferenceAspect.helpfulness, .harmlessness].enumerated() {
            let name = "\(i + 1)-dpo-\(aspect.rawValue)"
            let inputs = AlignmentContext.hash(["pecan", name, c.trainingHash])
            let result: AlignmentContext.DPOResult = try run.stage(name, inputs: inputs) { dir in
                try context.dpo(directory: dir, datasets: context.datasets(aspect: aspect), initial: c.model, beta: c.dpo.beta,
                                fields: ["pipeline_method": "pecan", "pipeline_stage": name, "pipeline_inputs": inputs])
            }
            policies.append(result.model)
        }
        let (sampleInputs, sampleCount) = try context.referenceSamplesStage("3-samples", prompts: prompts)
        let ratioInputs = AlignmentContext.hash([sampleInputs, "\(sampleCount)", "\(policies)", AlignmentContext.json(c.data)])
        let ratios: PeCANLogRatios = try run.stage("4-logprobs", inputs: ratioInputs) { _ in
            try logRatios(pairs: pairs, policies: policies.map(context.path))
        }
        let dualInputs = AlignmentContext.hash([ratioInputs, "\(c.dpo.beta) \(String(describing: a.margin)) \(String(describing: a.marginFraction)) \(String(describing: a.lambda))"])
        let K = a.samplesPerPrompt
        let dual: DualStageResult = try run.stage("5-dual", inputs: dualInputs) { _ in
            guard comm.rank == 0 else { return (DualStageResult(lambda: [], improvement: [], margin: [], referenceUtility: [], iterations: 0), StageBudget()) }
            let perPrompt = stride(from: 0, to: ratios.sampleReference.count, by: K).map { i in
                PeCANPrompt(referenceLogProbs: Array(ratios.sampleReference[i..<i + K]), helpfulLogProbs: Array(ratios.sampleHelpful[i..<i + K]),
                            safeLogProbs: Array(ratios.sampleSafe[i..<i + K]))
            }
            var pecan = try PeCANDual(prompts: perPrompt, beta: c.dpo.beta, margins: [a.margin ?? 0])
            // marginFraction: of the largest margin the samples allow, converted from log-ratio to reward units (× β).
            let margin = a.margin ?? (a.marginFraction ?? 0) * pecan.problem.scores.largestMargins[0] * c.dpo.beta
            if a.margin == nil && a.lambda == nil { pecan = try PeCANDual(prompts: perPrompt, beta: c.dpo.beta, margins: [margin]) }
            let reference = [-pecan.klEstimates[0] * c.dpo.beta]
            if let λ = a.lambda {
                let guaranteed = try pecan.problem.marginGuaranteed(byLambda: [λ]).map { $0 * c.dpo.beta }
                return (DualStageResult(lambda: [λ], improvement: guaranteed, margin: guaranteed, referenceUtility: reference, iterations: 0), StageBudget())
            }
            let s: DualSolution
            do { s = try pecan.solve() } catch {
                throw TrainingError(message: "PeCAN dual: margin \(margin) is b/β = \(margin / c.dpo.beta) in the dual's log-ratio units; multiply the limits below by β = \(c.dpo.beta) for align.margin: \(error)")
            }
            // The dual works in log-ratio units (reward/β); improvements are reported in reward units.
            return (DualStageResult(lambda: s.lambda, dual: s.dual, gradient: s.gradient, improvement: s.improvement.map { $0 * c.dpo.beta },
                                    margin: [margin], referenceUtility: reference, iterations: s.iterations, objective: s.objective), StageBudget())
        }
        run.record("dual", ["dual/lambda": dual.lambda[0], "dual/predicted_improvement": dual.improvement[0], "dual/margin": dual.margin[0],
                            "dual/objective": dual.dual ?? .nan, "dual/iterations": Double(dual.iterations)])
        let labelInputs = AlignmentContext.hash([dualInputs, "\(dual.lambda)", "\(a.labelSeed) \(a.labelLogitScale)"])
        let labels: LabelStats = try run.stage("6-labels", inputs: labelInputs) { dir in
            guard comm.rank == 0 else { return (LabelStats(), StageBudget()) }
            let λ = dual.lambda[0]
            let labelled = AlignmentContext.sampleLabels(pairs, seed: a.labelSeed) { i in
                pseudoLabelProbability(r0: ratios.pairHelpful[i][0], g0: ratios.pairSafe[i][0], r1: ratios.pairHelpful[i][1],
                                       g1: ratios.pairSafe[i][1], lambda: λ, scale: a.labelLogitScale)
            }
            try AlignmentContext.writePairs(labelled, to: dir.appendingPathComponent("pairs.jsonl"))
            return (LabelStats(labelled), StageBudget())
        }
        run.record("labels", ["labels/pairs": Double(labels.pairs), "labels/flipped": labels.flipped, "labels/mean_probability": labels.meanProbability])
        let dpoInputs = AlignmentContext.hash([labelInputs, c.trainingHash])
        let trained: AlignmentContext.DPOResult = try run.stage("7-dpo", inputs: dpoInputs) { dir in
            try context.dpo(directory: dir, datasets: [context.relabelledDataset(run.stageDirectory("6-labels").appendingPathComponent("pairs.jsonl"))],
                            initial: c.model, beta: c.dpo.beta,
                            fields: ["pipeline_method": "pecan", "pipeline_stage": "7-dpo", "pipeline_inputs": dpoInputs, "dual_lambda": "\(dual.lambda)"])
        }
        try run.writeSummary(method: .pecan, models: [ProducedModel(name: "pecan", path: trained.model, lambda: dual.lambda, margin: dual.margin,
                                                                   predictedImprovement: dual.improvement)],
                             extra: ["labelLogitScale": a.labelLogitScale])
    }

    /// ℓ_ref, ℓ_h, ℓ_s of the samples and of both responses of every pair (sharded over ranks).
    func logRatios(pairs: [PreferencePair], policies: [String]) throws -> (PeCANLogRatios, StageBudget) {
        let c = context.config
        let samples = try PromptSample.read(jsonLines: context.run.stageDirectory("3-samples").appendingPathComponent("samples.jsonl"))
        let tokenizer = try PairTokenizer(template: context.template,
                                          limits: TruncationLimits(maxLength: c.data.maxLength, maxPromptLength: c.data.maxPromptLength))
        var prompts: [[Int32]] = [], responses: [[Int32]] = []
        var promptCache: [String: [Int32]] = [:]
        for s in samples {
            if promptCache[s.prompt] == nil { promptCache[s.prompt] = context.template.renderPrompt([.user(s.prompt)]).tokens.map(Int32.init) }
            prompts.append(promptCache[s.prompt]!)
            responses.append(s.tokens)
        }
        var kept: [Int] = []
        for (i, p) in pairs.enumerated() {
            guard case .success(let t) = tokenizer.tokenize(p) else { continue }
            kept.append(i)
            prompts += [t.promptTokens.map(Int32.init), t.promptTokens.map(Int32.init)]
            responses += [t.chosenTokens.map(Int32.init), t.rejectedTokens.map(Int32.init)]
        }
        var values: [[Double]] = []
        var budget = StageBudget()
        for spec in [c.model] + policies {
            let model = try ModelSource.load(spec).model
            let (v, tokens) = try context.sequenceLogProbs(model, prompts: prompts, responses: responses)
            values.append(v)
            budget.forwardTokens += tokens
        }
        let n = samples.count
        var pairHelpful = [[Double]](repeating: [0, 0], count: pairs.count), pairSafe = pairHelpful
        for (j, i) in kept.enumerated() {
            let at = n + 2 * j
            pairHelpful[i] = [values[1][at] - values[0][at], values[1][at + 1] - values[0][at + 1]]
            pairSafe[i] = [values[2][at] - values[0][at], values[2][at + 1] - values[0][at + 1]]
        }
        return (PeCANLogRatios(sampleReference: Array(values[0][..<n]), sampleHelpful: Array(values[1][..<n]), sampleSafe: Array(values[2][..<n]),
                               pairHelpful: pairHelpful, pairSafe: pairSafe), budget)
    }
}
