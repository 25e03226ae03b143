// PPO for language models on the trainer's objective seam (ppo-dp.md §4; PPO-Lagrangian: algorithms.md §5.5).
//
// One optimizer step of the Trainer is one PPO mini-batch. At the first step of each rollout batch,
// `beginStep` samples `rolloutBatchSize` episodes from the current policy (PPORollout.swift), scores them,
// builds the per-token rewards, GAE advantages and returns (PPOEpisode.swift), steps PPO-Lagrangian's λ and
// the adaptive KL controller, and gathers the episodes on every rank. Each step then takes the next
// mini-batch of `optimizer.globalBatchSize` episodes: `ppoEpochs` passes, each a fresh permutation seeded by
// the rollout's seed and the pass. The loss of a mini-batch of G episodes and N response tokens (all ranks) is
//
//     L = (1/N) Σ_t max(−A_t·ρ_t, −A_t·clip(ρ_t, 1 ± ε))  +  vfCoef · Σ_h (1/N) Σ_t ½·max((V−R)², (clip(V, V_old ± ε_v) − R)²)
//
// (TRL's masked means over the whole mini-batch; value heads h on the trunk), written per episode as
// ℓ_i = (G/N)·Σ_{t∈i}(…) so that the trainer's (1/G)·Σℓ_i is L on any number of ranks. `endStep` skips the
// update when the mini-batch's mean ratio exceeds `ratioThreshold` (TRL's guard; all ranks see the same
// reduced mean) and trains separate critics. `trainCount` counts (prompt, PPO epoch) pairs, so the trainer's
// `epochs` and `epoch` metric count passes over the training prompts.
//
// DP-PPO (a `dp` section; algorithms.md §3.1, the paper's Alg. 3): each step's Poisson sample of training
// prompts is that step's rollout batch, sampled from the current policy and trained on once (one PPO epoch, one
// mini-batch), and ℓ_i is episode i's own token mean, (1/T_i)·Σ_{t∈i}(policy + vfCoef·value), so nothing in it
// depends on another episode; its gradient, policy and value heads together, is clipped as one example.

import Foundation
import Alignment
import Datasets
import Distributed
import Models
import Rollout
import Tensors
import Training

/// A rollout batch in flight: its episodes and what produced them.
public struct PPORolloutBatch: Codable, Equatable, Sendable {
    /// The seed of its samples and of its mini-batch permutations.
    public var seed: UInt64
    /// The 0-based optimizer step of its first mini-batch.
    public var startStep: Int
    /// β and λ its advantages were built with.
    public var klCoefficient: Double
    public var lambda: Double?
    /// Every episode, in rollout order.
    public var episodes: [PPOEpisode]
}

/// Everything beyond the weights that a PPO checkpoint carries.
struct PPOState: Codable, Equatable {
    var promptCursor: DataCursor
    var rollout: PPORolloutBatch?
    var kl: KLController
    var lagrangian: PPOLagrangian?
    /// Rollout batches sampled so far.
    var rollouts = 0
    /// Budget over the whole run (all ranks): sampled, forward-only and trained tokens, rollout seconds.
    var generatedTokens = 0.0, forwardTokens = 0.0, trainedTokens = 0.0, rolloutSeconds = 0.0
    /// AdamW steps of each separate critic.
    var criticSteps: [Int] = []
}

