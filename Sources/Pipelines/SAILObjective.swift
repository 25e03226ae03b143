// SAIL as a training objective (algorithms.md §4): on the trainer's seam, `beginStep` routes each row of
// the global batch (plain DPO, SAIL-DP, SAIL-PP, SAIL-PR, seeded by global row), swaps in buffered online
// pairs and runs generation rounds; `evaluate` is SAIL's per-row loss (Alignment's `sailLoss`, both score-term
// forms). Dataset pairs use DPO's cached reference log-probs; online pairs carry theirs, computed when they
// were generated with the frozen reference (the base with adapters off under LoRA, else a copy of the
// initial policy). Held-out pairs are scored with plain DPO, as the authors' evaluation does.
//
// Example ids of a training step are positions 0..<G in its global batch (the step's rows); held-out ids
// are dataset indices. Metrics of a step's generation round are reported once (rank 0, with count/k = 1).

import Foundation
import Alignment
import Datasets
import Distributed
import Models
import Tensors
import Training

/// SAIL's objective: DPO over a batch whose rows are routed to SAIL's terms and online pairs.
public final class SAILObjective: TrainingObjective {
    public let config: RunConfig
    public let settings: SAILSettings
    public let sail: SAILConfig
    /// The dataset pairs and their cached reference log-probs.
    public let offline: DPOObjective
    let data: TrainingData
    let padToken: Int32
    let stopTokens: Set<Int32>
    /// The score model of SAIL-PR labels (nil: no PR route) and a key identifying it.
    let labeller: Transformer?
    let labellerKey: String
    /// The online state (identical on every rank; checkpointed).
    public private(set) var state = SAILOnlineState()
    /// The current step's rows (positions of its global batch).
    public internal(set) var rows: [SAILStepRow] = []
    /// The frozen reference for online pairs when it is neither given nor the policy's base.
    private var frozenReference: Transformer?
    private var reference: Transformer?
    /// Metrics of this step's round, reported by the first training micro-batch on rank 0.
    private var pendingMetrics: [String: Double] = [:]
    private var rank = 0
    /// Tokens spent by generation rounds in this invocation, over all ranks.
    public private(set) var generatedTokens = 0.0
    public private(set) var forwardTokens = 0.0

    /// - Parameters:
    ///   - labeller: the score model of SAIL-PR (required when the PR route is on), with `labellerKey` its identity.
    ///   - stopTokens: tokens that end an online response (the template's end of turn, end of sequence).
    public init(config: RunConfig, data: TrainingData, padToken: Int32, stopTokens: Set<Int32>,
                labeller: Transformer? = nil, labellerKey: String = "") throws {
        try config.sail.validate(config)
        if config.sail.routes.contains(.pr) && labeller == nil {
            throw RunConfigError(key: "sail.labeller", message: "SAIL-PR needs its \(config.sail.labeller.rawValue) model loaded")
        }
        self.config = config
        settings = config.sail
        sail = config.sail.sailConfig(beta: config.dpo.beta, runSeed: config.seed)
        offline = DPOObjective(config: config, data: data, padToken: padToken)
        self.data = data
        self.padToken = padToken
        self.stopTokens = stopTokens
        self.labeller = labeller
        self.labellerKey = labellerKey
    }

    public var name: String { "sail" }
    public var request: ModelRequest { .logProbs }
    public var trainCount: Int { data.train.count }
    public var evalCount: Int { data.eval.count }
    public var dataReport: String { offline.dataReport }
    public var evalMetricKeys: Set<String>? { ["rewards/accuracies", "rewards/margins"] }
    /// DPO's reference key and the labeller's identity: a resume with another reference, data or labeller is refused.
    public var preparedKey: String { labellerKey.isEmpty ? offline.preparedKey : offline.preparedKey + "+" + labellerKey }

