// The data-parallel training loop shared by SFT, DPO, reward and cost models.
// Every rank holds the whole model; each optimizer step takes a fixed global batch of pairs, split over
// ranks and gradient-accumulation micro-steps; local gradients are scaled by 1/G and summed by one fused
// all-reduce of the gradient slab; every rank then applies the same clipped AdamW update.

import Foundation
import Alignment
import Checkpoints
import Datasets
import Distributed
import Models
import Tensors
import Tokenizers
import Formats

/// A run that had to stop; the message names the step and what is intact.
public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// What a finished run reports.
public struct TrainingSummary: Sendable {
    public var steps: Int
    public var finalMetrics: [String: Double]
    public var evalMetrics: [String: Double]
    /// Tokens through forward and backward passes of the policy (all ranks, this invocation).
    public var trainTokens: Double = 0
    /// Tokens through forward passes of the reference model (0 when its log-probs came from the cache).
    public var referenceTokens: Double = 0
}

public final class Trainer {
    let config: RunConfig
    let comm: Communicator
    let policy: Transformer
    let adam: AdamW
    let schedule: LearningRateSchedule
    let sampler: GlobalBatchSampler
    let data: TrainingData
    let store: CheckpointStore
    let log: MetricsLog
    let totalSteps: Int
    let padToken: Int32
    var cursor: DataCursor
    var rng: Tensors.SplitMix64
    /// Reference sequence log-probs of every train pair then every eval pair (DPO), chosen and rejected.
    var referenceChosen: [Double] = [], referenceRejected: [Double] = []
    var referenceKey = ""
    var lastCheckpointStats: [String: Double] = [:]
    var startStep = 0
    /// The GGUF the model came from (its tokenizer travels into the final export).
    let sourceGGUF: GGUFFile?
    /// The DPO reference when it is not the initial policy (SACPO's stage-1 model, primal–dual rounds); nil: the initial policy.
    let reference: Transformer?
    /// Extra string fields for every checkpoint manifest (an alignment pipeline's stage, λ and inputs hash).
    public var checkpointFields: [String: String] = [:]
    /// Reference-model forward tokens spent by `computeReferenceLogProbs` (0 on a cache hit).
    var referenceTokens: Double = 0

