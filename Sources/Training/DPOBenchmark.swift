// The DPO step benchmark: policy forward+backward on chosen and rejected, reference forward, AdamW,
// on a randomly initialised model — the same work as the PyTorch peer (shared/bench/peer_dpo.py).

import Foundation
import Models
import Tensors
import Alignment
import COpenBLAS

/// Median timings and throughput of the DPO step benchmark.
public struct BenchmarkReport: Codable, Sendable {
    public var config: String
    public var parameters: Int
    public var pairs: Int
    public var sequenceLength: Int
    public var threads: Int
    public var steps: Int
    /// Median seconds of one whole step and of its parts.
    public var stepSeconds: Double
    public var forwardSeconds: Double
    public var backwardSeconds: Double
    public var optimizerSeconds: Double
    /// Policy tokens (chosen + rejected) per second, as the peer counts them.
    public var tokensPerSecond: Double
    /// Model FLOP per step (policy forward+backward, reference forward) and the share of the sgemm peak reached.
    public var flopsPerStep: Double
    public var peakGFLOPS: Double
    public var mfu: Double
}

public enum DPOBenchmark {
    /// The sgemm rate (GFLOP/s) of a 1024³ product at the current BLAS thread count: best of `repeats`.
    public static func measureSgemmPeak(size n: Int = 1024, repeats: Int = 5) -> Double {
        let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
        for i in 0..<(n * n) { a[i] = Float(i % 7) * 0.1; b[i] = Float(i % 5) * 0.1 }
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a.pointer, Int32(n),
                        b.pointer, Int32(n), 0, c.pointer, Int32(n))
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return 2 * Double(n * n * n) / best / 1e9
    }

    /// FLOP of one forward pass over `tokens` tokens of length T with `headPositions` LM-head rows.
    public static func forwardFlops(_ c: ModelConfig, tokens: Int, time T: Int, headPositions: Int) -> Double {
        let C = Double(c.hiddenSize), F = Double(c.intermediateSize)
        let perToken = 2 * C * Double(c.qkvChannels) + 2 * Double(c.attentionChannels) * C + 2 * C * 2 * F + 2 * F * C
            + 4 * Double(T) * Double(c.headSize) * Double(c.numHeads)        // scores and weighted values (full T×T, as computed)
        return Double(c.numLayers) * perToken * Double(tokens) + 2 * C * Double(c.vocabSize) * Double(headPositions)
    }

    /// Runs `warmup + steps` DPO steps and reports medians over the last `steps`.
    public static func run(configName: String, config: ModelConfig, pairs P: Int, sequenceLength T: Int,
                           steps: Int, warmup: Int, threads: Int, seed: UInt64 = 0) throws -> BenchmarkReport {
        let policy = try Transformer(config: config)
        policy.initializeRandomly(seed: seed)
        let reference = try Transformer(config: config, trainable: false)
        reference.parameters.copy(from: policy.parameters)
        let adam = AdamW(parameterCount: policy.layout.count, config: AdamWConfig(learningRate: 1e-5, weightDecay: 0))
        let loss = PreferenceLossConfig(beta: 0.1, type: .sigmoid)
        var rng = SplitMix64(seed: seed &+ 1)
        let promptLength = T / 2
        var stepTimes: [Double] = [], forwardTimes: [Double] = [], backwardTimes: [Double] = [], optimizerTimes: [Double] = []
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        for step in 0..<(warmup + steps) {
            // Chosen rows 0..<P, rejected rows P..<2P; each pair shares its prompt.
            let prompts = (0..<P).map { _ in (0..<promptLength).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) } }
            let sequences = (0..<(2 * P)).map { i in
                prompts[i % P] + (0..<(T - promptLength)).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
            }
            let batch = TokenBatch(sequences: sequences, length: T)
            let starts = [Int](repeating: promptLength, count: 2 * P)
            let t0 = now()
            let ref = reference.sequenceLogProbs(batch, responseStarts: starts)
            let pol = policy.sequenceLogProbs(batch, responseStarts: starts)
            let t1 = now()
            let result = preferenceLoss(policyChosen: Array(pol[0..<P]), policyRejected: Array(pol[P...]),
                                        referenceChosen: Array(ref[0..<P]), referenceRejected: Array(ref[P...]), config: loss)
            policy.zeroGradients()
            policy.backwardSequenceLogProbs(result.dPolicyChosen + result.dPolicyRejected)
            let t2 = now()
            adam.update(parameters: policy.parameters.pointer, gradients: policy.gradients!.pointer, count: policy.layout.count,
                        learningRate: 1e-5, decayRanges: policy.layout.decayRanges)
            let t3 = now()
            guard result.loss.isFinite else { throw BenchmarkError(message: "non-finite DPO loss at step \(step)") }
            if step >= warmup {
                stepTimes.append(t3 - t0); forwardTimes.append(t1 - t0); backwardTimes.append(t2 - t1); optimizerTimes.append(t3 - t2)
            }
        }
        let responseTokens = 2 * P * (T - promptLength)
        let forward = forwardFlops(config, tokens: 2 * P * T, time: T, headPositions: responseTokens)
        let flops = 3 * forward + forward                        // policy forward+backward (3×), reference forward (1×)
        let step = median(stepTimes)
        let peak = measureSgemmPeak()
        return BenchmarkReport(config: configName, parameters: policy.layout.count, pairs: P, sequenceLength: T, threads: threads,
                               steps: steps, stepSeconds: step, forwardSeconds: median(forwardTimes),
                               backwardSeconds: median(backwardTimes), optimizerSeconds: median(optimizerTimes),
                               tokensPerSecond: Double(2 * P * T) / step, flopsPerStep: flops, peakGFLOPS: peak,
                               mfu: flops / step / (peak * 1e9))
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }
}

/// A benchmark that could not complete.
public struct BenchmarkError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