/// PPO (one reward stream) or PPO-Lagrangian (reward and cost streams, λ) on rollouts from the policy.
public final class PPOObjective: TrainingObjective {
    public let name: String
    let config: RunConfig
    let settings: PPOConfig
    let prompts: PPOPrompts
    let scoreModels: [Transformer]
    let critics: [PPOCritic]
    let stopTokens: Set<Int32>
    let padToken: Int32
    let promptSampler: GlobalBatchSampler
    let ratioGuard: PPORatioGuard
    var state: PPOState
    /// Set in `prepare`.
    var context: ObjectiveContext?
    var reference: Transformer?
    /// Rollout statistics to log with the step that sampled them.
    var pendingMetrics: [String: Double] = [:]
    /// The step in progress (for messages) and its mini-batch's response tokens over all ranks.
    var currentStep = 0
    var miniBatchTokens = 0.0
    /// Held-out samples of the evaluation pass in progress, by prompt id.
    var evalSamples: [Int: GeneratedSequence] = [:]
    /// Called on rank 0 after each rollout with its statistics (PPO-Lagrangian records λ in pipeline.jsonl).
    public var onRollout: (([String: Double]) -> Void)?
    /// Replaces sampling and scoring (this rank's episodes of a batch, given their prompt ids and the seed); tests
    /// use it to train on a fixed rollout batch.
    var rolloutOverride: ((_ positions: [Int], _ promptIDs: [Int], _ seed: UInt64) throws -> [PPOEpisode])?

    /// Streams: 1 (reward) or 2 (reward, cost).
    var streams: Int { scoreModels.count }
    var lagrangian: Bool { state.lagrangian != nil }

    /// Builds the objective on every rank: `scoreModels` are the reward model (and the cost model for
    /// PPO-Lagrangian, with `lagrangian` its λ state); `critics` the separate critics when `ppo.critic` is `model`.
    init(config: RunConfig, prompts: PPOPrompts, scoreModels: [Transformer], critics: [PPOCritic], lagrangian: PPOLagrangian?,
         stopTokens: Set<Int32>, padToken: Int32, comm: Communicator) throws {
        precondition(scoreModels.count == (lagrangian == nil ? 1 : 2), "PPO reads one score model, PPO-Lagrangian two")
        name = lagrangian == nil ? "ppo" : "ppo-lag"
        self.config = config
        settings = config.ppo
        self.prompts = prompts
        self.scoreModels = scoreModels
        self.critics = critics
        self.stopTokens = stopTokens
        self.padToken = padToken
        guard prompts.train.count >= settings.rolloutBatchSize else {
            throw RunConfigError(key: "ppo.rolloutBatchSize", message: "\(settings.rolloutBatchSize) episodes per rollout, but only \(prompts.train.count) training prompts; lower rolloutBatchSize or add prompts")
        }
        promptSampler = try GlobalBatchSampler(datasetSize: prompts.train.count, globalBatchSize: settings.rolloutBatchSize,
                                               seed: config.seed ^ 0x5050_4F50_524F_4D50)
        ratioGuard = try PPORatioGuard(threshold: settings.ratioThreshold)
        let kl = settings.klController == .adaptive
            ? try KLController.adaptive(initial: settings.klCoefficient, target: settings.klTarget, horizon: settings.klHorizon)
            : try KLController.fixed(settings.klCoefficient)
        state = PPOState(promptCursor: promptSampler.startCursor(), kl: kl, lagrangian: lagrangian, criticSteps: critics.map { _ in 0 })
    }

    // MARK: - TrainingObjective

    public var request: ModelRequest { critics.isEmpty ? [.logProbs, .values] : [.logProbs] }
    /// DP-PPO: every step samples its own rollout batch (the Poisson sample of prompts) and trains on it once.
    var isPrivate: Bool { config.dp.isEnabled }
    public var trainCount: Int { prompts.train.count * settings.ppoEpochs }
    public var evalCount: Int { prompts.eval.count }
    public var dataReport: String { prompts.report + "; \(trainCount) (prompt, PPO epoch) examples" }
    public var evalMetricKeys: Set<String>? {
        Set(["objective/scores", "objective/kl", "objective/rlhf_reward", "objective/response_length"] + (lagrangian ? ["objective/costs"] : []))
    }
    public var preparedKey: String {
        var bytes = Array("\(name) \(prompts.fingerprint) ".utf8)
        // The score models and the prompts (the critics' weights change as they train).
        for m in scoreModels {
            let p = m.parameters.pointer
            var i = 0
            while i < m.layout.count { withUnsafeBytes(of: p[i].bitPattern) { bytes.append(contentsOf: $0) }; i += 4093 }
        }
        return StableHash.hex(bytes)
    }

