// `dualign bench`: DPO step throughput on a randomly initialised model.

import ArgumentParser
import Foundation
import Models
import Tensors
import Training

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time DPO steps (policy forward+backward on chosen and rejected, reference forward, AdamW).")

    @Option(help: "Model shape: \(ModelConfig.presets.keys.sorted().joined(separator: ", ")).")
    var config = "tiny"
    @Option(help: "Preference pairs per step (default: 8 for tiny, 2 otherwise).")
    var pairs: Int?
    @Option(help: "Tokens per sequence, half prompt and half response.")
    var seq = 128
    @Option(help: "Timed steps.")
    var steps = 10
    @Option(help: "Untimed warm-up steps.")
    var warmup = 3
    @Flag(help: "Print the report as one JSON line.")
    var json = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard ModelConfig.presets[config] != nil else {
            throw ValidationError("unknown --config \(config); choose one of \(ModelConfig.presets.keys.sorted().joined(separator: ", "))")
        }
        if let pairs, pairs < 1 { throw ValidationError("--pairs must be at least 1") }
        if seq < 4 { throw ValidationError("--seq must be at least 4 tokens") }
        if steps < 1 || warmup < 0 { throw ValidationError("--steps must be at least 1 and --warmup at least 0") }
    }

    func run() throws {
        let threads = compute.threads ?? ProcessInfo.processInfo.activeProcessorCount
        BLAS.setThreads(threads)
        ThreadPool.threads = threads
        var model = ModelConfig.presets[config]!
        model.maxPositions = max(model.maxPositions, seq)
        let report = try DPOBenchmark.run(configName: config, config: model, pairs: pairs ?? (config == "tiny" ? 8 : 2),
                                          sequenceLength: seq, steps: steps, warmup: warmup, threads: threads)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
            return
        }
        func f(_ x: Double, _ d: Int = 3) -> String { String(format: "%.\(d)f", x) }
        print("""
        dualign bench  config=\(report.config)  params=\(report.parameters)  pairs=\(report.pairs)  seq=\(report.sequenceLength)  threads=\(report.threads)
          step       \(f(report.stepSeconds)) s (median of \(report.steps))
          forward    \(f(report.forwardSeconds)) s   (policy + reference)
          backward   \(f(report.backwardSeconds)) s
          optimizer  \(f(report.optimizerSeconds)) s
          tokens/s   \(f(report.tokensPerSecond, 1))   (policy tokens, chosen + rejected)
          MFU        \(f(100 * report.mfu, 1)) %  of \(f(report.peakGFLOPS, 1)) GFLOP/s measured sgemm peak (\(f(report.flopsPerStep / 1e9, 1)) GFLOP/step)
        """)
    }
}
