// The data-parallel training loop behind every task: it owns batching, accumulation, the gradient
// all-reduce, clipping, the optimizer, checkpoints, evaluation and logs; the task is a
// `TrainingObjective` (Objective.swift) that supplies examples, model rows and the loss.
//
// Every rank holds the whole model; each optimizer step takes a fixed global batch of G examples,
// split over ranks and gradient-accumulation micro-steps. Each micro-batch's ∂ℓ/∂outputs is scaled by
// 1/G before its backward pass, so one fused all-reduce of the trainable gradient slab gives the
// global mean; every rank then applies the same clipped AdamW update.

import Foundation
import Alignment
import Checkpoints
import Datasets
import Distributed
import Formats
import Models
import Tensors
import Tokenizers

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
    /// The task.
    public let objective: TrainingObjective
    let adam: AdamW
    let schedule: LearningRateSchedule
    let sampler: GlobalBatchSampler
    let store: CheckpointStore
    let log: MetricsLog
    /// Optimizer steps of the whole run.
    public let totalSteps: Int
    var cursor: DataCursor
    /// The step generator: one draw per step (`StepPlan.seed`), the same on every rank, saved and restored.
    var rng: Tensors.SplitMix64
    var lastCheckpointStats: [String: Double] = [:]
    var startStep = 0
    /// The GGUF the model came from (its tokenizer travels into the final export).
    let sourceGGUF: GGUFFile?
    /// The DPO reference when it is not the initial policy (SACPO's stage-1 model, primal–dual rounds); nil: the initial policy.
    let reference: Transformer?
    /// Extra string fields for every checkpoint manifest (an alignment pipeline's stage, λ and inputs hash).
    public var checkpointFields: [String: String] = [:]
    /// DP-SGD (the `dp` section): the plan, accountant, noise and sampling; nil for a non-private run.
    let privacy: PrivateTraining?

    /// The trainable parameters (the whole model, or LoRA adapters and heads).
    var trainable: ParameterSlab { policy.trainable }

    /// Builds the run on every rank for the objective of `config.task`, loading its pairs.
    public convenience init(config: RunConfig, communicator comm: Communicator, model loaded: LoadedModel, template: ChatTemplate?,
                            baseDirectory: URL? = nil, reference: Transformer? = nil) throws {
        var data = try TrainingData.load(config, template: template, baseDirectory: baseDirectory)
        // A private stage of a split trains on its own rows only (PrivateSplits.swift).
        let splitNote = try PrivateStageRows.select(config, data: &data, baseDirectory: baseDirectory)
        let pad = Int32(loaded.tokenizer?.padTokenID ?? loaded.tokenizer?.eosTokenID ?? 0)
        try self.init(config: config, communicator: comm, model: loaded,
                      objective: config.task.objective(config: config, data: data, padToken: pad), reference: reference,
                      notes: splitNote.map { [$0] } ?? [])
    }

    /// Builds the run on every rank: rank 0's config, rank 0's weights broadcast, the objective's data on each rank.
    public init(config: RunConfig, communicator comm: Communicator, model loaded: LoadedModel, objective: TrainingObjective,
                reference: Transformer? = nil, notes: [String] = []) throws {
        self.config = config
        self.reference = reference
        self.comm = comm
        self.objective = objective
        policy = loaded.model
        sourceGGUF = loaded.gguf
        precondition(policy.trainable.count > 0, "the policy must have trainable parameters")
        try comm.broadcast(policy.parameters.pointer, count: policy.layout.count, root: 0)
        if config.lora.rank > 0 && policy.adapters == nil {
            try policy.attachAdapters(config.lora.settings(seed: config.seed))
            if let start = config.lora.initialAdapters, comm.rank == 0 { try policy.loadAdapters(from: URL(fileURLWithPath: start)) }
        }
        if let a = policy.adapters { try comm.broadcast(a.slab.values.pointer, count: a.slab.count, root: 0) }
        let o = config.optimizer
        adam = AdamW(parameterCount: policy.trainable.count,
                     config: AdamWConfig(learningRate: o.learningRate, beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon, weightDecay: o.weightDecay))
        if config.dp.isEnabled {
            // Private: Poisson batches of rate q replace the fixed global batch (the sampler is kept for the cursor only).
            if let refusal = objective.privacyRefusal(config: config) { throw refusal }
            let plan = try PrivacyPlan.resolve(config, datasetSize: objective.trainCount)
            privacy = try PrivateTraining(plan: plan, model: policy, seed: config.seed)
            sampler = try GlobalBatchSampler(datasetSize: objective.trainCount, globalBatchSize: 1, seed: config.seed)
            totalSteps = plan.steps
        } else {
            privacy = nil
            let parts = comm.size * o.microBatchSize
            guard o.globalBatchSize % parts == 0 else {
                throw RunConfigError(key: "optimizer.globalBatchSize",
                                     message: "\(o.globalBatchSize) examples do not split over \(comm.size) rank(s) × microBatchSize \(o.microBatchSize); use a multiple of \(parts)")
            }
            sampler = try GlobalBatchSampler(datasetSize: objective.trainCount, globalBatchSize: o.globalBatchSize, worldSize: comm.size,
                                             accumulationSteps: o.globalBatchSize / parts, seed: config.seed)
            let stepsPerEpoch = objective.trainCount / o.globalBatchSize
            // maxSteps 0 and epochs 0: an evaluation-only run (the held-out pairs, no step, no export).
            totalSteps = o.maxSteps > 0 ? o.maxSteps : o.epochs == 0 ? 0 : max(1, Int((Double(stepsPerEpoch) * o.epochs).rounded(.up)))
        }
        guard let kind = LearningRateSchedule.Kind(rawValue: o.schedule) else {
            throw RunConfigError(key: "optimizer.schedule", message: "unknown schedule \(o.schedule); choose constant, linear or cosine")
        }
        schedule = LearningRateSchedule(kind: kind, peak: o.learningRate, warmupSteps: o.warmupSteps, totalSteps: totalSteps)
        cursor = sampler.startCursor()
        rng = Tensors.SplitMix64(seed: config.seed ^ 0x7452_4149_4E45_5200)
        let dir = URL(fileURLWithPath: config.outputDir)
        if comm.rank == 0 { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
        try comm.barrier()
        store = try CheckpointStore(runDirectory: dir, keepLast: config.checkpoint.keepLast)
        // Notes only until `run` knows the resumed step and opens metrics.jsonl for writing.
        log = try MetricsLog(directory: dir, enabled: comm.rank == 0, resumedStep: nil)
        if comm.rank == 0 {
            try RunConfigLoader.json(config).write(to: dir.appendingPathComponent("config.resolved.json"), atomically: true, encoding: .utf8)
            log.note("data: \(objective.trainCount) training examples, \(objective.evalCount) held-out; \(objective.dataReport)")
            for line in notes { log.note(line) }
            if let privacy {
                log.note("batch: Poisson, expected \(String(format: "%.4g", privacy.plan.expectedBatchSize)) examples/step over \(comm.size) rank(s), physical batches of ≤ \(privacy.plan.physicalBatchSize); \(totalSteps) steps; training \(policy.trainableDescription)")
                notePrivacy(privacy)
            } else {
                log.note("batch: \(o.globalBatchSize) examples/step = \(comm.size) rank(s) × \(sampler.accumulationSteps) micro-step(s) × \(o.microBatchSize); \(totalSteps) steps; training \(policy.trainableDescription)")
            }
        }
    }

    /// What objectives may use.
    var context: ObjectiveContext {
        ObjectiveContext(config: config, comm: comm, policy: policy, reference: reference, note: { [log] in log.note($0) })
    }

    /// Runs (or resumes) to the last step; rank 0 logs, every rank returns the same summary.
    public func run() throws -> TrainingSummary {
        try objective.prepare(context)
        startStep = try restoreCheckpoint()
        let log = try MetricsLog(directory: self.log.url.deletingLastPathComponent(), enabled: comm.rank == 0, resumedStep: startStep)
        var last: [String: Double] = [:]
        var evalMetrics: [String: Double] = [:]
        var step = startStep
        var trainTokens = 0.0
        if startStep == 0 && config.evaluation.every > 0 && objective.evalCount > 0 {
            // The held-out metrics before any update (step 0), to compare with after training.
            evalMetrics = try evaluate()
            log.write(step: 0, evalMetrics)
            log.note("eval before training: " + evalMetrics.keys.sorted().map { "\($0)=\(String(format: "%.4f", evalMetrics[$0]!))" }.joined(separator: " "))
        }
        while step < totalSteps {
            let t0 = Date()
            var metrics: [String: Double]
            let gradNorm: Double
            var applies = true
            if let privacy {
                (metrics, applies) = try privateGradient(privacy, step: step, seed: rng.next())
                gradNorm = privacy.plan.maxGradNorm.map { clipGradientNorm(trainable.gradients.pointer, count: trainable.count, maxNorm: $0) }
                    ?? globalGradientNorm(trainable.gradients.pointer, count: trainable.count)
            } else {
                var plan = StepPlan(step: step, seed: rng.next(), global: sampler.globalBatch(at: cursor),
                                    microBatches: sampler.microBatches(at: cursor, rank: comm.rank))
                try objective.beginStep(&plan, context: context)
                metrics = try trainStep(plan)
                applies = try objective.endStep(plan, metrics: &metrics, context: context)
                gradNorm = clipGradientNorm(trainable.gradients.pointer, count: trainable.count, maxNorm: config.optimizer.maxGradNorm)
            }
            let lr = schedule.rate(at: step)
            let tokens = metrics.removeValue(forKey: "tokens") ?? 0
            trainTokens += tokens
            // (A private step whose Poisson batch is empty has no loss.)
            guard (metrics["loss"] ?? 0).isFinite, gradNorm.isFinite else {
                throw TrainingError(message: "stopping at step \(step + 1): non-finite \(gradNorm.isFinite ? "loss" : "gradient norm"); the last complete checkpoint in \(config.outputDir) is intact — lower optimizer.learningRate or check the data")
            }
            if applies {
                adam.update(parameters: trainable.values.pointer, gradients: trainable.gradients.pointer, count: trainable.count,
                            learningRate: lr, decayRanges: trainable.decayRanges)
            }
            cursor = sampler.advanced(cursor)
            step += 1
            let seconds = Date().timeIntervalSince(t0)
            metrics["grad_norm"] = gradNorm
            metrics["learning_rate"] = Double(lr)
            // Epochs completed after this step (the cursor wraps to the next epoch at its end; private: expected, q per step).
            metrics["epoch"] = privacy.map { Double(step) * $0.plan.sampleRate } ?? Double(cursor.samplesConsumed) / Double(max(1, objective.trainCount))
            metrics["tokens_per_s"] = tokens / seconds
            if config.evaluation.every > 0 && step % config.evaluation.every == 0 && objective.evalCount > 0 {
                evalMetrics = try evaluate()
                metrics.merge(evalMetrics) { $1 }
            }
            log.write(step: step, metrics)
            log.progress(step: step, total: totalSteps, loss: metrics["loss"] ?? .nan, accuracy: metrics["rewards/accuracies"] ?? metrics["accuracy"],
                         tokensPerSecond: metrics["tokens_per_s"]!)
            last = metrics
            let every = config.checkpoint.every
            if (every > 0 && step % every == 0) || step == totalSteps || step == config.checkpoint.stopAfterStep {
                try saveCheckpoint(step: step)
            }
            if step == config.checkpoint.stopAfterStep && step < totalSteps {
                log.note("stopping after step \(step) as checkpoint.stopAfterStep asks")
                return summary(steps: step, last, evalMetrics, trainTokens)
            }
        }
        if objective.evalCount > 0 && (config.evaluation.every == 0 || totalSteps % config.evaluation.every != 0 || startStep == totalSteps) {
            evalMetrics = try evaluate()
            log.write(step: step, evalMetrics)
        }
        if totalSteps > 0 { try exportFinalModel() }
        return summary(steps: step, last, evalMetrics, trainTokens)
    }

    private func summary(steps: Int, _ last: [String: Double], _ eval: [String: Double], _ tokens: Double) -> TrainingSummary {
        TrainingSummary(steps: steps, finalMetrics: last, evalMetrics: eval, trainTokens: tokens,
                        referenceTokens: (objective as? DPOObjective)?.referenceTokens ?? 0)
    }

    // MARK: - One step

    /// Forward/backward of this rank's micro-batches and the fused gradient all-reduce; returns the step's metrics
    /// (means over the G examples, `loss` included) and `tokens`.
    func trainStep(_ plan: StepPlan) throws -> [String: Double] {
        policy.zeroGradients()
        var sums: [String: Double] = [:]
        let scale = 1 / Double(plan.global.count)
        for ids in plan.microBatches where !ids.isEmpty {
            let m = try runMicroBatch(ids, split: .train, backwardScale: scale, seed: plan.seed)
            for (k, v) in m { sums[k, default: 0] += v }
        }
        // One fused all-reduce of the trainable gradient slab (sum of the 1/G-scaled local gradients = the global mean).
        try comm.allReduceSum(trainable.gradients.pointer, count: trainable.count)
        let reduced = try reduceMetrics(sums)
        return Self.means(reduced, count: Double(plan.global.count))
    }

    /// One micro-batch: rows, forward, the objective's loss, and (with a scale) backward; returns metric sums,
    /// `loss` (Σ ℓ_i), `count` (examples) and `tokens`.
    func runMicroBatch(_ ids: [Int], split: ExampleSplit, backwardScale: Double?, seed: UInt64 = 0) throws -> [String: Double] {
        try forwardMicroBatch(ids, split: split, seed: seed, training: backwardScale != nil) { _, result in
            guard let backwardScale else { return }
            let s = Float(backwardScale)
            policy.backward(dLogProbs: result.dLogProbs.isEmpty ? nil : result.dLogProbs.map { $0 * s },
                            dScores: result.dScores.isEmpty ? nil : result.dScores.map { $0 * s },
                            dValues: result.dValues.isEmpty ? nil : result.dValues.map { $0 * s })
        }
    }

    /// One micro-batch's rows, forward pass and objective, then `backward` with the rows and the objective's
    /// result while the activations (and, training, the adapter dropout masks) are in place; returns metric
    /// sums, `loss` (Σ ℓ_i), `count` (examples) and `tokens`.
    func forwardMicroBatch(_ ids: [Int], split: ExampleSplit, seed: UInt64, training: Bool,
                           backward: (MicroBatch, ObjectiveResult) throws -> Void) throws -> [String: Double] {
        let batch = try objective.microBatch(ids, split: split)
        let request = objective.request
        // Adapter dropout while training: one seed per row from the step's seed and the row's example id
        // and place in it, so any world size and micro-batching draw the same masks.
        var slot = [Int](repeating: 0, count: batch.examples.count)
        policy.adapterDropoutSeeds = !training ? nil : batch.rowExample.map { e in
            defer { slot[e] += 1 }
            return SplitMix64.mix(seed &+ UInt64(truncatingIfNeeded: batch.examples[e] &* 8 &+ slot[e]) &* SplitMix64.golden)
        }
        defer { policy.adapterDropoutSeeds = nil }
        policy.forward(batch.batch)
        let targets = TokenTargets(responsesOf: batch.batch, responseStarts: batch.responseStarts)
        let outputs = ModelOutputs(targets: targets, logProbs: request.contains(.logProbs) ? policy.logProbs(targets) : [],
                                   scores: request.contains(.scores) ? policy.scores() : [],
                                   values: request.contains(.values) ? policy.values(targets) : [])
        let result = try objective.evaluate(batch, outputs: outputs, split: split)
        try backward(batch, result)
        var out = result.metrics
        out["loss"] = result.losses.reduce(0, +)
        out["count"] = Double(ids.count)
        out["tokens"] = Double(batch.tokens)
        return out
    }

    /// Sums metric sums over ranks (ranks may report different keys, e.g. labelled and unlabelled cost pairs: the union is reduced).
    func reduceMetrics(_ sums: [String: Double]) throws -> [String: Double] {
        let keys = Set(try comm.allGather(Array(sums.keys.sorted().joined(separator: "\n").utf8))
            .flatMap { String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init) }).sorted()
        var values = keys.map { sums[$0] ?? 0 }
        try comm.allReduceSum(&values)
        return Dictionary(uniqueKeysWithValues: zip(keys, values))
    }

    /// Divides metric sums by the example count, or by their own `count/<key>` sums; keeps `tokens` as a sum.
    /// A metric whose own count is zero has no value and is left out (e.g. a cost model's ranking accuracy
    /// on a source of unranked pairs).
    static func means(_ sums: [String: Double], count: Double) -> [String: Double] {
        var out: [String: Double] = [:]
        for (k, v) in sums where !k.hasPrefix("count") {
            if k == "tokens" { out[k] = v; continue }
            let own = sums["count/" + k]
            if own == 0 { continue }
            let divisor = own ?? count
            out[k] = divisor > 0 ? v / divisor : 0
        }
        return out
    }

    /// Loss and the objective's metrics on the held-out examples, sharded over ranks; keys prefixed `eval/`.
    /// With held-out examples from two sources or more, each source's are also written as `eval/<source>/<key>`,
    /// with its number of examples as `eval/<source>/examples` (micro-batches then hold one source each).
    func evaluate() throws -> [String: Double] {
        let sources = (0..<objective.evalCount).map { objective.evalSource($0) ?? "" }
        let names = Array(Set(sources)).sorted()
        let perSource = names.count > 1
        var sums: [String: Double] = [:]
        let mine = (0..<objective.evalCount).filter { $0 % comm.size == comm.rank }
        let micro = config.optimizer.microBatchSize
        for name in perSource ? names : [""] {
            let group = perSource ? mine.filter { sources[$0] == name } : mine
            var start = 0
            while start < group.count {
                let m = try runMicroBatch(Array(group[start..<min(start + micro, group.count)]), split: .eval, backwardScale: nil)
                for (k, v) in m {
                    sums[k, default: 0] += v
                    if perSource { sums[Self.sourceKey(name, k), default: 0] += v }
                }
                start += micro
            }
        }
        let reduced = try reduceMetrics(sums)
        let keys = objective.evalMetricKeys.map { $0.union(["loss"]) }
        var out: [String: Double] = [:]
        for name in [""] + (perSource ? names : []) {
            // One source's sums, under their plain names, averaged by its own count.
            let prefix = name.isEmpty ? "" : Self.sourceKey(name, "")
            var own: [String: Double] = [:]
            for (k, v) in reduced where name.isEmpty ? !k.hasPrefix(Self.sourcePrefix) : k.hasPrefix(prefix) {
                own[String(k.dropFirst(prefix.count))] = v
            }
            let means = Self.means(own, count: max(own["count"] ?? 0, 1))
            let outPrefix = name.isEmpty ? "eval/" : "eval/\(name)/"
            for (k, v) in means where k != "tokens" && (keys?.contains(k) ?? true) { out[outPrefix + k] = v }
            if !name.isEmpty { out[outPrefix + "examples"] = own["count"] ?? 0 }   // each source's n
        }
        return out
    }

    private static let sourcePrefix = "source\u{1F}"
    /// The sum key of metric `key` for the held-out examples of `source`.
    private static func sourceKey(_ source: String, _ key: String) -> String { sourcePrefix + source + "\u{1F}" + key }

    /// Rank 0 writes the trained weights beside the checkpoints: `final/` (Hugging Face safetensors) and,
    /// when the model came from a GGUF, `final.gguf` with its tokenizer (what `dualign generate` loads).
    func exportFinalModel() throws {
        guard comm.rank == 0 else { return }
        let dir = URL(fileURLWithPath: config.outputDir)
        // With adapters: the merged model (W + s·B·A) and PEFT's adapter directory.
        let model = policy.adapters == nil ? policy : try policy.mergedCopy()
        try model.saveHuggingFace(to: dir.appendingPathComponent("final"))
        if let sourceGGUF { try model.saveGGUF(to: dir.appendingPathComponent("final.gguf"), metadataSource: sourceGGUF, name: "dualign \(config.task.rawValue)") }
        try policy.saveAdapters(to: dir.appendingPathComponent("final-adapter"), baseModel: config.model)
        log.note("final model: \(dir.appendingPathComponent("final").path)\(sourceGGUF != nil ? " and final.gguf" : "")\(policy.adapters != nil ? "; adapters (PEFT): final-adapter" : "")")
    }
}
