// The DPO step benchmark: policy forward+backward on chosen and rejected, reference forward, AdamW,
// on a randomly initialised model — the same work as the PyTorch peer (shared/bench/peer_dpo.py).
// With a communicator of several ranks, each rank takes its share of the same global batch and the
// gradient slab is all-reduced once per step, as the trainer does.
//
// Also here: the checkpoint benchmark (write and read a model + Adam moments through the Checkpoints module).

import Foundation
import Models
import Tensors
import Alignment
import Distributed
import Checkpoints
import COpenBLAS
import Training

/// Median timings and throughput of the DPO step benchmark.
public struct BenchmarkReport: Codable, Sendable {
    public var config: String
    public var parameters: Int
    /// Pairs of the global batch (all ranks together).
    public var pairs: Int
    public var sequenceLength: Int
    /// Threads per rank.
    public var threads: Int
    public var steps: Int
    /// Median seconds of one whole step and of its parts (rank 0's clock).
    public var stepSeconds: Double
    public var forwardSeconds: Double
    public var backwardSeconds: Double
    public var optimizerSeconds: Double
    /// Policy tokens (chosen + rejected) of the global batch per second, as the peer counts them.
    public var tokensPerSecond: Double
    /// Model FLOP per step (policy forward+backward, reference forward) and the share of the sgemm peak reached
    /// (with several ranks: the sum of the ranks' peaks, measured concurrently).
    public var flopsPerStep: Double
    public var peakGFLOPS: Double
    public var mfu: Double
    /// Data parallelism only (absent with one rank): ranks, and the median seconds of the gradient all-reduce
    /// inside the step (including any wait for the slower rank) and its share of the step.
    /// LoRA rank of the trained adapters (0: full fine-tuning; `parameters` counts what is trained).
    public var loraRank = 0
    public var ranks: Int?
    public var allReduceSeconds: Double?
    public var allReduceShare: Double?
    /// The same all-reduce timed alone after a barrier (transfer cost without load imbalance).
    public var allReduceAloneSeconds: Double?
    /// The kernel family OpenBLAS chose for this processor (`openblas_get_corename`), e.g. "Haswell", "SkylakeX".
    public var blasCore: String?
    /// The matrix backend of the run (`Matmul.backend`) and the kernels it reports, e.g. "onednn", "avx512_core_bf16".
    public var matmulBackend: String?
    public var matmulKernels: String?
    /// The machine's measured fp32 FMA peak on the widest vectors (`MachinePeak`, all ranks' threads at once)
    /// and the share of it reached.
    public var machinePeakGFLOPS: Double?
    public var machineMFU: Double?
}

