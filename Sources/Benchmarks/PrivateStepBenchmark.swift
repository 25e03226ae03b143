// The cost of DP-SGD: a DPO step and the same step made private, timed alternately on the same batches
// (one process, one rank), on a randomly initialised model, full fine-tuning or LoRA.
//
// Non-private: policy forward on chosen and rejected, reference forward, DPO loss, backward, AdamW.
// Private: the same forward passes and loss, then the clipped gradient sum (LoRA: per-example adapter
// gradients in the one backward, clip, one sgemm; full: a norm pass by ghost norms, then one clipped
// backward), N(0, σ²C²) on every trainable value, ÷ q·N, AdamW. The noise is timed apart in both modes
// (seeded: one SplitMix64 Box–Muller draw per value; secure: four CSPRNG draws per value, by the kernel
// the processor runs, `FastGaussian.kernel`) and the step ratio is given with each.

import Foundation
import Alignment
import Models
import Privacy
import Tensors
import Training

/// Medians of the non-private and the private step, side by side.
public struct PrivateStepReport: Codable, Sendable {
    public var config: String
    /// LoRA rank (0: full fine-tuning) and the trainable values.
    public var loraRank: Int
    public var trainable: Int
    public var pairs: Int
    public var sequenceLength: Int
    public var threads: Int
    public var steps: Int
    /// Non-private step and its parts (seconds, medians).
    public var nonPrivateSeconds: Double
    public var nonPrivateForwardSeconds: Double
    public var nonPrivateBackwardSeconds: Double
    /// Private step without the noise, and its parts.
    public var privateSeconds: Double
    public var privateForwardSeconds: Double
    /// The clipped gradient sum: per-example backward, norms, clipping (and the clipped backward when full).
    public var clippedSumSeconds: Double
    /// Its parts: the per-example pass (LoRA: backward with per-example gradients; full: the norm pass), the
    /// norms' arithmetic inside it (full), and the clipping (LoRA: norms and the clipped sgemm; full: the
    /// clipped backward).
    public var perExamplePassSeconds: Double
    public var normArithmeticSeconds: Double
    public var clippingSeconds: Double
    /// Drawing N(0, σ²C²) for every trainable value, seeded and secure.
    public var seededNoiseSeconds: Double
    public var secureNoiseSeconds: Double
    /// The code that drew the secure noise's bulk (`FastGaussian.Kernel`: swift, avx2 or avx512).
    public var secureNoiseKernel: String
    /// The median over steps of (private step without noise) / (the non-private step just before it): robust
    /// to a machine whose load changes between steps.
    public var medianPairedRatio: Double
    /// (private + noise) / non-private.
    public var ratioSeededNoise: Double
    public var ratioSecureNoise: Double
    /// Per-example state: the materialised gradients (LoRA: trainable × 4 bytes per example) or the largest
    /// norm scratch (full: Gram matrices, a materialised layer gradient, the tied head's inputs), in bytes.
    public var perExampleBytes: Int
    public var perExampleBytesPerExample: Double
}