    /// Mini-batches per pass over a rollout batch.
    var miniBatchesPerEpoch: Int { settings.rolloutBatchSize / config.optimizer.globalBatchSize }

    public func prepare(_ context: ObjectiveContext) throws {
        self.context = context
        let policy = context.policy
        let heads = policy.config.valueHeads
        if critics.isEmpty && heads != streams {
            throw RunConfigError(key: "ppo.critic", message: "the policy has \(heads) value head(s) but \(name) needs \(streams); load it with valueHeads \(streams)")
        }
        for (k, m) in scoreModels.enumerated() where m.config.vocabSize != policy.config.vocabSize {
            throw RunConfigError(key: k == 0 ? "ppo.rewardModel" : "align.costModel", message: "the score model has \(m.config.vocabSize) tokens in its vocabulary, the policy \(policy.config.vocabSize); use a score model trained from the same base")
        }
        let longest = config.data.maxPromptLength + settings.maxNewTokens
        for m in [policy] + scoreModels + critics.map(\.model) where longest > m.config.maxPositions {
            throw RunConfigError(key: "ppo.maxNewTokens", message: "prompts of \(config.data.maxPromptLength) tokens + \(settings.maxNewTokens) new tokens exceed a model's \(m.config.maxPositions) positions")
        }
        // The reference: the given one, the base under the adapters, or a frozen copy of the initial policy
        // (prepare runs before a checkpoint is restored, so the policy still holds its initial weights).
        if let r = context.reference {
            reference = r
        } else if policy.adapters == nil {
            let copy = try Transformer(config: policy.config, trainable: false)
            copy.parameters.copy(from: policy.parameters)
            reference = copy
        }
        context.note("ppo: reference = \(context.reference != nil ? "given model" : policy.adapters != nil ? "the base (adapters off)" : "a frozen copy of the initial policy"); critic = \(critics.isEmpty ? "\(heads) value head(s) on the trunk" : "\(critics.count) separate model(s)"); \(settings.ppoEpochs) epoch(s) × \(miniBatchesPerEpoch) mini-batch(es) of \(config.optimizer.globalBatchSize) per rollout of \(settings.rolloutBatchSize)")
    }

    func rolloutModels(_ context: ObjectiveContext, greedy: Bool = false) -> PPORolloutModels {
        let s = settings
        return PPORolloutModels(policy: context.policy, reference: reference, scoreModels: scoreModels, critics: critics,
                                options: SamplingOptions(greedy: greedy, temperature: Float(s.temperature), topK: s.topK, topP: Float(s.topP),
                                                         maxNewTokens: s.maxNewTokens),
                                stopTokens: stopTokens, batchSize: s.generationBatchSize, padToken: padToken,
                                missingEOSPenalty: s.missingEOSPenalty)
    }