public enum DPOBenchmark {
    /// The sgemm rate (GFLOP/s) of an n³ product on the current matrix backend and thread count: best of
    /// `repeats` (the best, not the median: on a shared machine every slower run is interference).
    public static func measureSgemmPeak(size n: Int = 1536, repeats: Int = 8) -> Double {
        let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
        for i in 0..<(n * n) { a[i] = Float(i % 7) * 0.1; b[i] = Float(i % 5) * 0.1 }
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            Matmul.gemm(transA: false, transB: false, m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n,
                        beta: 0, c: c.pointer, ldc: n)
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

    /// The pairs `lo..<hi` of a global batch of `pairs` that rank `rank` of `size` processes.
    public static func shard(pairs: Int, rank: Int, size: Int) -> Range<Int> {
        (rank * pairs / size)..<((rank + 1) * pairs / size)
    }

    /// Runs `warmup + steps` DPO steps and reports medians over the last `steps`.
    ///
    /// With `communicator` of size > 1 every rank must call this with the same arguments: all ranks draw the
    /// same global batch, rank r runs the pairs `shard(pairs:rank:size:)`, scales its loss gradient by its
    /// share of the batch and the gradient slab is summed over ranks once per step before AdamW.
    public static func run(configName: String, config: ModelConfig, pairs P: Int, sequenceLength T: Int,
                           steps: Int, warmup: Int, threads: Int, seed: UInt64 = 0, loraRank: Int = 0,
                           communicator: Communicator? = nil) throws -> BenchmarkReport {
        let ranks = communicator?.size ?? 1, rank = communicator?.rank ?? 0
        guard P >= ranks else { throw BenchmarkError(message: "\(P) pairs cannot be shared by \(ranks) ranks; give --pairs \(ranks) or more") }
        let mine = shard(pairs: P, rank: rank, size: ranks)
        let L = mine.count
        let policy = try Transformer(config: config)
        policy.initializeRandomly(seed: seed)
        // LoRA (PEFT's usual r, alpha = 2r, every projection): the reference is the base with the adapters
        // off, as in training; full fine-tuning: a frozen copy.
        let reference: Transformer
        if loraRank > 0 {
            try policy.attachAdapters(LoRASettings(rank: loraRank, alpha: Double(2 * loraRank), seed: seed))
            reference = policy
        } else {
            reference = try Transformer(config: config, trainable: false)
            reference.parameters.copy(from: policy.parameters)
        }
        let trainable = policy.trainable
        let adam = AdamW(parameterCount: trainable.count, config: AdamWConfig(learningRate: 1e-5, weightDecay: 0))
        let loss = PreferenceLossConfig(beta: 0.1, type: .sigmoid)
        var rng = SplitMix64(seed: seed &+ 1)
        let promptLength = T / 2
        let n = trainable.count
        var stepTimes: [Double] = [], forwardTimes: [Double] = [], backwardTimes: [Double] = [], optimizerTimes: [Double] = []
        var reduceTimes: [Double] = []
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        if let communicator, ranks > 1 { try communicator.barrier() }
        for step in 0..<(warmup + steps) {
            // Global batch: chosen rows 0..<P, rejected rows P..<2P; each pair shares its prompt. Every rank draws it whole.
            let prompts = (0..<P).map { _ in (0..<promptLength).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) } }
            let sequences = (0..<(2 * P)).map { i in
                prompts[i % P] + (0..<(T - promptLength)).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
            }
            // This rank's rows: its chosen sequences, then its rejected ones.
            let local = ranks == 1 ? sequences : Array(sequences[mine]) + Array(sequences[(P + mine.lowerBound)..<(P + mine.upperBound)])
            let batch = TokenBatch(sequences: local, length: T)
            let starts = [Int](repeating: promptLength, count: 2 * L)
            let t0 = now()
            let ref = reference.withAdaptersDisabled { reference.sequenceLogProbs(batch, responseStarts: starts) }
            let pol = policy.sequenceLogProbs(batch, responseStarts: starts)
            let t1 = now()
            let result = preferenceLoss(policyChosen: Array(pol[0..<L]), policyRejected: Array(pol[L...]),
                                        referenceChosen: Array(ref[0..<L]), referenceRejected: Array(ref[L...]), config: loss)
            policy.zeroGradients()
            // The loss is the mean over the global batch: this rank's mean, weighted by its share.
            let share = Double(L) / Double(P)
            policy.backwardSequenceLogProbs(ranks == 1 ? result.dPolicyChosen + result.dPolicyRejected
                                            : (result.dPolicyChosen + result.dPolicyRejected).map { $0 * share })
            let t2 = now()
            if let communicator, ranks > 1 { try communicator.allReduceSum(trainable.gradients.pointer, count: n) }
            let t3 = now()
            adam.update(parameters: trainable.values.pointer, gradients: trainable.gradients.pointer, count: n,
                        learningRate: 1e-5, decayRanges: trainable.decayRanges)
            let t4 = now()
            guard result.loss.isFinite else { throw BenchmarkError(message: "non-finite DPO loss at step \(step)") }
            if step >= warmup {
                stepTimes.append(t4 - t0); forwardTimes.append(t1 - t0); backwardTimes.append(t2 - t1)
                reduceTimes.append(t3 - t2); optimizerTimes.append(t4 - t3)
            }
        }
        let responseTokens = 2 * P * (T - promptLength)
        let forward = forwardFlops(config, tokens: 2 * P * T, time: T, headPositions: responseTokens)
        // Policy forward + backward (3×; with LoRA the frozen base's weight gradients are skipped: 2×) and the
        // reference forward (1×); the adapters' own products are negligible (r ≪ C).
        let flops = (loraRank > 0 ? 2 : 3) * forward + forward
        let step = median(stepTimes)
        var report = BenchmarkReport(config: configName, parameters: n, pairs: P, sequenceLength: T, threads: threads,
                                     steps: steps, stepSeconds: step, forwardSeconds: median(forwardTimes),
                                     backwardSeconds: median(backwardTimes), optimizerSeconds: median(optimizerTimes),
                                     tokensPerSecond: Double(2 * P * T) / step, flopsPerStep: flops, peakGFLOPS: 0, mfu: 0)
        report.loraRank = loraRank
        if let communicator, ranks > 1 {
            // The all-reduce alone: barrier, then the same slab, a few times.
            var alone: [Double] = []
            for _ in 0..<5 {
                try communicator.barrier()
                let t0 = now()
                try communicator.allReduceSum(trainable.gradients.pointer, count: n)
                alone.append(now() - t0)
            }
            // The ranks' sgemm peaks, measured at the same time (they share the machine), summed.
            try communicator.barrier()
            var peak = [measureSgemmPeak()]
            try communicator.allReduceSum(&peak)
            report.peakGFLOPS = peak[0]
            try communicator.barrier()
            var machine = [MachinePeak.fp32GFLOPS(threads: threads).gflops]
            try communicator.allReduceSum(&machine)
            report.machinePeakGFLOPS = machine[0]
            report.ranks = ranks
            report.allReduceSeconds = median(reduceTimes)
            report.allReduceShare = median(reduceTimes) / step
            report.allReduceAloneSeconds = median(alone)
        } else {
            report.peakGFLOPS = measureSgemmPeak()
            report.machinePeakGFLOPS = MachinePeak.fp32GFLOPS(threads: threads).gflops
        }
        report.mfu = flops / step / (report.peakGFLOPS * 1e9)
        report.machineMFU = report.machinePeakGFLOPS.map { flops / step / ($0 * 1e9) }
        report.blasCore = blasCore
        report.matmulBackend = Matmul.backend.rawValue
        report.matmulKernels = Matmul.backend.kernels
        return report
    }

    /// The kernel family OpenBLAS runs (its `DYNAMIC_ARCH` choice, or `OPENBLAS_CORETYPE`).
    public static var blasCore: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name).trimmingCharacters(in: .whitespaces)
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }
}

