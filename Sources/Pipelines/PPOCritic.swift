// A separate critic (`ppo.critic: model`): a score model trained as a value function, one per stream, as
// Safe-RLHF's reward and cost critics and TRL's current value model. Its score head initialises its value
// head (so V starts at the score model's reading of each prefix); it trains with its own AdamW at
// `ppo.criticLearningRate` (constant), full fine-tuning or LoRA as the policy, on the same mini-batches, and
// its weights and moments travel in the PPO objective's checkpoint state.
//
// Each rank runs the critic over its micro-batches of the step with the clipped value loss normalised by the
// mini-batch's global token count, so the all-reduced gradient is the mini-batch's, whatever the world size.

import Foundation
import Alignment
import Distributed
import Models
import Rollout
import Tensors
import Training

/// One critic model with its optimizer.
final class PPOCritic {
    /// "reward" or "cost".
    let stream: String
    let model: Transformer
    let adam: AdamW
    let learningRate: Float
    let maxGradNorm: Double
    let comm: Communicator

    /// Loads `spec` (a score model) as a critic on every rank: rank 0 reads the weights and broadcasts them.
    init(stream: String, spec: String, config: RunConfig, seed: UInt64, comm: Communicator) throws {
        self.stream = stream
        self.comm = comm
        let loaded = try ModelSource.load(spec, trainable: true, scoreHead: true, valueHeads: 1, loadWeights: comm.rank == 0)
        model = loaded.model
        if comm.rank == 0, try loaded.hasScoreHeadTensor(), let s = model.layout.score, let v = model.layout.valueHead {
            (model.parameters.pointer + v).update(from: model.parameters.pointer + s, count: model.config.hiddenSize)
        }
        try comm.broadcast(model.parameters.pointer, count: model.layout.count, root: 0)
        if config.lora.rank > 0 { try model.attachAdapters(config.lora.settings(seed: seed)) }
        if let a = model.adapters { try comm.broadcast(a.slab.values.pointer, count: a.slab.count, root: 0) }
        let o = config.optimizer
        learningRate = config.ppo.criticLearningRate
        maxGradNorm = o.maxGradNorm
        adam = AdamW(parameterCount: model.trainable.count,
                     config: AdamWConfig(learningRate: learningRate, beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon, weightDecay: o.weightDecay))
    }

    /// V at each response target of `batch` (a forward pass).                         // (N)
    func values(_ batch: TokenBatch, _ targets: TokenTargets) -> [Float] {
        model.adapterDropoutSeeds = nil
        model.forward(batch)
        return model.values(targets)
    }

    /// One optimizer step on this rank's `microBatches` of a mini-batch of `tokens` response tokens (all ranks):
    /// the clipped value loss against the episodes' returns of `stream` index `s`. Returns metric sums over this
    /// rank's tokens (`loss/…`, `val/…` with the critic's prefix) and applies the all-reduced update.
    func step(_ microBatches: [(batch: TokenBatch, targets: TokenTargets, episodes: [PPOEpisode])], stream s: Int, tokens: Double,
              clipRange: Double, dropoutSeeds: [[UInt64]]) throws -> (sums: [String: Double], gradNorm: Double) {
        model.zeroGradients()
        var sums: [String: Double] = [:]
        for (i, m) in microBatches.enumerated() {
            model.adapterDropoutSeeds = dropoutSeeds[i]
            model.forward(m.batch)
            let v = model.values(m.targets).map(Double.init)
            let old = m.episodes.flatMap { $0.values[s].map(Double.init) }, returns = m.episodes.flatMap { $0.returns[s] }
            let r = try clippedValueLoss(values: v, oldValues: old, returns: returns, clipRange: clipRange, normalizer: tokens)
            model.backward(dValues: r.dValues.map(Float.init))
            for (k, x) in r.metrics { sums[k, default: 0] += x * Double(r.tokenCount) }
        }
        model.adapterDropoutSeeds = nil
        let slab = model.trainable
        try comm.allReduceSum(slab.gradients.pointer, count: slab.count)
        let norm = clipGradientNorm(slab.gradients.pointer, count: slab.count, maxNorm: maxGradNorm)
        if norm.isFinite {
            adam.update(parameters: slab.values.pointer, gradients: slab.gradients.pointer, count: slab.count,
                        learningRate: learningRate, decayRanges: slab.decayRanges)
        }
        return (sums, norm)
    }

    // MARK: - Checkpoint state

    /// The trainable values and AdamW moments, appended to `out` as little-endian floats (3 × count), and the step.
    func appendState(to out: inout Data) -> Int {
        let slab = model.trainable, n = slab.count
        for buffer in [slab.values.pointer, adam.m.pointer, adam.v.pointer] {
            out.append(UnsafeBufferPointer(start: buffer, count: n))
        }
        return adam.step
    }

    /// Restores what `appendState` wrote, starting at `offset`; returns the offset after it.
    func restoreState(from data: Data, offset: Int, adamStep: Int) throws -> Int {
        let slab = model.trainable, n = slab.count, bytes = n * MemoryLayout<Float>.size
        guard data.count >= offset + 3 * bytes else {
            throw TrainingError(message: "the checkpoint's \(stream) critic state is \(data.count - offset) bytes, expected \(3 * bytes); the checkpoint is from another critic configuration — use a new outputDir")
        }
        for (k, buffer) in [slab.values.pointer, adam.m.pointer, adam.v.pointer].enumerated() {
            let start = offset + k * bytes
            _ = data[start..<start + bytes].withUnsafeBytes { raw in raw.copyBytes(to: UnsafeMutableRawBufferPointer(start: buffer, count: bytes)) }
        }
        adam.step = adamStep
        return offset + 3 * bytes
    }

    /// Trainable values (for the state's byte count).
    var stateCount: Int { model.trainable.count }
}