    /// Reference log-probs of the dataset pairs (cached), and the frozen reference online pairs need.
    public func prepare(_ context: ObjectiveContext) throws {
        rank = context.comm.rank
        try offline.prepare(context)
        reference = context.reference
        if settings.generates && context.reference == nil && context.policy.adapters == nil && frozenReference == nil {
            // Called before any update (and before a resume restores weights): the policy is the initial model.
            let copy = try Transformer(config: context.policy.config, trainable: false)
            copy.parameters.copy(from: context.policy.parameters)
            frozenReference = copy
        }
        reference = reference ?? frozenReference
        if let labeller, labeller.config.vocabSize != context.policy.config.vocabSize {
            throw RunConfigError(key: settings.labeller == .reward ? "align.rewardModel" : "align.costModel",
                                 message: "the labeller has a vocabulary of \(labeller.config.vocabSize) tokens, the policy \(context.policy.config.vocabSize); SAIL-PR scores the policy's token ids, so the labeller must share its tokenizer (train it with `dualign train \(settings.labeller.rawValue)` from the same base)")
        }
    }

    /// Routes the step's rows, consumes online pairs, runs a generation round when the buffers run short,
    /// and renames the plan's examples to the step's positions.
    public func beginStep(_ plan: inout StepPlan, context: ObjectiveContext) throws {
        let G = plan.global.count
        rows = state.routeStep(plan.step, offline: plan.global, config: sail) { data.train[$0].promptTokens.map(Int32.init) }
        var m: [String: Double] = [:]
        if state.shouldGenerate(config: sail, globalBatch: G, generationPrompts: settings.generationPrompts) {
            let (prompts, first) = state.takeRound(generationPrompts: settings.generationPrompts)
            let generator = SAILGenerator(config: sail, comm: context.comm, policy: context.policy, reference: reference, labeller: labeller,
                                          labellerReversed: settings.labeller == .cost,
                                          options: SamplingOptions(temperature: Float(settings.temperature), maxNewTokens: settings.responseTokens(config),
                                                                   seed: sail.seed ^ 0x5341_494C_4745_4E00),
                                          stopTokens: stopTokens, batchSize: settings.generationBatchSize, padToken: padToken)
            let round = try generator.run(prompts, firstIndex: first)
            state.refill(with: round.pairs, reuse: settings.reuse, seed: sail.seed)
            generatedTokens += round.generatedTokens
            forwardTokens += round.forwardTokens
            m = round.metrics
            context.note(String(format: "sail: round %d at step %d: %d prompts, %.0f tokens sampled in %.1f s, labelled in %.1f s; buffers dpp %d, dpr %d",
                                state.rounds, plan.step + 1, prompts.count, round.generatedTokens, m["sail/generation/seconds"] ?? 0,
                                m["sail/label/seconds"] ?? 0, state.remaining(.policyPolicy), state.remaining(.policyReward)))
        } else if settings.generates {
            for k in ["sail/generation/tokens", "sail/generation/seconds", "sail/label/seconds", "sail/label/tokens"] { m[k] = 0 }
        }
        m["sail/generation/rounds"] = Double(state.rounds)
        m["sail/queue"] = Double(state.queue.count)
        m["sail/buffer/dpp"] = Double(state.remaining(.policyPolicy))
        m["sail/buffer/dpr"] = Double(state.remaining(.policyReward))
        m["sail/seen/offline"] = Double(state.offlineRows)
        m["sail/seen/online"] = Double(state.onlineRows)
        pendingMetrics = m
        // The step's examples become its positions; micro-batches keep their cut (ids within a step are distinct).
        var position: [Int: Int] = [:]
        for (j, id) in plan.global.enumerated() { position[id] = j }
        plan.microBatches = plan.microBatches.map { $0.map { position[$0]! } }
        plan.global = Array(0..<G)
    }

