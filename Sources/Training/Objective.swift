// The trainer's seam: a training objective says which examples a step uses, how an example becomes
// model rows, and what the loss and its gradient with respect to the model's outputs are. The loop
// (Trainer) owns everything else: the forward and backward passes, accumulation over micro-batches,
// the gradient all-reduce, clipping, the optimizer, checkpoints, evaluation and logs.
//
// Legend: E examples in a micro-batch, R rows (sequences), T time, N response-token targets.
//
// Losses are per example: the step's loss is (1/G)·Σ_i ℓ_i over the G examples of the global batch,
// and an objective returns ∂ℓ_i/∂(outputs) unscaled, each example touching only its own rows. That is
// what DP-SGD needs to clip each example's gradient, and what makes N ranks equal one rank.

import Foundation
import Distributed
import Models
import Tensors

/// Which outputs of the model an objective reads.
public struct ModelRequest: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// Log-probabilities of each row's response tokens (the LM head at their positions).
    public static let logProbs = ModelRequest(rawValue: 1)
    /// The score head at each row's last real token (reward and cost models).
    public static let scores = ModelRequest(rawValue: 2)
    /// The value heads at each response-token target's position (PPO's critics on the trunk).
    public static let values = ModelRequest(rawValue: 4)
}

/// The training or the held-out examples of an objective.
public enum ExampleSplit: Sendable {
    case train, eval
}

/// The rows of one micro-batch as the model sees them.
public struct MicroBatch {
    /// The examples, by the objective's ids.                                          // (E)
    public var examples: [Int]
    /// Right-padded token rows.                                                       // (R, T)
    public var batch: TokenBatch
    /// The first response token of each row (≥ 1).                                    // (R)
    public var responseStarts: [Int]
    /// The position in `examples` of each row's example.                              // (R)
    public var rowExample: [Int]

    public init(examples: [Int], batch: TokenBatch, responseStarts: [Int], rowExample: [Int]) {
        precondition(responseStarts.count == batch.batchSize && rowExample.count == batch.batchSize)
        self.examples = examples; self.batch = batch; self.responseStarts = responseStarts; self.rowExample = rowExample
    }

    /// Real tokens in the micro-batch.
    public var tokens: Int { batch.realTokens }
}

/// What the model computed for a micro-batch.
public struct ModelOutputs {
    /// The response-token targets (`sequence[n]` is the row of target n).
    public var targets: TokenTargets
    /// log π(target) at each target (empty unless requested).                         // (N)
    public var logProbs: [Float]
    /// The score head at each row's last token (empty unless requested).              // (R)
    public var scores: [Float]
    /// The value heads at each target, V[n·H + h] (empty unless requested).            // (N, H)
    public var values: [Float] = []
}

/// An objective's loss on a micro-batch and its gradient with respect to the model's outputs.
public struct ObjectiveResult {
    /// ℓ_i of each example of the micro-batch.                                       // (E)
    public var losses: [Double]
    /// ∂(Σ_i ℓ_i)/∂logProbs (empty when the objective reads no log-probs).            // (N)
    public var dLogProbs: [Float]
    /// ∂(Σ_i ℓ_i)/∂scores (empty when the objective reads no scores).                 // (R)
    public var dScores: [Float]
    /// ∂(Σ_i ℓ_i)/∂values (empty when the objective reads no values).                 // (N, H)
    public var dValues: [Float]
    /// Metric sums over the micro-batch's examples. A key `k` is divided by the step's example count,
    /// or by the sum under `count/k` when the objective reports one (metrics defined on a subset).
    public var metrics: [String: Double]

    public init(losses: [Double], dLogProbs: [Float] = [], dScores: [Float] = [], dValues: [Float] = [], metrics: [String: Double] = [:]) {
        self.losses = losses; self.dLogProbs = dLogProbs; self.dScores = dScores; self.dValues = dValues; self.metrics = metrics
    }
}

/// The examples of one optimizer step: the whole global batch (the same on every rank) and this rank's
/// share cut into micro-batches. The loop fills it from its sampler; an objective may replace examples
/// (online methods put freshly sampled examples in place of offline ones).
public struct StepPlan {
    /// The optimizer step being taken (1-based after it completes; this is the 0-based index).
    public var step: Int
    /// A seed drawn from the trainer's generator for this step (identical on every rank; restored on resume).
    public var seed: UInt64
    /// Every example id of the global batch, in global order.                         // (G)
    public var global: [Int]
    /// This rank's micro-batches (ids of `global`, cut by the sampler).
    public var microBatches: [[Int]]
}

