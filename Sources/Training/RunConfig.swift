// The configuration of a training run: model, data, optimisation, loss, checkpoints. Read from YAML
// by the command line (with --set overrides), validated here, saved with the run.

import Foundation
import Tensors
import Alignment
import Datasets
import Models
import Tokenizers

/// What a run trains.
public enum TrainingTask: String, Codable, CaseIterable, Sendable {
    case sft, dpo, reward, cost
    /// PPO on rollouts sampled from the policy (its objective lives in Pipelines: it samples and scores).
    case ppo
}

/// A configuration a user wrote that cannot run; names the key and says what to do.
public struct RunConfigError: Error, CustomStringConvertible, Equatable {
    public let key: String
    public let message: String
    public init(key: String, message: String) { self.key = key; self.message = message }
    public var description: String { "config: \(key): \(message)" }
}

/// A whole run.
public struct RunConfig: Codable, Equatable, Sendable {
    /// Set by the subcommand (`dualign train dpo` → dpo).
    public var task: TrainingTask = .dpo
    /// A named model (smollm2-135m), a GGUF file, or a Hugging Face directory.
    public var model: String = "smollm2-135m"
    /// Where checkpoints, metrics and the resolved config go (shared storage under MPI).
    public var outputDir: String = "runs/default"
    public var seed: UInt64 = 0
    public var data: DataConfig = DataConfig()
    public var optimizer: OptimizerConfig = OptimizerConfig()
    public var dpo: DPOConfig = DPOConfig()
    public var scoreModel: ScoreModelConfig = ScoreModelConfig()
    /// PPO (`dualign train ppo`, `dualign align ppo-lag`).
    public var ppo: PPOConfig = PPOConfig()
    /// LoRA adapters instead of full fine-tuning (rank 0: off).
    public var lora: LoRAConfig = LoRAConfig()
    /// Supervised fine-tuning's loss normalisation.
    public var sft: SFTConfig = SFTConfig()
    /// Differentially private training (DP-SGD); off unless dp.epsilon or dp.noiseMultiplier is given.
    public var dp: PrivacyConfig = PrivacyConfig()
    public var checkpoint: CheckpointConfig = CheckpointConfig()
    public var evaluation: EvaluationConfig = EvaluationConfig()
    public var distributed: DistributedConfig = DistributedConfig()
    /// Constrained alignment (`dualign align`); ignored by `dualign train`.
    public var align: AlignConfig = AlignConfig()
    /// SAIL online alignment (`dualign align sail`); ignored otherwise.
    public var sail: SAILSettings = SAILSettings()
    /// The private RLHF pipeline (`dualign align dp-rlhf`); ignored otherwise.
    public var dpRLHF: PrivateRLHFSettings = PrivateRLHFSettings()

    public init() {}