    public func beginStep(_ plan: inout StepPlan, context: ObjectiveContext) throws {
        currentStep = plan.step
        if isPrivate {
            // The step's Poisson sample (prompt ids, global order) is its rollout batch; episodes are numbered by
            // their position in it, and each rank trains on the episodes of its own sample.
            try sampleRollout(promptIDs: plan.global, seed: plan.seed, step: plan.step, context: context)
            let position = Dictionary(uniqueKeysWithValues: plan.global.enumerated().map { ($1, $0) })
            plan.microBatches = plan.microBatches.map { $0.map { position[$0]! } }
            plan.global = Array(plan.global.indices)
            return
        }
        let perRollout = settings.stepsPerRollout(miniBatch: config.optimizer.globalBatchSize)
        if state.rollout == nil || plan.step - state.rollout!.startStep >= perRollout {
            let promptIDs = promptSampler.globalBatch(at: state.promptCursor)
            state.promptCursor = promptSampler.advanced(state.promptCursor)
            try sampleRollout(promptIDs: promptIDs, seed: plan.seed, step: plan.step, context: context)
        }
        let rollout = state.rollout!
        let k = plan.step - rollout.startStep, pass = k / miniBatchesPerEpoch, m = k % miniBatchesPerEpoch
        let G = config.optimizer.globalBatchSize
        var rng = SplitMix64(seed: GlobalBatchSampler.epochSeed(seed: rollout.seed ^ 0x4D49_4E49, epoch: pass))
        let order = rng.permutation(count: rollout.episodes.count)
        let ids = Array(order[(m * G)..<((m + 1) * G)])
        // This rank's share, cut as the trainer's sampler cuts a global batch (rank r, micro-step a: block r·A + a).
        let b = config.optimizer.microBatchSize, A = G / (context.comm.size * b)
        plan.global = ids
        plan.microBatches = (0..<A).map { a in
            let start = (context.comm.rank * A + a) * b
            return Array(ids[start..<(start + b)])
        }
        miniBatchTokens = Double(ids.reduce(0) { $0 + rollout.episodes[$1].length })
        if !critics.isEmpty { criticPlan = plan }
    }

    /// The plan of the step in progress (separate critics train on its micro-batches in `endStep`).
    var criticPlan: StepPlan?

    public func microBatch(_ examples: [Int], split: ExampleSplit) throws -> MicroBatch {
        switch split {
        case .train:
            let episodes = examples.map { state.rollout!.episodes[$0] }
            let (batch, starts) = PPORolloutModels.rows(episodes.map(\.promptTokens), episodes.map(\.responseTokens), pad: padToken)
            return MicroBatch(examples: examples, batch: batch, responseStarts: starts, rowExample: Array(examples.indices))
        case .eval:
            // Fresh samples of the held-out prompts from the current policy, each from its own generator.
            guard let context else { preconditionFailure("evaluation before prepare") }
            let models = rolloutModels(context)
            let prompts = examples.map { self.prompts.eval[$0] }
            let generated = models.sample(prompts, keys: examples, seed: config.seed ^ 0x4556_414C)
            for (id, g) in zip(examples, generated) { evalSamples[id] = g }
            let (batch, starts) = PPORolloutModels.rows(prompts, generated.map(\.tokens), pad: padToken)
            return MicroBatch(examples: examples, batch: batch, responseStarts: starts, rowExample: Array(examples.indices))
        }
    }

    public func evaluate(_ batch: MicroBatch, outputs: ModelOutputs, split: ExampleSplit) throws -> ObjectiveResult {
        do {
            return split == .train ? try trainLoss(batch, outputs) : try heldOut(batch, outputs)
        } catch let error as PolicyGradientError {
            throw TrainingError(message: "stopping at step \(currentStep + 1): \(error.description) The last complete checkpoint in \(config.outputDir) is intact.")
        }
    }