public enum PrivateStepBenchmark {
    /// Times `warmup + steps` rounds of (non-private step, private step) on the same random DPO batches.
    public static func run(configName: String, config: ModelConfig, loraRank: Int, pairs P: Int, sequenceLength T: Int,
                           steps: Int, warmup: Int, threads: Int, seed: UInt64 = 0) throws -> PrivateStepReport {
        let policy = try Transformer(config: config)
        policy.initializeRandomly(seed: seed)
        var reference: Transformer? = nil
        if loraRank > 0 {
            try policy.attachAdapters(LoRASettings(rank: loraRank, alpha: Double(2 * loraRank), seed: seed))
            // PEFT starts B at zero; give it values so every per-example gradient is non-trivial.
            let slab = policy.adapters!.slab
            var rng = SplitMix64(seed: seed &+ 9)
            for v in slab.views where v.name.hasSuffix("lora_B.weight") {
                for i in v.range { slab.values.pointer[i] = 0.01 * rng.nextGaussian() }
            }
        } else {
            let r = try Transformer(config: config, trainable: false)
            r.parameters.copy(from: policy.parameters)
            reference = r
        }
        let trainable = policy.trainable, n = trainable.count
        let adam = AdamW(parameterCount: n, config: AdamWConfig(learningRate: 1e-5, weightDecay: 0))
        let engine = ClippedGradientSum(model: policy, maxNorm: 1)
        let seeded = GaussianNoiseSource.seeded(seed), secure = GaussianNoiseSource.secure()
        let loss = PreferenceLossConfig(beta: 0.1, type: .sigmoid)
        var rng = SplitMix64(seed: seed &+ 1)
        let promptLength = T / 2
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        var times: [String: [Double]] = [:]
        func record(_ key: String, _ value: Double, _ step: Int) { if step >= warmup { times[key, default: []].append(value) } }

        for step in 0..<(warmup + steps) {
            let prompts = (0..<P).map { _ in (0..<promptLength).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) } }
            let sequences = (0..<(2 * P)).map { i in prompts[i % P] + (0..<(T - promptLength)).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) } }
            let batch = TokenBatch(sequences: sequences, length: T)
            let starts = [Int](repeating: promptLength, count: 2 * P)
            let micro = MicroBatch(examples: Array(0..<P), batch: batch, responseStarts: starts, rowExample: (0..<(2 * P)).map { $0 % P })
            /// Forward passes and the DPO loss: ∂ℓ/∂(sequence log-prob) per row.
            func forwardAndLoss() -> [Double] {
                let ref = reference.map { $0.sequenceLogProbs(batch, responseStarts: starts) }
                    ?? policy.withAdaptersDisabled { policy.sequenceLogProbs(batch, responseStarts: starts) }
                let pol = policy.sequenceLogProbs(batch, responseStarts: starts)
                let r = preferenceLoss(policyChosen: Array(pol[0..<P]), policyRejected: Array(pol[P...]), referenceChosen: Array(ref[0..<P]),
                                       referenceRejected: Array(ref[P...]), config: loss)
                return (r.dPolicyChosen + r.dPolicyRejected)
            }
            // Non-private.
            var t0 = now()
            let d = forwardAndLoss()
            var t1 = now()
            policy.zeroGradients()
            policy.backwardSequenceLogProbs(d)
            var t2 = now()
            adam.update(parameters: trainable.values.pointer, gradients: trainable.gradients.pointer, count: n, learningRate: 1e-5,
                        decayRanges: trainable.decayRanges)
            var t3 = now()
            record("np.forward", t1 - t0, step); record("np.backward", t2 - t1, step); record("np.step", t3 - t0, step)
            // Private (per-example losses: × P turns the batch mean's gradient into each pair's own).
            t0 = now()
            let dp = forwardAndLoss().map { $0 * Double(P) }
            t1 = now()
            policy.zeroGradients()
            let targets = TokenTargets(responsesOf: batch, responseStarts: starts)
            _ = engine.accumulate(micro, dLogProbs: targets.sequence.map { Float(dp[$0]) }, dScores: nil)
            t2 = now()
            record("dp.pass", engine.lastTimings.perExamplePass, step)
            record("dp.arith", engine.lastTimings.normArithmetic, step)
            record("dp.clip", engine.lastTimings.clipping, step)
            let g = trainable.gradients.pointer, scale = Float(1) / Float(P)
            for i in 0..<n { g[i] *= scale }
            adam.update(parameters: trainable.values.pointer, gradients: g, count: n, learningRate: 1e-5, decayRanges: trainable.decayRanges)
            t3 = now()
            record("dp.forward", t1 - t0, step); record("dp.clipped", t2 - t1, step); record("dp.step", t3 - t0, step)
            if step >= warmup { times["ratio", default: []].append((t3 - t0) / times["np.step"]!.last!) }
            // The noise, both modes (into a scratch copy: the timing is what matters).
            let scratch = FloatBuffer(count: n)
            let n0 = now()
            seeded.addNoise(to: scratch.pointer, count: n, standardDeviation: 1)
            let n1 = now()
            if step >= warmup && (times["dp.secure"]?.count ?? 0) < 3 {
                secure.addNoise(to: scratch.pointer, count: n, standardDeviation: 1)
                times["dp.secure", default: []].append(now() - n1)
            }
            record("dp.seeded", n1 - n0, step)
        }
        let m = { (k: String) in DPOBenchmark.median(times[k] ?? []) }
        let nonPrivate = m("np.step"), priv = m("dp.step")
        let bytes = engine.perExampleBytes
        return PrivateStepReport(config: configName, loraRank: loraRank, trainable: n, pairs: P, sequenceLength: T, threads: threads, steps: steps,
                                 nonPrivateSeconds: nonPrivate, nonPrivateForwardSeconds: m("np.forward"), nonPrivateBackwardSeconds: m("np.backward"),
                                 privateSeconds: priv, privateForwardSeconds: m("dp.forward"), clippedSumSeconds: m("dp.clipped"),
                                 perExamplePassSeconds: m("dp.pass"), normArithmeticSeconds: m("dp.arith"), clippingSeconds: m("dp.clip"),
                                 seededNoiseSeconds: m("dp.seeded"), secureNoiseSeconds: m("dp.secure"), secureNoiseKernel: FastGaussian.kernel.rawValue,
                                 medianPairedRatio: m("ratio"), ratioSeededNoise: (priv + m("dp.seeded")) / nonPrivate, ratioSecureNoise: (priv + m("dp.secure")) / nonPrivate,
                                 perExampleBytes: bytes, perExampleBytesPerExample: Double(bytes) / Double(loraRank > 0 ? P : 1))
    }
}