    /// Checks every field a user can get wrong; the error names the key.
    public func validate() throws {
        func fail(_ key: String, _ m: String) -> RunConfigError { RunConfigError(key: key, message: m) }
        if outputDir.isEmpty { throw fail("outputDir", "must name a directory for checkpoints and metrics") }
        if data.datasets.isEmpty { throw fail("data.datasets", "list at least one dataset (schema and paths)") }
        if data.maxLength < 8 { throw fail("data.maxLength", "must be at least 8 tokens, got \(data.maxLength)") }
        if data.maxPromptLength >= data.maxLength {
            throw fail("data.maxPromptLength", "\(data.maxPromptLength) leaves no room for a response within maxLength \(data.maxLength)")
        }
        let o = optimizer
        if o.globalBatchSize < 1 { throw fail("optimizer.globalBatchSize", "must be at least 1") }
        if o.microBatchSize < 1 { throw fail("optimizer.microBatchSize", "must be at least 1") }
        if o.maxSteps < 0 || o.epochs < 0 { throw fail(o.maxSteps < 0 ? "optimizer.maxSteps" : "optimizer.epochs", "must be ≥ 0") }
        // maxSteps 0 with epochs 0 (both written) is an evaluation-only run: the held-out pairs are evaluated, nothing is trained.
        if o.maxSteps == 0 && o.epochs == 0 && !data.datasets.contains(where: { $0.evalFraction > 0 }) {
            throw fail("optimizer.maxSteps", "give maxSteps ≥ 1 or epochs > 0 (maxSteps 0 with epochs 0 evaluates only, and needs a dataset with evalFraction > 0)")
        }
        if !(o.learningRate > 0) { throw fail("optimizer.learningRate", "must be positive, got \(o.learningRate)") }
        if o.warmupSteps < 0 { throw fail("optimizer.warmupSteps", "must be ≥ 0") }
        if !(o.maxGradNorm > 0) { throw fail("optimizer.maxGradNorm", "must be positive (use a large value to disable clipping)") }
        if !(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1) { throw fail("optimizer.beta1/beta2", "must be in [0, 1)") }
        do { try dpo.lossConfig.validate() } catch { throw fail("dpo", "\(error)") }
        if task == .ppo { try ppo.validate(optimizer: optimizer, data: data) }
        if lora.rank < 0 { throw fail("lora.rank", "must be ≥ 0 (0: full fine-tuning), got \(lora.rank)") }
        if lora.rank > 0 {
            if !(lora.alpha > 0) { throw fail("lora.alpha", "must be positive (PEFT's lora_alpha; e.g. twice the rank), got \(lora.alpha)") }
            if !(lora.dropout >= 0 && lora.dropout < 1) { throw fail("lora.dropout", "must be in [0, 1), got \(lora.dropout)") }
            if lora.targets.isEmpty { throw fail("lora.targets", "name at least one of \(LoRATarget.allCases.map(\.rawValue).joined(separator: ", "))") }
        }
        try dp.validate()
        if align.method == .dpRLHF { try dpRLHF.validate() }
        if checkpoint.every < 0 || checkpoint.keepLast < 1 { throw fail("checkpoint", "every must be ≥ 0 and keepLast ≥ 1") }
        if evaluation.every < 0 { throw fail("evaluation.every", "must be ≥ 0 (0: only at the end)") }
        if !(distributed.collectiveTimeout > 0) { throw fail("distributed.collectiveTimeout", "must be positive seconds") }
        if distributed.oobKeepaliveTime < 1 || distributed.oobKeepaliveInterval < 1 || distributed.oobKeepaliveProbes < 1 {
            throw fail("distributed.oobKeepalive*", "time, interval and probes must each be at least 1")
        }
        if let m = distributed.matmulBackend, m != "auto", MatmulBackend(rawValue: m.lowercased()) == nil {
            throw fail("distributed.matmulBackend", "unknown matrix backend \(m); choose one of \(MatmulBackend.allCases.map(\.rawValue).joined(separator: ", ")) or auto")
        }
        if ChatTemplateKind(rawValue: data.template) == nil {
            throw fail("data.template", "unknown template \(data.template); choose one of \(ChatTemplateKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for (i, d) in data.datasets.enumerated() {
            if d.paths.isEmpty { throw fail("data.datasets[\(i)].paths", "list at least one file") }
            if !(d.evalFraction >= 0 && d.evalFraction <= 1) { throw fail("data.datasets[\(i)].evalFraction", "must be in [0, 1] (1: the whole dataset is held out)") }
        }
    }

    /// A stable hash of the fields that change what is trained (not output paths or logging).
    public var trainingHash: String {
        var c = self
        c.outputDir = ""
        c.checkpoint = CheckpointConfig()
        c.evaluation.every = 0
        c.distributed = DistributedConfig()
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return StableHash.hex(Array((try? enc.encode(c)) ?? Data()))
    }
}

public struct DataConfig: Codable, Equatable, Sendable {
    public var datasets: [DatasetSpec] = []
    /// Chat template that renders prompts: chatml, safe-rlhf, hh-rlhf.
    public var template: String = ChatTemplateKind.chatML.rawValue
    /// Prompt + response tokens at most.
    public var maxLength: Int = 512
    /// Prompt tokens at most (the end of the prompt is kept).
    public var maxPromptLength: Int = 256
    /// Use at most this many training pairs (after the held-out split, evenly spaced over them); nil: all.
    public var maxPairs: Int?
    public init() {}
}

public struct OptimizerConfig: Codable, Equatable, Sendable {
    /// Pairs (or sequences) per optimizer step, over all ranks and micro-steps.
    public var globalBatchSize: Int = 8
    /// Pairs per rank per forward/backward; accumulation steps = global / (ranks × micro).
    public var microBatchSize: Int = 2
    /// Optimizer steps (0: derive from epochs).
    public var maxSteps: Int = 0
    public var epochs: Double = 1
    public var learningRate: Float = 5e-6
    public var schedule: String = "cosine"
    public var warmupSteps: Int = 0
    public var weightDecay: Float = 0
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var maxGradNorm: Double = 10
    public init() {}
}

public struct DPOConfig: Codable, Equatable, Sendable {
    public var beta: Double = 0.1
    /// sigmoid (DPO), ipo, hinge.
    public var loss: PreferenceLossType = .sigmoid
    public var labelSmoothing: Double = 0
    public var referenceFree: Bool = false
    /// Sequence log-probs as the sum (DPO) or the mean (TRL's IPO) over response tokens.
    public var reduction: SequenceReduction = .sum
    public init() {}
    public var lossConfig: PreferenceLossConfig {
        PreferenceLossConfig(beta: beta, type: loss, labelSmoothing: labelSmoothing, referenceFree: referenceFree)
    }
}

public struct LoRAConfig: Codable, Equatable, Sendable {
    /// Adapter rank r (0: no adapters, full fine-tuning).
    public var rank: Int = 0
    /// PEFT's lora_alpha: the adapter output is scaled by alpha / r.
    public var alpha: Double = 16
    /// Dropout on each adapter's input (PEFT's lora_dropout).
    public var dropout: Double = 0
    /// The adapted projections: any of q, k, v, o, gate, up, down.
    public var targets: [LoRATarget] = LoRATarget.allCases
    /// A PEFT adapter directory (`final-adapter` of an earlier run) to start the adapters from instead of PEFT's initialisation.
    public var initialAdapters: String?
    public init() {}