/// A benchmark that could not complete.
public struct BenchmarkError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

// MARK: - Checkpoint benchmark

/// Speed and size of writing and reading a training checkpoint (weights + AdamW m and v), one mode.
public struct CheckpointModeReport: Codable, Sendable {
    /// "shuffled" (byte planes, the trainer's default) or "plain".
    public var mode: String
    /// Raw (safetensors payload) and compressed bytes of weights + optimizer archives.
    public var rawBytes: Int
    public var compressedBytes: Int
    /// rawBytes / compressedBytes, overall and per archive.
    public var ratio: Double
    public var weightsRatio: Double
    public var optimizerRatio: Double
    /// Median seconds: the two `writeArchive` calls (shuffle, zstd, write, fsync), `CheckpointStore.finalize`
    /// (checksums, manifest, DONE), and reading both archives back into the slabs (`TensorArchive.read` +
    /// `copyFloats`, as a resume does) three times: right after writing (`afterWrite`), after the files' pages
    /// were dropped from the page cache (`cold`, from the disk), and once more with the files page-cached (`warm`).
    public var writeSeconds: Double
    public var finalizeSeconds: Double
    public var readWarmSeconds: Double
    public var readColdSeconds: Double
    public var readAfterWriteSeconds: Double
    /// Raw megabytes (10^6 bytes) per second of the medians.
    public var writeMBps: Double
    public var readWarmMBps: Double
    public var readColdMBps: Double
    public var readAfterWriteMBps: Double
}

public struct CheckpointBenchmarkReport: Codable, Sendable {
    public var config: String
    /// "random" (N(0, 0.02) initialisation) or the model file the weights came from.
    public var weights: String
    public var parameters: Int
    public var zstdLevel: Int
    public var repeats: Int
    public var modes: [CheckpointModeReport]
}