    /// Builds the run on every rank: rank 0's config, rank 0's weights broadcast, data loaded on each rank.
    public init(config: RunConfig, communicator comm: Communicator, model loaded: LoadedModel, template: ChatTemplate,
                baseDirectory: URL? = nil, reference: Transformer? = nil) throws {
        self.config = config
        self.reference = reference
        self.comm = comm
        policy = loaded.model
        sourceGGUF = loaded.gguf
        precondition(policy.gradients != nil, "the policy must be trainable")
        try comm.broadcast(policy.parameters.pointer, count: policy.layout.count, root: 0)
        padToken = Int32(loaded.tokenizer?.padTokenID ?? loaded.tokenizer?.eosTokenID ?? 0)
        let o = config.optimizer
        adam = AdamW(parameterCount: policy.layout.count,
                     config: AdamWConfig(learningRate: o.learningRate, beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon, weightDecay: o.weightDecay))
        data = try TrainingData.load(config, template: template, baseDirectory: baseDirectory)
        let parts = comm.size * o.microBatchSize
        guard o.globalBatchSize % parts == 0 else {
            throw RunConfigError(key: "optimizer.globalBatchSize",
                                 message: "\(o.globalBatchSize) pairs do not split over \(comm.size) rank(s) × microBatchSize \(o.microBatchSize); use a multiple of \(parts)")
        }
        sampler = try GlobalBatchSampler(datasetSize: data.train.count, globalBatchSize: o.globalBatchSize, worldSize: comm.size,
                                         accumulationSteps: o.globalBatchSize / parts, seed: config.seed)
        let stepsPerEpoch = data.train.count / o.globalBatchSize
        totalSteps = o.maxSteps > 0 ? o.maxSteps : max(1, Int((Double(stepsPerEpoch) * o.epochs).rounded(.up)))
        guard let kind = LearningRateSchedule.Kind(rawValue: o.schedule) else {
            throw RunConfigError(key: "optimizer.schedule", message: "unknown schedule \(o.schedule); choose constant, linear or cosine")
        }
        schedule = LearningRateSchedule(kind: kind, peak: o.learningRate, warmupSteps: o.warmupSteps, totalSteps: totalSteps)
        cursor = sampler.startCursor()
        rng = Tensors.SplitMix64(seed: config.seed &+ UInt64(comm.rank) &* 0x9E37_79B9)
        let dir = URL(fileURLWithPath: config.outputDir)
        if comm.rank == 0 { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
        try comm.barrier()
        store = try CheckpointStore(runDirectory: dir, keepLast: config.checkpoint.keepLast)
        startStep = 0
        // Notes only until `run` knows the resumed step and opens metrics.jsonl for writing.
        log = try MetricsLog(directory: dir, enabled: comm.rank == 0, resumedStep: nil)
        if comm.rank == 0 {
            try RunConfigLoader.json(config).write(to: dir.appendingPathComponent("config.resolved.json"), atomically: true, encoding: .utf8)
            log.note("data: \(data.train.count) training pairs, \(data.eval.count) held-out; \(data.report)")
            log.note("batch: \(o.globalBatchSize) pairs/step = \(comm.size) rank(s) × \(sampler.accumulationSteps) micro-step(s) × \(o.microBatchSize); \(totalSteps) steps")
        }
    }

    /// Runs (or resumes) to the last step; rank 0 logs, every rank returns the same summary.
    public func run() throws -> TrainingSummary {
        if config.task == .dpo && !config.dpo.referenceFree { try computeReferenceLogProbs() }
        startStep = try restoreCheckpoint()
        let log = try MetricsLog(directory: self.log.url.deletingLastPathComponent(), enabled: comm.rank == 0, resumedStep: startStep)
        var last: [String: Double] = [:]
        var evalMetrics: [String: Double] = [:]
        var step = startStep
        var trainTokens = 0.0
        if startStep == 0 && config.evaluation.every > 0 && !data.eval.isEmpty {
            // The held-out metrics before any update (step 0), to compare with after training.
            evalMetrics = try evaluate()
            log.write(step: 0, evalMetrics)
            log.note("eval before training: " + evalMetrics.keys.sorted().map { "\($0)=\(String(format: "%.4f", evalMetrics[$0]!))" }.joined(separator: " "))
        }
        while step < totalSteps {
            let t0 = Date()
            var sums = try trainStep()
            let lr = schedule.rate(at: step)
            let gradNorm = clipGradientNorm(policy.gradients!.pointer, count: policy.layout.count, maxNorm: config.optimizer.maxGradNorm)
            let pairs = sums.removeValue(forKey: "count") ?? 1
            let tokens = sums.removeValue(forKey: "tokens") ?? 0
            trainTokens += tokens
            var metrics = sums.mapValues { $0 / pairs }
            guard metrics["loss"]?.isFinite == true, gradNorm.isFinite else {
                throw TrainingError(message: "stopping at step \(step + 1): non-finite \(gradNorm.isFinite ? "loss" : "gradient norm"); the last complete checkpoint in \(config.outputDir) is intact — lower optimizer.learningRate or check the data")
            }
            adam.update(parameters: policy.parameters.pointer, gradients: policy.gradients!.pointer, count: policy.layout.count,
                        learningRate: lr, decayRanges: policy.layout.decayRanges)
            cursor = sampler.advanced(cursor)
            step += 1
            let seconds = Date().timeIntervalSince(t0)
            metrics["grad_norm"] = gradNorm
            metrics["learning_rate"] = Double(lr)
            // Epochs completed after this step (the cursor wraps to the next epoch at its end).
            metrics["epoch"] = Double(cursor.samplesConsumed) / Double(max(1, data.train.count))
            metrics["tokens_per_s"] = tokens / seconds
            if config.evaluation.every > 0 && step % config.evaluation.every == 0 && !data.eval.isEmpty {
                evalMetrics = try evaluate()
                metrics.merge(evalMetrics) { $1 }
            }
            log.write(step: step, metrics)
            log.progress(step: step, total: totalSteps, loss: metrics["loss"]!, accuracy: metrics["rewards/accuracies"] ?? metrics["accuracy"],
                         tokensPerSecond: metrics["tokens_per_s"]!)
            last = metrics
            let every = config.checkpoint.every
            if (every > 0 && step % every == 0) || step == totalSteps || step == config.checkpoint.stopAfterStep {
                try saveCheckpoint(step: step)
            }
            if step == config.checkpoint.stopAfterStep && step < totalSteps {
                log.note("stopping after step \(step) as checkpoint.stopAfterStep asks")
                return TrainingSummary(steps: step, finalMetrics: last, evalMetrics: evalMetrics, trainTokens: trainTokens,
                                       referenceTokens: referenceTokens)
            }
        }
        if !data.eval.isEmpty && (config.evaluation.every == 0 || totalSteps % config.evaluation.every != 0 || startStep == totalSteps) {
            evalMetrics = try evaluate()
            log.write(step: step, evalMetrics)
        }
        try exportFinalModel()
        return TrainingSummary(steps: step, finalMetrics: last, evalMetrics: evalMetrics, trainTokens: trainTokens,
                               referenceTokens: referenceTokens)
    }

    /// Forward/backward of this rank's micro-batches and the fused gradient all-reduce; returns summed metrics.
    func trainStep() throws -> [String: Double] {
        policy.zeroGradients()
        var sums: [String: Double] = [:]
        let G = Double(config.optimizer.globalBatchSize)
        for indices in sampler.microBatches(at: cursor, rank: comm.rank) where !indices.isEmpty {
            let pairs = indices.map { data.train[$0] }
            let m = try lossAndBackward(pairs, referenceIndices: indices, scale: Double(pairs.count) / G)
            for (k, v) in m { sums[k, default: 0] += v }
        }
        // One fused all-reduce of the gradient slab (sum of the 1/G-scaled local gradients = the global mean).
        try comm.allReduceSum(policy.gradients!.pointer, count: policy.layout.count)
        // Ranks can report different metrics (a cost model's labelled and unlabelled pairs): reduce the union.
        let keys = Set(try comm.allGather(Array(sums.keys.sorted().joined(separator: "\n").utf8))
            .flatMap { String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init) }).sorted()
        var values = keys.map { sums[$0] ?? 0 }
        try comm.allReduceSum(&values)
        return Dictionary(uniqueKeysWithValues: zip(keys, values))
    }

