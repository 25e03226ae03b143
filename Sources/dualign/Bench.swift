// `dualign bench`: throughput benchmarks — DPO steps (default; data-parallel under mpirun), generation,
// tokenization and checkpoint I/O.

import ArgumentParser
import Distributed
import Foundation
import Models
import Tensors
import Tokenizers
import Training
import Formats
import Benchmarks
import Datasets

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: DPO steps (policy forward+backward on chosen and rejected, reference forward, AdamW), generation, tokenization, checkpoints, matrix backends.",
        discussion: """
        --kind dpo (default) times DPO steps on a randomly initialised model; under mpirun each rank takes its share \
        of the same global batch and the gradient slab is all-reduced once per step. --kind generate times greedy \
        KV-cache generation of exactly --new-tokens tokens per prompt with a real model. --kind tokenize times \
        single-threaded BPE encoding of an English corpus. --kind checkpoint writes and reads a checkpoint \
        (weights + AdamW moments), byte-shuffled and plain. --kind gemm measures GFLOP/s of every matrix backend \
        (and oneDNN threading) at the model's projection shapes, forward and both backward products. --kind forward times \
        forward-only sequence log-probs (--batch sequences of --seq tokens) in fp32 and in bf16, alternated.
        """)

    enum Kind: String, ExpressibleByArgument, CaseIterable { case dpo, generate, tokenize, checkpoint, gemm, forward }

    @Option(help: "What to time: \(Kind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var kind: Kind = .dpo
    @Option(help: "Model shape (dpo, checkpoint): \(ModelConfig.presets.keys.sorted().joined(separator: ", ")) (default: tiny for dpo, smollm2-135m for checkpoint).")
    var config: String?
    @Option(parsing: .unconditional, help: "Preference pairs per step, the global batch over all ranks (default: 8 for tiny, 2 otherwise).")
    var pairs: Int?
    @Option(parsing: .unconditional, help: "Tokens per sequence, half prompt and half response (dpo).")
    var seq = 128
    @Option(parsing: .unconditional, help: "Timed steps (dpo, default 10) or timed repeats (generate 3, tokenize 5, checkpoint 3).")
    var steps: Int?
    @Option(parsing: .unconditional, help: "Untimed warm-up steps or repeats (default: 3 for dpo, 1 for generate, 0 otherwise).")
    var warmup: Int?
    @Option(help: "A GGUF file, a Hugging Face directory, or a named model (generate and tokenize: default smollm2-135m; checkpoint: its weights instead of a random initialisation).")
    var model: String?
    @Option(parsing: .unconditional, help: "Prompts decoded together (generate).")
    var batch = 1
    @Option(name: .customLong("new-tokens"), parsing: .unconditional, help: "Tokens generated per prompt (generate).")
    var newTokens = 64
    @Option(name: .customLong("prompt-tokens"), parsing: .unconditional, help: "Length of the longest prompt; prompts are 0–3 tokens shorter in turn (generate).")
    var promptTokens = 32
    @Option(help: "Samples per prompt, decoded together with the other prompts' (generate; > 1 samples at --temperature, default 1).")
    var samples = 1
    @Option(help: "Sample at this temperature instead of greedy decoding (generate; no top-k, no top-p).")
    var temperature: Float?
    @Option(help: "One-row projection kernel (generate): \(MatVec.Implementation.allCases.map(\.rawValue).joined(separator: ", ")).")
    var matvec = MatVec.Implementation.simd.rawValue
    @Option(name: .customLong("write-prompts"), help: "Write the prompts and the generated tokens as JSON (generate), for launch/bench/peer_generate.py.")
    var writePrompts: String?
    @Option(help: "Text to tokenize: .jsonl(.gz) with chosen/rejected/prompt/text fields, or plain text (tokenize; default: the HH-RLHF harmless-base test file).")
    var text: String?
    @Option(help: "Directory for the checkpoints (checkpoint; default: a new temporary directory, removed afterwards).")
    var dir: String?
    @Option(parsing: .unconditional, help: "zstd level of the checkpoint archives (checkpoint).")
    var level = 1
    @Option(help: "Row counts M (gemm), comma-separated.")
    var rows = "1,16,64,256,512,1024,2048,4096"
    @Option(name: .customLong("thread-counts"), help: "Thread counts (gemm), comma-separated.")
    var threadCounts = "1,2"
    @Option(help: "Variants (gemm), comma-separated, e.g. openblas,onednn/split (default: every one available).")
    var variants: String?
    @Flag(help: "Print the report as one JSON line.")
    var json = false
    @Flag(help: "dpo: time the DP-SGD step against the same non-private step, alternately on the same batches (one rank).")
    var dp = false
    @Option(parsing: .unconditional, help: "dpo (and dpo --dp): LoRA rank on every projection, alpha = 2r, the reference = the base with adapters off (0: full fine-tuning).")
    var lora = 0
    @OptionGroup var compute: ComputeOptions

    /// The HH-RLHF harmless-base test file in the data root ($DUALIGN_DATA), if the variable is set.
    static var defaultText: String {
        (try? DataRoot.path("hh-rlhf/harmless-base-test.jsonl.gz")) ?? "/nonexistent"
    }

    func validate() throws {
        if let config, ModelConfig.presets[config] == nil {
            throw ValidationError("unknown --config \(config); choose one of \(ModelConfig.presets.keys.sorted().joined(separator: ", "))")
        }
        if let pairs, pairs < 1 { throw ValidationError("--pairs must be at least 1") }
        if seq < 4 { throw ValidationError("--seq must be at least 4 tokens") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        if let warmup, warmup < 0 { throw ValidationError("--warmup must be at least 0") }
        if batch < 1 || newTokens < 1 || promptTokens < 4 { throw ValidationError("--batch and --new-tokens must be at least 1, --prompt-tokens at least 4") }
        if level < 1 || level > 19 { throw ValidationError("--level must be in 1…19") }
        if samples < 1 { throw ValidationError("--samples must be at least 1") }
        if let temperature, !(temperature > 0) { throw ValidationError("--temperature must be above 0") }
        if MatVec.Implementation(rawValue: matvec) == nil {
            throw ValidationError("unknown --matvec \(matvec); choose one of \(MatVec.Implementation.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        switch kind {
        case .dpo: try dp ? runPrivateDPO() : runDPO()
        case .generate: try runGenerate()
        case .tokenize: try runTokenize()
        case .checkpoint: try runCheckpoint()
        case .gemm: try runGemm()
        case .forward: try runForward()
        }
    }

    func f(_ x: Double, _ d: Int = 3) -> String { String(format: "%.\(d)f", x) }

    func emit<T: Encodable>(_ report: T, _ text: () -> String) throws {
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            Output.line(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            Output.line(text())
        }
    }

    // MARK: dpo

    func runDPO() throws {
        // MPI only when started by mpirun: a plain run stays a plain process (no singleton MPI start-up).
        let underMPI = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil
        let comm: MPICommunicator? = underMPI ? try MPICommunicator.world() : nil
        let ranks = comm?.size ?? 1
        try configureThreads(compute.threads, ranks: ranks)
        let threads = ThreadPool.threads
        let name = config ?? "tiny"
        var model = ModelConfig.presets[name]!
        model.maxPositions = max(model.maxPositions, seq)
        let report = try DPOBenchmark.run(configName: name, config: model, pairs: pairs ?? (name == "tiny" ? 8 : 2),
                                          sequenceLength: seq, steps: steps ?? 10, warmup: warmup ?? 3, threads: threads,
                                          loraRank: lora, communicator: ranks > 1 ? comm : nil)
        guard (comm?.rank ?? 0) == 0 else { return }
        try emit(report) {
            var s = """
            dualign bench  config=\(report.config)  \(report.loraRank > 0 ? "LoRA r=\(report.loraRank) alpha=\(2 * report.loraRank)  trainable" : "params")=\(report.parameters)  pairs=\(report.pairs)  seq=\(report.sequenceLength)  \(ranks > 1 ? "ranks=\(ranks)  threads/rank" : "threads")=\(report.threads)  matmul=\(report.matmulBackend ?? "?") (\(report.matmulKernels ?? "?"))  blas=\(report.blasCore ?? "?")
              step       \(f(report.stepSeconds)) s (median of \(report.steps))
              forward    \(f(report.forwardSeconds)) s   (policy + reference)
              backward   \(f(report.backwardSeconds)) s
            """
            if let ar = report.allReduceSeconds, let share = report.allReduceShare, let alone = report.allReduceAloneSeconds {
                s += "\n  allreduce  \(f(ar)) s   (\(f(100 * share, 1)) % of the step; \(f(alone)) s alone after a barrier, \(report.parameters) floats)"
            }
            s += """

              optimizer  \(f(report.optimizerSeconds)) s
              tokens/s   \(f(report.tokensPerSecond, 1))   (policy tokens, chosen + rejected)
              MFU        \(f(100 * report.mfu, 1)) %  of \(f(report.peakGFLOPS, 1)) GFLOP/s measured sgemm peak of \(report.matmulBackend ?? "?") (\(f(report.flopsPerStep / 1e9, 1)) GFLOP/step)
            """
            if let machine = report.machinePeakGFLOPS, let mfu = report.machineMFU {
                s += "\n             \(f(100 * mfu, 1)) %  of \(f(machine, 1)) GFLOP/s measured fp32 FMA peak of the machine (widest vectors, all threads)"
            }
            return s
        }
    }

    // MARK: dpo --dp

    func runPrivateDPO() throws {
        guard ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] == nil else {
            throw ValidationError("--dp times one rank; run it without mpirun")
        }
        guard lora >= 0 else { throw ValidationError("--lora must be ≥ 0 (0: full fine-tuning)") }
        try configureThreads(compute.threads, ranks: 1)
        let name = config ?? "tiny"
        var model = ModelConfig.presets[name]!
        model.maxPositions = max(model.maxPositions, seq)
        let r = try PrivateStepBenchmark.run(configName: name, config: model, loraRank: lora, pairs: pairs ?? (name == "tiny" ? 8 : 2),
                                             sequenceLength: seq, steps: steps ?? 10, warmup: warmup ?? 3, threads: ThreadPool.threads)
        try emit(r) {
            """
            dualign bench --dp  config=\(r.config)  \(r.loraRank > 0 ? "LoRA r=\(r.loraRank)" : "full fine-tuning")  trainable=\(r.trainable)  pairs=\(r.pairs)  seq=\(r.sequenceLength)  threads=\(r.threads)  (medians of \(r.steps))
                             non-private   private
              step           \(f(r.nonPrivateSeconds))         \(f(r.privateSeconds)) s  (private without noise)
              forward        \(f(r.nonPrivateForwardSeconds))         \(f(r.privateForwardSeconds)) s  (policy + reference, DPO loss)
              backward       \(f(r.nonPrivateBackwardSeconds))         \(f(r.clippedSumSeconds)) s  (private: per-example norms, clipping, clipped sum)
                 of which    \(f(r.perExamplePassSeconds)) s per-example pass (norm arithmetic \(f(r.normArithmeticSeconds)) s), \(f(r.clippingSeconds)) s \(r.loraRank > 0 ? "clipped sum" : "clipped backward")
              noise                        \(f(r.seededNoiseSeconds)) s seeded, \(f(r.secureNoiseSeconds)) s secure (\(r.secureNoiseKernel)) (\(r.trainable) values)
              ratio          \(f(r.medianPairedRatio, 2))× without noise (median of step pairs), \(f(r.ratioSeededNoise, 2))× with seeded noise, \(f(r.ratioSecureNoise, 2))× with secure noise
              per-example    \(r.perExampleBytes) bytes held (\(f(r.perExampleBytesPerExample / 1e6, 2)) MB per example\(r.loraRank > 0 ? "" : ", scratch reused example to example"))
            """
        }
    }

    // MARK: generate

    func runGenerate() throws {
        try configureThreads(compute.threads, ranks: 1)
        let spec = model ?? "smollm2-135m"
        let loaded = try ModelSource.load(spec)
        let tokenizer = try loaded.requireTokenizer()
        let prompts = GenerationBenchmark.prompts(tokenizer: tokenizer, count: batch, length: promptTokens)
        MatVec.implementation = MatVec.Implementation(rawValue: matvec)!
        let sampled = samples > 1 || temperature != nil
        let (report, outputs) = GenerationBenchmark.run(model: loaded.model, name: loaded.source.lastPathComponent, prompts: prompts,
                                                        samples: samples, temperature: sampled ? temperature ?? 1 : nil,
                                                        newTokens: newTokens, repeats: steps ?? 3, warmup: warmup ?? 1,
                                                        threads: ThreadPool.threads)
        if let writePrompts {
            var object: [String: Any] = ["prompts": prompts.map { $0.map(Int.init) }, "new_tokens": newTokens,
                                         "dualign_outputs": outputs.map { $0.map(Int.init) },
                                         "dualign_tokens_per_s": report.tokensPerSecond, "samples": samples]
            if let t = report.temperature { object["temperature"] = Double(t) }
            try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: URL(fileURLWithPath: writePrompts))
        }
        try emit(report) {
            """
            dualign bench --kind generate  model=\(report.model)  batch=\(report.batch)  samples=\(report.samples)  new-tokens=\(report.newTokens)  prompts=\(report.promptLengths.min()!)–\(report.promptLengths.max()!) tokens  threads=\(report.threads)  matmul=\(Matmul.backend) (\(Matmul.backend.kernels))  blas=\(report.blasCore ?? "?")  matvec=\(report.matvec)
              generate   \(f(report.seconds)) s (median of \(report.repeats); \(report.temperature.map { "temperature \(f(Double($0), 2))" } ?? "greedy"), KV cache, no stop tokens)
              tokens/s   \(f(report.tokensPerSecond, 1))   (\(report.batch * report.samples * report.newTokens) generated tokens per call)
              prefill    \(f(report.prefillSeconds)) s;  decode \(f(report.decodeTokensPerSecond, 1)) tokens/s after it
            """
        }
    }

    // MARK: tokenize

    func runTokenize() throws {
        let path = text ?? (FileManager.default.fileExists(atPath: Self.defaultText) ? Self.defaultText : "/usr/share/games/fortunes/fortunes")
        let docs = try TokenizerBenchmark.documents(path: path)
        guard !docs.isEmpty else { throw ValidationError("\(path) holds no text") }
        let url = try ModelSource.resolve(model ?? "smollm2-135m")
        var isDirectory: ObjCBool = false
        FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory)
        let make: () throws -> BPETokenizer
        if isDirectory.boolValue {
            make = { try BPETokenizer(tokenizerJSON: url.appendingPathComponent("tokenizer.json")) }
        } else {
            let gguf = try GGUFFile(contentsOf: url)
            make = { try BPETokenizer(gguf: gguf, source: url.path) }
        }
        let report = try TokenizerBenchmark.run(source: path, documents: docs, repeats: steps ?? 5, make: make)
        try emit(report) {
            """
            dualign bench --kind tokenize  \(URL(fileURLWithPath: path).lastPathComponent): \(report.documents) documents, \(f(Double(report.bytes) / 1e6, 2)) MB, \(report.tokens) tokens (\(f(Double(report.bytes) / Double(report.tokens), 2)) bytes/token)  1 thread
              cold       \(f(report.coldMBps, 2)) MB/s   (first pass, fresh tokenizer)
              warm       \(f(report.warmMBps, 2)) MB/s   (median of \(report.repeats) more passes; \(f(report.warmTokensPerSecond, 0)) tokens/s)
              load       \(f(report.loadSeconds)) s   (building the tokenizer from the model file)
            """
        }
    }

    // MARK: checkpoint

    func runCheckpoint() throws {
        try configureThreads(compute.threads, ranks: 1)
        let name: String, parameters: FloatBuffer, layout: ParameterLayout, weights: String
        if let model {
            let loaded = try ModelSource.load(model)
            (parameters, layout, weights) = (loaded.model.parameters, loaded.model.layout, loaded.source.lastPathComponent)
            name = config ?? "from-model"
        } else {
            name = config ?? "smollm2-135m"
            let t = try Transformer(config: ModelConfig.presets[name]!, trainable: false)
            t.initializeRandomly(seed: 0)
            (parameters, layout, weights) = (t.parameters, t.layout, "random")
        }
        let root: URL
        if let dir { root = URL(fileURLWithPath: dir) } else {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-bench-\(getpid())")
        }
        defer { if dir == nil { try? FileManager.default.removeItem(at: root) } }
        let report = try CheckpointBenchmark.run(config: name, weights: weights, parameters: parameters, layout: layout,
                                                 directory: root, repeats: steps ?? 3, level: level)
        try emit(report) {
            var s = "dualign bench --kind checkpoint  config=\(report.config)  weights=\(report.weights)  params=\(report.parameters)  zstd level \(report.zstdLevel)  (\(root.path))"
            for m in report.modes {
                s += "\n  \(m.mode.padding(toLength: 9, withPad: " ", startingAt: 0)) \(f(Double(m.rawBytes) / 1e6, 0)) MB → \(f(Double(m.compressedBytes) / 1e6, 0)) MB (ratio \(f(m.ratio, 3)): weights \(f(m.weightsRatio, 3)), Adam m+v \(f(m.optimizerRatio, 3)))"
                s += "\n            write \(f(m.writeMBps, 0)) MB/s (\(f(m.writeSeconds, 2)) s, + finalize \(f(m.finalizeSeconds, 2)) s)"
                s += "\n            read  \(f(m.readWarmMBps, 0)) MB/s page-cached (\(f(m.readWarmSeconds, 2)) s), \(f(m.readColdMBps, 0)) MB/s cold (\(f(m.readColdSeconds, 2)) s), \(f(m.readAfterWriteMBps, 0)) MB/s right after writing (\(f(m.readAfterWriteSeconds, 2)) s)"
            }
            s += "\n  (median of \(report.repeats); MB = 10^6 raw bytes; write = shuffle + zstd + write + fsync; read = read + zstd + unshuffle into the slabs)"
            return s
        }
    }

    // MARK: gemm

    func runGemm() throws {
        try configureThreads(compute.threads, ranks: 1)
        let name = config ?? "smollm2-135m"
        let c = ModelConfig.presets[name]!
        func ints(_ list: String, _ option: String) throws -> [Int] {
            let values = list.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else {
                throw ValidationError("--\(option) takes positive integers separated by commas, got \(list)")
            }
            return values.map { $0! }
        }
        let rowCounts = try ints(rows, "rows"), threadList = try ints(threadCounts, "thread-counts")
        var chosen = GemmVariant.available
        if let variants {
            let names = variants.split(separator: ",").map(String.init)
            chosen = chosen.filter { names.contains($0.description) }
            guard chosen.count == names.count else {
                throw ValidationError("--variants: choose from \(GemmVariant.available.map(\.description).joined(separator: ", "))")
            }
        }
        let layers = GemmBenchmark.layers(C: c.hiddenSize, F: c.intermediateSize, QKV: c.qkvChannels, A: c.attentionChannels,
                                          V: c.vocabSize)
        if !json {
            Output.line("dualign bench --kind gemm  config=\(name)  cpu family \(CPUFeatures.signature.family) model \(CPUFeatures.signature.model) (\(CPUFeatures.current))")
            Output.line("  openblas: \(MatmulBackend.openblas.kernels)   onednn \(OneDNN.version): \(MatmulBackend.onednn.kernels)   blis: \(MatmulBackend.blis.kernels)   default: \(Matmul.backend)")
            Output.line("  GFLOP/s, best of \(steps ?? 3) rounds; columns variant × threads")
        }
        let results = GemmBenchmark.run(layers: layers, rows: rowCounts, threadCounts: threadList, variants: chosen, rounds: steps ?? 3)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            for r in results { Output.line(String(decoding: try enc.encode(r), as: UTF8.self)) }
            return
        }
        let columns = threadList.flatMap { t in chosen.map { "\($0)×\(t)" } }
        Output.line("| layer | product | M×N×K | " + columns.joined(separator: " | ") + " |")
        Output.line("|---|---|---|" + String(repeating: "---|", count: columns.count))
        var index = 0
        while index < results.count {
            let first = results[index]
            let group = results[index..<(index + columns.count)]
            let best = group.map(\.gflops).max()!
            let (m, n, k) = first.product == .forward ? (first.M, first.N, first.K)
                : first.product == .inputGradient ? (first.M, first.K, first.N) : (first.N, first.K, first.M)
            let cells = group.map { $0.gflops == best ? "**\(f($0.gflops, 0))**" : f($0.gflops, 0) }
            Output.line("| \(first.layer) | \(first.product.rawValue) | \(m)×\(n)×\(k) | " + cells.joined(separator: " | ") + " |")
            index += columns.count
        }
    }

    // MARK: forward

    func runForward() throws {
        try configureThreads(compute.threads, ranks: 1)
        let model: Transformer, name: String
        if let spec = self.model {
            let loaded = try ModelSource.load(spec)
            (model, name) = (loaded.model, loaded.source.lastPathComponent)
        } else {
            name = config ?? "smollm2-135m"
            var c = ModelConfig.presets[name]!
            c.maxPositions = max(c.maxPositions, seq)
            model = try Transformer(config: c, trainable: false)
            model.initializeRandomly(seed: 0)
        }
        let report = ForwardBenchmark.run(model: model, name: name, sequences: batch, length: seq, repeats: steps ?? 5,
                                          threads: ThreadPool.threads)
        try emit(report) {
            """
            dualign bench --kind forward  model=\(report.model)  \(report.sequences) × \(report.sequenceLength) tokens  threads=\(report.threads)  matmul=\(report.matmulBackend) (fp32), onednn (bf16)\(BF16Weights.isNative ? "" : "  [no AVX512-BF16: emulated]")
              fp32       \(f(report.fp32Seconds)) s   \(f(report.fp32TokensPerSecond, 0)) tokens/s (median of \(report.repeats))
              bf16       \(f(report.bf16Seconds)) s   \(f(report.bf16TokensPerSecond, 0)) tokens/s;  speedup \(f(report.speedup, 2))× (median of alternated pairs)
              convert    \(f(report.conversionSeconds)) s   (weights to bf16, once per withBF16Weights block)
              |Δ| log-prob sums  max \(f(report.maxAbsoluteError, 4)) nats, max relative \(String(format: "%.2e", report.maxRelativeError))
            """
        }
    }
}
