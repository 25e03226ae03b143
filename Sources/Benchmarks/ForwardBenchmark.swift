// `dualign bench --kind forward`: forward-only sequence log-probs (the reference log-probs of DPO, the
// scoring passes) in fp32 and in bf16 (Transformer.withBF16Weights), alternated call by call, with the
// difference between the two on the same batch.

import Foundation
import Models
import Tensors

/// Throughput of forward-only log-probs in fp32 and bf16.
public struct ForwardBenchmarkReport: Codable, Sendable {
    public var model: String
    public var sequences: Int
    public var sequenceLength: Int
    public var threads: Int
    public var repeats: Int
    public var matmulBackend: String
    /// Median seconds of one `sequenceLogProbs` call over the batch.
    public var fp32Seconds: Double
    public var bf16Seconds: Double
    /// Median of the per-pair ratios fp32 / bf16 seconds (pairs run back to back).
    public var speedup: Double
    /// Tokens per second (every token of every sequence goes through the model).
    public var fp32TokensPerSecond: Double
    public var bf16TokensPerSecond: Double
    /// Seconds of the first bf16 call's weight conversion (paid once per `withBF16Weights` block).
    public var conversionSeconds: Double
    /// Largest |bf16 − fp32| of a sequence log-prob sum (nats) over the batch, and its relative size.
    public var maxAbsoluteError: Double
    public var maxRelativeError: Double
}

public enum ForwardBenchmark {
    /// Times `repeats` alternated fp32 and bf16 calls (after one of each untimed) on `sequences` random
    /// sequences of `length` tokens, the response being the second half.
    public static func run(model: Transformer, name: String, sequences: Int, length: Int, repeats: Int, threads: Int,
                           seed: UInt64 = 3) -> ForwardBenchmarkReport {
        var rng = SplitMix64(seed: seed)
        let rows = (0..<sequences).map { _ in (0..<length).map { _ in Int32(rng.next() % UInt64(model.config.vocabSize)) } }
        let batch = TokenBatch(sequences: rows, length: length)
        let starts = [Int](repeating: length / 2, count: sequences)
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        let fp32 = model.sequenceLogProbs(batch, responseStarts: starts)
        let copies = BF16Weights()
        let t0 = now()
        let bf16 = model.withBF16Weights(using: copies) { model.sequenceLogProbs(batch, responseStarts: starts) }
        let firstCall = now() - t0
        var f: [Double] = [], b: [Double] = [], ratios: [Double] = []
        for _ in 0..<repeats {
            let t1 = now()
            _ = model.withBF16Weights(using: copies) { model.sequenceLogProbs(batch, responseStarts: starts) }
            let t2 = now()
            _ = model.sequenceLogProbs(batch, responseStarts: starts)
            let t3 = now()
            b.append(t2 - t1); f.append(t3 - t2); ratios.append((t3 - t2) / (t2 - t1))
        }
        let errors = zip(bf16, fp32).map { abs($0 - $1) }
        let relative = zip(errors, fp32).map { $0 / max(1e-12, abs($1)) }
        let fs = DPOBenchmark.median(f), bs = DPOBenchmark.median(b)
        return ForwardBenchmarkReport(model: name, sequences: sequences, sequenceLength: length, threads: threads, repeats: repeats,
                                      matmulBackend: Matmul.backend.rawValue, fp32Seconds: fs, bf16Seconds: bs,
                                      speedup: DPOBenchmark.median(ratios),
                                      fp32TokensPerSecond: Double(sequences * length) / fs,
                                      bf16TokensPerSecond: Double(sequences * length) / bs,
                                      conversionSeconds: max(0, firstCall - bs),
                                      maxAbsoluteError: errors.max() ?? 0, maxRelativeError: relative.max() ?? 0)
    }
}