    /// The clipped losses of a training micro-batch (see the file header).
    func trainLoss(_ batch: MicroBatch, _ outputs: ModelOutputs) throws -> ObjectiveResult {
        let episodes = batch.examples.map { state.rollout!.episodes[$0] }
        // DP-PPO: each episode's own token mean (nil); otherwise TRL's mean over the mini-batch's N tokens.
        let G = Double(config.optimizer.globalBatchSize), normalizer: Double? = isPrivate ? nil : miniBatchTokens / G
        let heads = critics.isEmpty ? streams : 0
        var losses = [Double](repeating: 0, count: episodes.count)
        var dLogProbs = [Float](repeating: 0, count: outputs.targets.count)
        var dValues = [Float](repeating: 0, count: outputs.values.count)
        var sums: [String: Double] = [:]
        var offset = 0
        // Any ratio that overflows a Double skips the mini-batch (endStep sees `ppo/ratio_overflow`).
        for e in episodes {
            let logp = outputs.logProbs[offset..<offset + e.length].map(Double.init)
            let moments = try PPORatioGuard.ratioMoments(logProbs: logp, oldLogProbs: e.logProbs.map(Double.init))
            if !moments[0].isFinite {
                return ObjectiveResult(losses: losses, dLogProbs: dLogProbs, dValues: dValues,
                                       metrics: ["ppo/ratio_overflow": 1, "val/ratio": .infinity, "count/val/ratio": 1])
            }
            offset += e.length
        }
        offset = 0
        for (i, e) in episodes.enumerated() {
            let T = e.length, weight = Double(T)
            let logp = outputs.logProbs[offset..<offset + T].map(Double.init)
            let p = try clippedPolicyLoss(logProbs: logp, oldLogProbs: e.logProbs.map(Double.init), advantages: e.advantages,
                                          clipRange: settings.clipRange, normalizer: normalizer)
            losses[i] = p.loss
            for t in 0..<T { dLogProbs[offset + t] = Float(p.dLogProbs[t]) }
            for (k, v) in p.metrics { sums[k, default: 0] += v * weight; sums["count/" + k, default: 0] += weight }
            for h in 0..<heads {
                let v = (0..<T).map { Double(outputs.values[(offset + $0) * heads + h]) }
                let r = try clippedValueLoss(values: v, oldValues: e.values[h].map(Double.init), returns: e.returns[h],
                                             clipRange: settings.clipRangeValue, normalizer: normalizer)
                losses[i] += settings.valueCoefficient * r.loss
                for t in 0..<T { dValues[(offset + t) * heads + h] = Float(settings.valueCoefficient * r.dValues[t]) }
                for (k, x) in r.metrics {
                    let key = Self.streamKey(k, stream: h)
                    sums[key, default: 0] += x * weight; sums["count/" + key, default: 0] += weight
                }
            }
            sums["policy/advantages_mean", default: 0] += e.advantages.reduce(0, +)
            sums["count/policy/advantages_mean", default: 0] += weight
            offset += T
        }
        return ObjectiveResult(losses: losses, dLogProbs: dLogProbs, dValues: dValues, metrics: sums)
    }

    /// TRL's value metric names for the reward critic; the cost critic's carry `cost_` (`loss/cost_value_avg`).
    static func streamKey(_ key: String, stream: Int) -> String {
        guard stream == 1, let slash = key.firstIndex(of: "/") else { return key }
        return String(key[...slash]) + "cost_" + String(key[key.index(after: slash)...])
    }

    /// Held-out prompts: reward (and cost) of fresh samples and their KL to the reference; ℓ = −(score − β·KL).
    func heldOut(_ batch: MicroBatch, _ outputs: ModelOutputs) throws -> ObjectiveResult {
        guard let context else { preconditionFailure("evaluation before prepare") }
        let models = rolloutModels(context)
        let ref = models.referenceLogProbs(batch.batch, outputs.targets)
        let scores = models.scores(batch.batch)
        var kl = [Double](repeating: 0, count: batch.examples.count)
        for (n, row) in outputs.targets.sequence.enumerated() {
            kl[row] += settings.klEstimator.estimate(logProb: Double(outputs.logProbs[n]), referenceLogProb: Double(ref[n]))
        }
        let beta = state.kl.value
        var metrics: [String: Double] = [:]
        var losses: [Double] = []
        for (i, id) in batch.examples.enumerated() {
            let score = Double(scores[0][i])
            guard score.isFinite, kl[i].isFinite else {
                throw TrainingError(message: "stopping at step \(currentStep + 1): held-out prompt \(id) has a non-finite \(score.isFinite ? "KL" : "reward score"); check the reward model and the policy's weights")
            }
            losses.append(-(score - beta * kl[i]))
            metrics["objective/scores", default: 0] += score
            metrics["objective/kl", default: 0] += kl[i]
            metrics["objective/rlhf_reward", default: 0] += score - beta * kl[i]
            metrics["objective/response_length", default: 0] += Double(evalSamples[id]?.tokens.count ?? 0)
            if streams > 1 { metrics["objective/costs", default: 0] += Double(scores[1][i]) }
            evalSamples[id] = nil
        }
        return ObjectiveResult(losses: losses, metrics: metrics)
    }