public enum CheckpointBenchmark {
    /// Writes and reads a checkpoint of `parameters` (weights) and AdamW moments under `directory`, shuffled
    /// and plain, `repeats` times each; the moments come from `adamSteps` AdamW updates with random gradients.
    /// Verifies every read is bit-exact.
    public static func run(config: String, weights label: String, parameters: FloatBuffer, layout: ParameterLayout,
                           directory: URL, repeats: Int, level: Int = TensorArchive.defaultLevel,
                           adamSteps: Int = 3, seed: UInt64 = 0) throws -> CheckpointBenchmarkReport {
        let n = layout.count
        let adam = AdamW(parameterCount: n, config: AdamWConfig(learningRate: 1e-5, weightDecay: 0.01))
        let gradients = FloatBuffer(count: n)
        var rng = SplitMix64(seed: seed &+ 7)
        for _ in 0..<adamSteps {
            for i in 0..<n { gradients[i] = 1e-3 * rng.nextGaussian() }
            adam.update(parameters: parameters.pointer, gradients: gradients.pointer, count: n, learningRate: 1e-5,
                        decayRanges: layout.decayRanges)
        }
        let slabs: [(name: String, buffer: FloatBuffer)] = [("weights", parameters), ("adam.m", adam.m), ("adam.v", adam.v)]
        let expected = slabs.map { fingerprint($0.buffer) }
        let weightTensors: [TensorArchive.Tensor] = layout.views.map {
            (name: $0.name, shape: $0.shape, data: UnsafeBufferPointer(start: parameters.pointer + $0.offset, count: $0.count))
        }
        let momentTensors: [TensorArchive.Tensor] = [
            (name: "adam.m", shape: [n], data: UnsafeBufferPointer(start: adam.m.pointer, count: n)),
            (name: "adam.v", shape: [n], data: UnsafeBufferPointer(start: adam.v.pointer, count: n))]
        let store = try CheckpointStore(runDirectory: directory, keepLast: 1)
        var modes: [CheckpointModeReport] = []
        var step = (try store.listCheckpoints().map(\.step).max() ?? 0)
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        for shuffle in [true, false] {
            var writes: [Double] = [], finals: [Double] = [], warm: [Double] = [], cold: [Double] = [], afterWrite: [Double] = []
            var sizes = (raw: 0, packed: 0, wRatio: 0.0, oRatio: 0.0)
            for _ in 0..<repeats {
                step += 1
                let pending = try store.beginCheckpoint(step: step)
                let t0 = now()
                let s1 = try pending.writeArchive(name: "model.safetensors.zst", tensors: weightTensors, shuffle: shuffle, level: level)
                let s2 = try pending.writeArchive(name: "optimizer.safetensors.zst", tensors: momentTensors, shuffle: shuffle, level: level)
                let t1 = now()
                let done = try store.finalize(step: step, files: ["model.safetensors.zst", "optimizer.safetensors.zst"])
                let t2 = now()
                writes.append(t1 - t0); finals.append(t2 - t1)
                sizes = (s1.rawBytes + s2.rawBytes, s1.compressedBytes + s2.compressedBytes, s1.ratio, s2.ratio)
                let files = ["model.safetensors.zst", "optimizer.safetensors.zst"].map { done.directory.appendingPathComponent($0) }
                // Three reads: right after writing, after dropping the files' cached pages (from the disk), and again
                // with the file page-cached.
                for phase in 0..<3 {
                    let isCold = phase == 1
                    if isCold { for f in files { dropPageCache(f) } }
                    for s in slabs { s.buffer.zero() }
                    let t3 = now()
                    let model = try TensorArchive.read(files[0])
                    for v in layout.views {
                        try model.copyFloats(v.name, into: UnsafeMutableBufferPointer(start: parameters.pointer + v.offset, count: v.count))
                    }
                    let opt = try TensorArchive.read(files[1])
                    try opt.copyFloats("adam.m", into: UnsafeMutableBufferPointer(start: adam.m.pointer, count: n))
                    try opt.copyFloats("adam.v", into: UnsafeMutableBufferPointer(start: adam.v.pointer, count: n))
                    [{ afterWrite.append(now() - t3) }, { cold.append(now() - t3) }, { warm.append(now() - t3) }][phase]()
                    let got = slabs.map { fingerprint($0.buffer) }
                    guard got == expected else {
                        throw BenchmarkError(message: "checkpoint read back different values (\(shuffle ? "shuffled" : "plain"), read \(phase + 1) of 3)")
                    }
                }
            }
            let raw = Double(sizes.raw) / 1e6
            let (w, r, c, a) = (DPOBenchmark.median(writes), DPOBenchmark.median(warm), DPOBenchmark.median(cold), DPOBenchmark.median(afterWrite))
            modes.append(CheckpointModeReport(mode: shuffle ? "shuffled" : "plain", rawBytes: sizes.raw, compressedBytes: sizes.packed,
                                              ratio: Double(sizes.raw) / Double(sizes.packed), weightsRatio: sizes.wRatio,
                                              optimizerRatio: sizes.oRatio, writeSeconds: w, finalizeSeconds: DPOBenchmark.median(finals),
                                              readWarmSeconds: r, readColdSeconds: c, readAfterWriteSeconds: a,
                                              writeMBps: raw / w, readWarmMBps: raw / r, readColdMBps: raw / c,
                                              readAfterWriteMBps: raw / a))
        }
        return CheckpointBenchmarkReport(config: config, weights: label, parameters: n, zstdLevel: level, repeats: repeats, modes: modes)
    }

    /// An order-sensitive hash of a slab's bytes (for the bit-exact round-trip check).
    static func fingerprint(_ b: FloatBuffer) -> UInt64 {
        StableHash.fnv1a(UnsafeRawBufferPointer(start: b.pointer, count: b.count * MemoryLayout<Float>.stride))
    }

    /// Asks the kernel to drop a (clean, fsynced) file's cached pages so the next read comes from the disk.
    static func dropPageCache(_ url: URL) {
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else { return }
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        close(fd)
    }
}