    /// Loss of one micro-batch, backward scaled by `scale` (its share of the global batch); returns metric sums.
    func lossAndBackward(_ pairs: [TokenizedPair], referenceIndices: [Int], scale: Double, backward: Bool = true) throws -> [String: Double] {
        let b = PairBatch(pairs, padToken: padToken)
        let m = Double(pairs.count)
        var out: [String: Double] = ["count": m, "tokens": Double(b.tokens)]
        func add(_ metrics: [String: Double], loss: Double) {
            out["loss"] = loss * m
            for (k, v) in metrics { out[k] = v * m }
        }
        switch config.task {
        case .dpo:
            let (pc, pr) = policy.pairLogProbs(b, reduction: config.dpo.reduction)
            let rc = referenceIndices.map { referenceChosen.isEmpty ? 0 : referenceChosen[$0] }
            let rr = referenceIndices.map { referenceRejected.isEmpty ? 0 : referenceRejected[$0] }
            let r = preferenceLoss(policyChosen: pc, policyRejected: pr, referenceChosen: rc, referenceRejected: rr, config: config.dpo.lossConfig)
            add(r.metrics, loss: r.loss)
            if backward { policy.backwardSequenceLogProbs((r.dPolicyChosen + r.dPolicyRejected).map { $0 * scale }, reduction: config.dpo.reduction) }
        case .sft:
            // Language-model loss on the chosen responses (mean over their tokens).
            let chosen = TokenBatch(sequences: pairs.map { $0.chosenSequence.map(Int32.init) }, padToken: padToken)
            let loss = policy.languageModelLoss(chosen, responseStarts: pairs.map(\.responseStart), backward: false)
            add([:], loss: loss)
            if backward {
                // One target per response token (TokenTargets(responsesOf:) order): d(mean NLL)/d log p = −1/count.
                let count = zip(chosen.lengths, pairs).reduce(0) { $0 + $1.0 - $1.1.responseStart }
                policy.backward(dLogProbs: [Float](repeating: Float(-scale / Double(count)), count: count))
            }
        case .reward:
            let (sc, sr) = policy.pairScores(b)
            let r = rewardModelLoss(better: sc, worse: sr, regularization: config.scoreModel.regularization)
            add(r.metrics.merging(["rewards/chosen": sc.reduce(0, +) / m, "rewards/rejected": sr.reduce(0, +) / m]) { $1 }, loss: r.loss)
            if backward { policy.backward(dScores: (r.dBetter + r.dWorse).map { Float($0 * scale) }) }
        case .cost:
            let (safer, unsafer) = policy.pairScores(b)
            let labelled = pairs.allSatisfy { $0.chosenIsSafe != nil && $0.rejectedIsSafe != nil }
            let loss: Double, dSafer: [Double], dUnsafer: [Double], metrics: [String: Double]
            if labelled {
                let r = try costModelLoss(safer: safer, unsafer: unsafer, saferIsSafe: pairs.map { $0.chosenIsSafe! },
                                          unsaferIsSafe: pairs.map { $0.rejectedIsSafe! }, regularization: config.scoreModel.regularization)
                (loss, dSafer, dUnsafer, metrics) = (r.loss, r.dSafer, r.dUnsafer, r.metrics)
            } else {
                // Pairs without safety labels: only the ranking term (the unsafer answer costs more).
                let r = rewardModelLoss(better: unsafer, worse: safer, regularization: config.scoreModel.regularization)
                (loss, dSafer, dUnsafer, metrics) = (r.loss, r.dWorse, r.dBetter, r.metrics)
            }
            add(metrics.merging(["costs/safer": safer.reduce(0, +) / m, "costs/unsafer": unsafer.reduce(0, +) / m]) { $1 }, loss: loss)
            if backward { policy.backward(dScores: (dSafer + dUnsafer).map { Float($0 * scale) }) }
        }
        return out
    }