    public func endStep(_ plan: StepPlan, metrics: inout [String: Double], context: ObjectiveContext) throws -> Bool {
        let overflow = (metrics["ppo/ratio_overflow"] ?? 0) > 0
        let meanRatio = metrics["val/ratio"] ?? .nan
        // DP-PPO never skips: a skip would be a decision on private data without noise (and on a fresh rollout
        // trained once, the ratio is 1 up to dropout anyway).
        let applies = isPrivate || (!overflow && !ratioGuard.skips(meanRatio: meanRatio))
        if !applies {
            context.note(String(format: "step %d: mean ratio %@ exceeds ppo.ratioThreshold %g: mini-batch skipped (no update)", plan.step + 1,
                                overflow ? "overflows" : String(format: "%.4g", meanRatio), settings.ratioThreshold))
        }
        if !critics.isEmpty && applies { try trainCritics(plan, metrics: &metrics, context: context) }
        metrics.removeValue(forKey: "ppo/ratio_overflow")
        state.trainedTokens += metrics["tokens"] ?? 0
        metrics.merge(pendingMetrics) { $1 }
        pendingMetrics = [:]
        metrics["ppo/skipped"] = applies ? 0 : 1
        metrics["ppo/rollouts"] = Double(state.rollouts)
        metrics["objective/kl_coef"] = state.rollout?.klCoefficient ?? state.kl.value
        metrics["tokens/generated"] = state.generatedTokens
        metrics["tokens/forward"] = state.forwardTokens
        metrics["tokens/trained"] = state.trainedTokens
        if let l = state.lagrangian { metrics["dual/lambda"] = l.lambda }
        return applies
    }

    /// One step of each separate critic on this rank's micro-batches of the step.
    func trainCritics(_ plan: StepPlan, metrics: inout [String: Double], context: ObjectiveContext) throws {
        let rollout = state.rollout!
        let micro = plan.microBatches.filter { !$0.isEmpty }.map { ids -> (batch: TokenBatch, targets: TokenTargets, episodes: [PPOEpisode]) in
            let episodes = ids.map { rollout.episodes[$0] }
            let (batch, starts) = PPORolloutModels.rows(episodes.map(\.promptTokens), episodes.map(\.responseTokens), pad: padToken)
            return (batch, TokenTargets(responsesOf: batch, responseStarts: starts), episodes)
        }
        // Dropout masks per row from the step's seed and the episode (as the trainer seeds the policy's).
        let seeds = plan.microBatches.filter { !$0.isEmpty }.map { ids in
            ids.map { SplitMix64.mix(plan.seed ^ 0x4352_4954 &+ UInt64($0) &* SplitMix64.golden) }
        }
        for (s, critic) in critics.enumerated() {
            let (sums, norm) = try critic.step(micro, stream: s, tokens: miniBatchTokens, clipRange: settings.clipRangeValue, dropoutSeeds: seeds)
            let keys = sums.keys.sorted()
            var values = keys.map { sums[$0]! }
            try context.comm.allReduceSum(&values)
            for (k, v) in zip(keys, values) { metrics[Self.streamKey(k, stream: s)] = v / miniBatchTokens }
            metrics[s == 0 ? "critic/grad_norm" : "critic/cost_grad_norm"] = norm
            guard norm.isFinite, values.allSatisfy(\.isFinite) else {
                throw TrainingError(message: "stopping at step \(plan.step + 1): the \(critic.stream) critic's loss or gradient norm is not finite; the last complete checkpoint in \(config.outputDir) is intact — lower ppo.criticLearningRate")
            }
            state.criticSteps[s] = critic.adam.step
        }
    }