    /// Chosen rows then rejected rows of the examples (step positions for training, dataset ids for held-out).
    public func microBatch(_ examples: [Int], split: ExampleSplit) throws -> MicroBatch {
        var prompts: [[Int32]] = [], chosen: [[Int32]] = [], rejected: [[Int32]] = []
        for e in examples {
            if split == .train, let pair = rows[e].online {
                prompts.append(pair.prompt); chosen.append(pair.chosen); rejected.append(pair.rejected)
            } else {
                let p = split == .train ? data.train[rows[e].offline] : data.eval[e]
                prompts.append(p.promptTokens.map(Int32.init))
                chosen.append(p.chosenTokens.map(Int32.init))
                rejected.append(p.rejectedTokens.map(Int32.init))
            }
        }
        let sequences = zip(prompts, chosen).map { $0 + $1 } + zip(prompts, rejected).map { $0 + $1 }
        let starts = prompts.map(\.count)
        return MicroBatch(examples: examples, batch: TokenBatch(sequences: sequences, padToken: padToken),
                          responseStarts: starts + starts, rowExample: Array(examples.indices) + Array(examples.indices))
    }

    /// SAIL's loss of each row: its route's terms (plain DPO on held-out pairs), ∂ℓ_i/∂(token log-probs) unscaled.
    public func evaluate(_ batch: MicroBatch, outputs: ModelOutputs, split: ExampleSplit) throws -> ObjectiveResult {
        let m = batch.examples.count
        let (sums, counts) = PairObjective.responseSums(outputs, rows: 2 * m, reduction: .sum)
        var losses: [Double] = [], dChosen: [Double] = [], dRejected: [Double] = []
        var metrics: [String: Double] = [:]
        if split == .train { for route in SAILRoute.allCases { metrics["sail/routed/\(route.codeName)"] = 0 } }
        for (k, e) in batch.examples.enumerated() {
            let route: SAILRoute, globalRow: UInt64, ref: (chosen: Double, rejected: Double)
            if split == .train {
                let row = rows[e]
                route = row.route
                globalRow = row.globalRow
                ref = row.online.map { ($0.referenceChosen, $0.referenceRejected) } ?? offline.referenceLogProbs(row.offline, split: .train)
                metrics["sail/routed/\(row.routed.codeName)", default: 0] += 1
            } else {
                (route, globalRow, ref) = (.dpo, 0, offline.referenceLogProbs(e, split: .eval))
            }
            let r: SAILLossResult
            do {
                r = try sailLoss(policyChosen: [sums[k]], policyRejected: [sums[m + k]], referenceChosen: [ref.chosen],
                                 referenceRejected: [ref.rejected], routes: [route], globalRows: [globalRow], config: sail, normalizer: 1)
            } catch let error as SAILError {
                throw SAILGenerationError(message: "row \(globalRow) (\(route.codeName)): \(error.description)")
            }
            losses.append(r.loss)
            dChosen.append(r.dPolicyChosen[0])
            dRejected.append(r.dPolicyRejected[0])
            for (key, v) in r.metrics { metrics[key, default: 0] += v }
        }
        if split == .train {
            // Step-level values, once per step over all ranks: a count of 1 makes the trainer report them as they are.
            let first = !pendingMetrics.isEmpty && rank == 0
            metrics["sail/train/tokens"] = Double(batch.tokens)
            metrics["count/sail/train/tokens"] = first ? 1 : 0
            if first { for (k, v) in pendingMetrics { metrics[k] = v; metrics["count/" + k] = 1 } }
            pendingMetrics = [:]
        }
        return ObjectiveResult(losses: losses,
                               dLogProbs: PairObjective.responseGradients(dChosen + dRejected, outputs: outputs, counts: counts, reduction: .sum),
                               metrics: metrics)
    }

    public func checkpointState() throws -> Data? {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return try enc.encode(state)
    }

    public func restore(checkpointState: Data) throws {
        do { state = try JSONDecoder().decode(SAILOnlineState.self, from: checkpointState) } catch {
            throw SAILGenerationError(message: "the checkpoint's SAIL state (objective.bin) does not decode (\(error)); resume with the build that wrote it, or use a new outputDir")
        }
    }
}