    /// Loss and accuracy on the held-out pairs, sharded over ranks; metrics prefixed `eval/`.
    func evaluate() throws -> [String: Double] {
        var sums: [String: Double] = [:]
        let mine = data.eval.indices.filter { $0 % comm.size == comm.rank }
        let micro = config.optimizer.microBatchSize
        var start = 0
        while start < mine.count {
            let idx = Array(mine[start..<min(start + micro, mine.count)])
            let m = try lossAndBackward(idx.map { data.eval[$0] }, referenceIndices: idx.map { data.train.count + $0 }, scale: 0, backward: false)
            for (k, v) in m { sums[k, default: 0] += v }
            start += micro
        }
        let keys = ["count", "loss", "rewards/accuracies", "accuracy", "rewards/margins", "safety_accuracy"]
        var values = keys.map { sums[$0] ?? 0 }
        try comm.allReduceSum(&values)
        let n = max(values[0], 1)
        var out: [String: Double] = ["eval/loss": values[1] / n]
        if config.task == .dpo { out["eval/rewards/accuracies"] = values[2] / n; out["eval/rewards/margins"] = values[4] / n }
        if config.task == .reward || config.task == .cost { out["eval/accuracy"] = values[3] / n }
        if config.task == .cost { out["eval/safety_accuracy"] = values[5] / n }
        return out
    }

    /// Rank 0 writes the trained weights beside the checkpoints: `final/` (Hugging Face safetensors) and,
    /// when the model came from a GGUF, `final.gguf` with its tokenizer (what `dualign generate` loads).
    func exportFinalModel() throws {
        guard comm.rank == 0 else { return }
        let dir = URL(fileURLWithPath: config.outputDir)
        try policy.saveHuggingFace(to: dir.appendingPathComponent("final"))
        if let sourceGGUF { try policy.saveGGUF(to: dir.appendingPathComponent("final.gguf"), metadataSource: sourceGGUF, name: "dualign \(config.task.rawValue)") }
        log.note("final model: \(dir.appendingPathComponent("final").path)\(sourceGGUF != nil ? " and final.gguf" : "")")
    }
}