    // MARK: - Rollouts

    /// Samples, scores and prepares the rollout batch of training prompts `promptIDs` (global order) whose first
    /// mini-batch is step `step`.
    func sampleRollout(promptIDs: [Int], seed: UInt64, step: Int, context: ObjectiveContext) throws {
        let t0 = Date()
        let comm = context.comm
        let R = promptIDs.count
        guard R > 0 else {
            // An empty Poisson sample (DP-PPO): no episode; the step adds its noise alone.
            state.rollout = PPORolloutBatch(seed: seed, startStep: step, klCoefficient: state.kl.value, lambda: state.lagrangian?.lambda, episodes: [])
            pendingMetrics = ["time/rollout_s": 0]
            return
        }
        let models = rolloutModels(context)
        var local: [PPOEpisode]
        var tokens = PPOTokenCount()
        if let rolloutOverride {
            let positions = RankBatches.ranges(count: R, batchSize: settings.generationBatchSize, rank: comm.rank, size: comm.size).flatMap { Array($0) }
            local = try rolloutOverride(positions, positions.map { promptIDs[$0] }, seed)
        } else {
            (local, tokens) = models.episodes(prompts: promptIDs.map { prompts.train[$0] }, promptIDs: promptIDs, seed: seed,
                                              rank: comm.rank, size: comm.size)
        }
        func stop(_ what: String) -> TrainingError {
            TrainingError(message: "stopping at step \(step + 1): \(what) in rollout \(state.rollouts + 1); the last complete checkpoint in \(config.outputDir) is intact — lower optimizer.learningRate or check the score models")
        }
        // Every rank checks its episodes; all stop with the same message (no rank left waiting in a collective).
        var problem = ""
        for e in local where problem.isEmpty {
            if let s = e.scores.firstIndex(where: { !$0.isFinite }) { problem = "episode \(e.index) has a non-finite \(s == 0 ? "reward" : "cost") score" }
            else if e.logProbs.contains(where: { !$0.isFinite }) || e.referenceLogProbs.contains(where: { !$0.isFinite }) {
                problem = "episode \(e.index) has a non-finite log-probability"
            } else if e.values.contains(where: { $0.contains { !$0.isFinite } }) { problem = "episode \(e.index) has a non-finite value" }
        }
        if let first = try comm.allGather(Array(problem.utf8)).first(where: { !$0.isEmpty }) { throw stop(String(decoding: first, as: UTF8.self)) }
        // PPO-Lagrangian: rank 0 steps λ on every episode's cost (global order), then broadcasts the state.
        if var lagrangian = state.lagrangian {
            var payload: [UInt8] = []
            for e in local { payload += Array(try JSONEncoder().encode([Double(e.index), e.scores[1]])) + [0x0A] }
            let gathered = try comm.gather(payload, root: 0)
            var next: PPOLagrangian? = nil
            if let gathered {
                let rows = try gathered.flatMap { p in try p.split(separator: 0x0A).map { try JSONDecoder().decode([Double].self, from: Data($0)) } }
                _ = try lagrangian.step(episodeCosts: rows.sorted { $0[0] < $1[0] }.map { $0[1] })
                next = lagrangian
            }
            state.lagrangian = try comm.broadcastValue(next, root: 0)
        }
        let beta = state.kl.value, lambda = state.lagrangian?.lambda
        let advantages = PPOAdvantages(settings: settings, klCoefficient: beta)
        let sums: PPOAdvantages.Sums, klPerSequence: [Double]
        do { (sums, klPerSequence) = try advantages.compute(&local, lambda: lambda, comm: comm) } catch let e as PolicyGradientError { throw stop(e.description) }
        // Batch statistics: sums over ranks, then means over the R episodes (counts stay totals).
        let keys = Set(try comm.allGather(Array(sums.keys.sorted().joined(separator: "\n").utf8))
            .flatMap { String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init) }).sorted()
        var values = keys.map { sums[$0] ?? 0 } + [klPerSequence.reduce(0, +), tokens.generated, tokens.forward]
        try comm.allReduceSum(&values)
        var metrics: [String: Double] = [:]
        for (k, v) in zip(keys, values) { metrics[k] = k == "val/num_eos_tokens" ? v : v / Double(R) }
        let meanKL = values[keys.count] / Double(R)
        state.generatedTokens += values[keys.count + 1]
        state.forwardTokens += values[keys.count + 2]
        let episodes = try local.gathered(comm)
        guard episodes.count == R, episodes.enumerated().allSatisfy({ $0.offset == $0.element.index }) else {
            throw stop("the ranks returned \(episodes.count) episodes for a batch of \(R)")
        }
        state.rollout = PPORolloutBatch(seed: seed, startStep: step, klCoefficient: beta, lambda: lambda, episodes: episodes)
        try state.kl.update(currentKL: meanKL, episodes: R)
        state.rollouts += 1
        let seconds = Date().timeIntervalSince(t0)
        state.rolloutSeconds += seconds
        metrics["time/rollout_s"] = seconds
        if let l = state.lagrangian, let last = l.history.last { metrics["dual/episode_cost"] = last.episodeCost; metrics["dual/lambda"] = last.lambda }
        pendingMetrics = metrics
        if comm.rank == 0 {
            var record = metrics
            record["step"] = Double(step + 1)
            record["rollout"] = Double(state.rollouts)
            onRollout?(record)
        }
    }

    // MARK: - Checkpoint state

    static let stateMagic = Array("PPO1".utf8)

    /// The state as "PPO1", the JSON's byte count (UInt64 LE), the JSON, then each critic's values and moments.
    public func checkpointState() throws -> Data? {
        let json = try JSONEncoder().encode(state)
        var out = Data(Self.stateMagic)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for c in critics { _ = c.appendState(to: &out) }
        return out
    }

    public func restore(checkpointState data: Data) throws {
        let bytes = [UInt8](data)
        guard bytes.count >= 12, Array(bytes[0..<4]) == Self.stateMagic else {
            throw TrainingError(message: "the checkpoint's objective state is not a PPO state; it was written by another task — use a new outputDir")
        }
        let length = Int(bytes[4..<12].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        guard 12 + length <= bytes.count else { throw TrainingError(message: "the checkpoint's PPO state is truncated; resume falls back to an earlier checkpoint or use a new outputDir") }
        let restored = try JSONDecoder().decode(PPOState.self, from: Data(bytes[12..<(12 + length)]))
        guard (restored.lagrangian == nil) == (state.lagrangian == nil), restored.criticSteps.count == critics.count else {
            throw TrainingError(message: "the checkpoint was written by \(restored.lagrangian == nil ? "PPO" : "PPO-Lagrangian") with \(restored.criticSteps.count) separate critic(s); this run is \(name) with \(critics.count) — use a new outputDir")
        }
        try promptSampler.validate(restored.promptCursor)
        var offset = 12 + length
        for (c, steps) in zip(critics, restored.criticSteps) { offset = try c.restoreState(from: data, offset: offset, adamStep: steps) }
        state = restored
    }

    /// The run's budget (all ranks, over every invocation) and λ history, for `align.json`.
    public var budget: (generated: Double, forward: Double, trained: Double, rolloutSeconds: Double) {
        (state.generatedTokens, state.forwardTokens, state.trainedTokens, state.rolloutSeconds)
    }
    public var lambdaHistory: [LagrangeStepRecord] { state.lagrangian?.history ?? [] }
}