/// What an objective can use while preparing and stepping: the run, the model and the ranks.
public struct ObjectiveContext {
    public let config: RunConfig
    public let comm: Communicator
    /// The model being trained.
    public let policy: Transformer
    /// A separate frozen reference when the run has one (nil: the policy's initial state, or its base with adapters off).
    public let reference: Transformer?
    /// Notes for the run log (rank 0 prints).
    public let note: (String) -> Void
}

/// A task the trainer can train: SFT, DPO, reward and cost models, and the methods built on the seam.
public protocol TrainingObjective: AnyObject {
    /// A short name for logs (`dpo`).
    var name: String { get }
    /// The outputs the model must produce.
    var request: ModelRequest { get }
    /// Training examples (the sampler draws ids 0..<trainCount).
    var trainCount: Int { get }
    /// Held-out examples (ids 0..<evalCount of the eval split).
    var evalCount: Int { get }
    /// What loading the data reported (for the run log).
    var dataReport: String { get }
    /// The metrics written as `eval/<key>` after a held-out pass (nil: every metric).
    var evalMetricKeys: Set<String>? { get }
    /// The source (dataset) held-out example `i` came from; with two sources or more the trainer also
    /// writes each source's `eval/<source>/<key>` (nil: no sources).
    func evalSource(_ i: Int) -> String?

    /// Runs once on every rank before the first step (DPO computes reference log-probs here).
    func prepare(_ context: ObjectiveContext) throws
    /// Runs on every rank at the start of each step; may replace the plan's examples (the online hook).
    func beginStep(_ plan: inout StepPlan, context: ObjectiveContext) throws
    /// The rows of `examples`.
    func microBatch(_ examples: [Int], split: ExampleSplit) throws -> MicroBatch
    /// ℓ_i and ∂ℓ/∂outputs of a micro-batch.
    func evaluate(_ batch: MicroBatch, outputs: ModelOutputs, split: ExampleSplit) throws -> ObjectiveResult
    /// Runs on every rank after the step's gradients are summed over ranks and before the optimizer. `metrics` are
    /// the step's reduced metrics (the same on every rank); the objective may add to them. Returns whether the
    /// update applies: false skips the optimizer on every rank (PPO's guard against an exploding ratio).
    func endStep(_ plan: StepPlan, metrics: inout [String: Double], context: ObjectiveContext) throws -> Bool
    /// A key identifying everything `prepare` computed from (checked on resume; empty: nothing).
    var preparedKey: String { get }
    /// State beyond the model and optimizer that a checkpoint must carry (online buffers); nil: none.
    func checkpointState() throws -> Data?
    /// Restores what `checkpointState` returned.
    func restore(checkpointState: Data) throws
    /// Whether DP-SGD's accounting holds for this objective under `config`: nil when it does, else the
    /// setting that breaks it (named) and why. It holds when ℓ_i depends on example i's own data and on
    /// public or differentially private quantities only (no batch statistics, no model trained without DP on
    /// the same private data), and each sampled example is used in one step's gradient only. The trainer
    /// asks before a run with `dp` starts; the default refuses (an objective must declare itself).
    func privacyRefusal(config: RunConfig) -> RunConfigError?
}

extension TrainingObjective {
    public var evalMetricKeys: Set<String>? { nil }
    public func evalSource(_ i: Int) -> String? { nil }
    public var preparedKey: String { "" }
    public func prepare(_ context: ObjectiveContext) throws {}
    public func beginStep(_ plan: inout StepPlan, context: ObjectiveContext) throws {}
    public func endStep(_ plan: StepPlan, metrics: inout [String: Double], context: ObjectiveContext) throws -> Bool { true }
    public func checkpointState() throws -> Data? { nil }
    public func restore(checkpointState: Data) throws {}
    public func privacyRefusal(config: RunConfig) -> RunConfigError? {
        RunConfigError(key: "dp", message: "the \(name) objective has not declared that its per-example losses fit DP-SGD's accounting (Objective.privacyRefusal); it cannot train with dp")
    }
}