    /// The model-side settings, with A's initialisation seeded by the run's seed.
    public func settings(seed: UInt64) -> LoRASettings {
        LoRASettings(rank: rank, alpha: alpha, dropout: dropout, targets: targets, seed: seed)
    }
}

/// How SFT weighs response tokens.
public enum SFTNormalization: String, Codable, Sendable {
    /// Every response token of the global batch alike (the mean over the batch's tokens).
    case tokens
    /// Every example alike (each example's mean over its tokens, then the mean over examples); needed by dp.
    case example
}

public struct SFTConfig: Codable, Equatable, Sendable {
    public var normalization: SFTNormalization = .tokens
    public init() {}
}

public struct ScoreModelConfig: Codable, Equatable, Sendable {
    /// Coefficient of the score² regulariser (Safe-RLHF default 0.001).
    public var regularization: Double = 0.001
    public init() {}
}

public struct CheckpointConfig: Codable, Equatable, Sendable {
    /// Steps between checkpoints (0: only at the end).
    public var every: Int = 50
    public var keepLast: Int = 2
    /// Byte-plane shuffle before zstd (better ratio; the payload needs Dualign to unshuffle).
    public var byteShuffle: Bool = true
    /// zstd level; 1 compresses shuffled fp32 as well as higher levels, twice as fast.
    public var zstdLevel: Int = 1
    /// Stop after writing the checkpoint of this step (tests of interrupted runs); nil: never.
    public var stopAfterStep: Int?
    public init() {}
}

public struct EvaluationConfig: Codable, Equatable, Sendable {
    /// Steps between evaluations on the held-out split (0: at the end only).
    public var every: Int = 0
    /// Held-out pairs evaluated at most.
    public var maxPairs: Int = 256
    public init() {}
}

public struct DistributedConfig: Codable, Equatable, Sendable {
    /// Seconds a collective may take before the job reports the missing ranks and aborts.
    public var collectiveTimeout: Double = 600
    /// Open MPI's out-of-band TCP keepalive (mpirun ↔ daemons): idle seconds before the first probe,
    /// seconds between probes, probes lost before a host is declared dead. A silent host (cut link) is
    /// noticed after about time + interval × probes seconds (default 60 + 10 × 6 = 2 min; Open MPI's own
    /// default is about 8 min). Shorter settings end jobs on short network blips: 2, 1, 3 notices a dead
    /// host in about 5 s but also kills a job over a 3 s outage. Applied by `launch/train.sh` via
    /// `dualign launch-flags`, since mpirun reads them before any rank starts.
    public var oobKeepaliveTime: Int = 60
    public var oobKeepaliveInterval: Int = 10
    public var oobKeepaliveProbes: Int = 6
    /// Kernel/BLAS threads per rank (nil: cores ÷ ranks on the node).
    public var threads: Int?
    /// The matrix backend: "openblas", "onednn", "blis" or "auto" (nil: auto — oneDNN where the processor
    /// has AVX-512, else OpenBLAS). The environment variable DUALIGN_MATMUL overrides it. Like `threads`, it
    /// changes how the products run, not what they compute, so a resumed run may change it.
    public var matmulBackend: String?
    public init() {}
}

extension RunConfig {
    /// Keys a resumed run may change: budgets, schedules of side work, outputs and the machine. Every
    /// other key changes the math of the steps already taken, so a resume with a new value is refused.
    public static let budgetKeyPrefixes = ["outputDir", "optimizer.maxSteps", "optimizer.epochs", "checkpoint.", "evaluation.",
                                           "distributed.", "align."]

    /// The values of every key that fixes the math of the steps taken, flattened to `a.b.c` paths
    /// with JSON values (stored in checkpoints to name what changed on resume).
    public var mathKeys: [String: String] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        guard let data = try? enc.encode(self), let object = try? JSONSerialization.jsonObject(with: data) else { return [:] }
        var out: [String: String] = [:]
        func walk(_ value: Any, _ path: String) {
            if let d = value as? [String: Any] {
                for (k, v) in d { walk(v, path.isEmpty ? k : path + "." + k) }
            } else {
                let text = (try? JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys, .fragmentsAllowed]))
                    .map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
                out[path] = String(text.dropFirst().dropLast())
            }
        }
        walk(object, "")
        return out.filter { key, _ in !Self.budgetKeyPrefixes.contains { key == $0 || key.hasPrefix($0) } }
    }

    /// The keys whose values differ from `saved` (a checkpoint's `mathKeys`), sorted.
    public func changedMathKeys(since saved: [String: String]) -> [String] {
        let now = mathKeys
        return Set(now.keys).union(saved.keys).filter { now[$0] != saved[$0] }.sorted()
    }
}
