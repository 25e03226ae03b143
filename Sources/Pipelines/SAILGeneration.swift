// One SAIL generation round across ranks: two samples per queued prompt from the current policy, the
// reference log-probs of every sample, and the labels — SAIL-PP by the policy's own Bradley–Terry model
// (Bernoulli(σ(β·h_θ)), under no gradient), SAIL-PR by a score model (higher reward, or lower cost, chosen).
//
// Work is cut as Datasets' RankBatches cuts it (batch c on rank c mod N, fixed batch size) and every sample
// has its own generator keyed by its global generation index, so each sample, log-prob and score — and so
// each label — is the same for any number of ranks. Every rank ends with every pair (all-gather).

import Foundation
import Alignment
import Datasets
import Distributed
import Models
import Rollout
import Tensors

/// What a round produced and spent.
public struct SAILRoundResult: Sendable {
    /// The labelled pairs in prompt order (pairs with an empty sample are dropped).
    public var pairs: [OnlinePair]
    /// Metric values of the round (`sail/generation/*`, `sail/dpp/*`, `sail/dpr/*`).
    public var metrics: [String: Double]
    /// Sampled tokens, over all ranks.
    public var generatedTokens: Double
    /// Tokens through forward-only passes (prompt prefill, log-probs, scores), over all ranks.
    public var forwardTokens: Double
}

/// Samples and labels SAIL's online pairs.
public struct SAILGenerator {
    public let config: SAILConfig
    public let comm: Communicator
    /// The policy being trained (samples, and its log-probs for SAIL-PP labels).
    public let policy: Transformer
    /// The frozen reference; nil: the policy with its adapters switched off.
    public let reference: Transformer?
    /// The score model of SAIL-PR labels and whether a lower score is better (a cost model).
    public let labeller: Transformer?
    public let labellerReversed: Bool
    public let options: SamplingOptions
    public let stopTokens: Set<Int32>
    /// Sequences decoded, or scored, together on a rank.
    public let batchSize: Int
    public let padToken: Int32

    public init(config: SAILConfig, comm: Communicator, policy: Transformer, reference: Transformer?, labeller: Transformer?,
                labellerReversed: Bool, options: SamplingOptions, stopTokens: Set<Int32>, batchSize: Int, padToken: Int32) {
        self.config = config; self.comm = comm; self.policy = policy; self.reference = reference; self.labeller = labeller
        self.labellerReversed = labellerReversed; self.options = options; self.stopTokens = stopTokens
        self.batchSize = batchSize; self.padToken = padToken
    }

    /// Generates, scores and labels one round: prompt i gets samples 2i and 2i+1 with sample ids
    /// 2(firstIndex + i) + k. Every rank returns the same result.
    public func run(_ prompts: [QueuedPrompt], firstIndex: UInt64) throws -> SAILRoundResult {
        let t0 = Date()
        let samples = try sample(prompts, firstIndex: firstIndex)
        let seconds = Date().timeIntervalSince(t0)
        var result = try label(prompts, samples: samples, firstIndex: firstIndex)
        let generated = Double(samples.reduce(0) { $0 + $1.tokens.count })
        result.generatedTokens = generated
        result.forwardTokens += Double(prompts.reduce(0) { $0 + $1.prompt.count })   // prefill (once per prompt)
        result.metrics["sail/generation/tokens"] = generated
        result.metrics["sail/generation/mean_length"] = generated / Double(max(1, samples.count))
        result.metrics["sail/generation/stopped"] = Double(samples.filter(\.stopped).count) / Double(max(1, samples.count))
        result.metrics["sail/generation/seconds"] = seconds
        return result
    }

    /// Two samples of each prompt from the policy: this rank's batches of the 2P jobs, gathered on every rank
    /// in job order (job 2i + k is sample k of prompt i, sample id 2(firstIndex + i) + k).
    public func sample(_ prompts: [QueuedPrompt], firstIndex: UInt64) throws -> [(tokens: [Int32], stopped: Bool)] {
        let jobs = 2 * prompts.count
        var mine: [(job: Int, tokens: [Int32], stopped: Bool)] = []
        for range in RankBatches.ranges(count: jobs, batchSize: batchSize, rank: comm.rank, size: comm.size) {
            let out = policy.generate(prompts: range.map { prompts[$0 / 2].prompt }, options: options, stopTokens: stopTokens,
                                      sampleIDs: range.map { 2 * (firstIndex + UInt64($0 / 2)) + UInt64($0 % 2) })
            for (job, g) in zip(range, out) { mine.append((job, g.tokens, g.stopped)) }
        }
        return try gatherSamples(mine, count: jobs)
    }

    /// Reference log-probs and labels of sampled pairs (samples 2i, 2i+1 answer prompt i): SAIL-PP by
    /// Bernoulli(σ(β·h_θ)) drawn at the pair's global index, SAIL-PR by the labeller. Pairs with an empty
    /// sample are dropped. Every rank returns the same pairs.
    public func label(_ prompts: [QueuedPrompt], samples: [(tokens: [Int32], stopped: Bool)], firstIndex: UInt64) throws -> SAILRoundResult {
        // Pairs with an empty sample have no response to train on (a prompt filling the context).
        let valid = prompts.indices.filter { !samples[2 * $0].tokens.isEmpty && !samples[2 * $0 + 1].tokens.isEmpty }
        let t1 = Date()
        let validJobs = valid.flatMap { [2 * $0, 2 * $0 + 1] }
        let ppJobs = validJobs.filter { prompts[$0 / 2].route == .policyPolicy }
        let prJobs = validJobs.filter { prompts[$0 / 2].route == .policyReward }
        func sequence(_ job: Int) -> [Int32] { prompts[job / 2].prompt + samples[job].tokens }
        var forward = 0.0
        let referenceValues = try logProbs(validJobs, sequence, responseStart: { prompts[$0 / 2].prompt.count }, tokens: &forward) { batch, starts in
            if let reference { return reference.sequenceLogProbs(batch, responseStarts: starts) }
            return policy.withAdaptersDisabled { policy.sequenceLogProbs(batch, responseStarts: starts) }
        }
        let policyValues = try logProbs(ppJobs, sequence, responseStart: { prompts[$0 / 2].prompt.count }, tokens: &forward) { batch, starts in
            policy.sequenceLogProbs(batch, responseStarts: starts)
        }
        var scores: [Int: Double] = [:]
        if !prJobs.isEmpty {
            guard let labeller else { preconditionFailure("SAIL-PR prompts need a labeller (checked by SAILSettings.validate)") }
            scores = try logProbs(prJobs, sequence, responseStart: { _ in 0 }, tokens: &forward) { batch, _ in
                labeller.forward(batch)
                return labeller.scores().map(Double.init)
            }
        }
        let labelSeconds = Date().timeIntervalSince(t1)

        var pairs: [OnlinePair] = []
        var m: [String: Double] = [:]
        for i in valid {
            let q = prompts[i], index = firstIndex + UInt64(i)
            let (a, b) = (samples[2 * i].tokens, samples[2 * i + 1].tokens)
            var pair = OnlinePair(route: q.route, index: index, prompt: q.prompt, chosen: a, rejected: b,
                                  referenceChosen: referenceValues[2 * i]!, referenceRejected: referenceValues[2 * i + 1]!, swapped: false)
            if q.route == .policyPolicy {
                let label = try config.policyLabel(firstPolicy: policyValues[2 * i]!, firstReference: referenceValues[2 * i]!,
                                                   secondPolicy: policyValues[2 * i + 1]!, secondReference: referenceValues[2 * i + 1]!,
                                                   pairIndex: index)
                pair.swapped = !label.firstIsChosen
                pair.firstProbability = label.probability
                m["sail/dpp/first_probability", default: 0] += label.probability
                m["sail/dpp/swapped", default: 0] += pair.swapped ? 1 : 0
                m["sail/dpp/pairs", default: 0] += 1
            } else {
                let (s1, s2) = (scores[2 * i]!, scores[2 * i + 1]!)
                pair.swapped = !(try SAILConfig.rewardLabel(firstScore: s1, secondScore: s2, reversed: labellerReversed))
                pair.chosenScore = pair.swapped ? s2 : s1
                pair.rejectedScore = pair.swapped ? s1 : s2
                m["sail/dpr/chosen_score", default: 0] += pair.chosenScore!
                m["sail/dpr/rejected_score", default: 0] += pair.rejectedScore!
                m["sail/dpr/swapped", default: 0] += pair.swapped ? 1 : 0
                m["sail/dpr/ties", default: 0] += s1 == s2 ? 1 : 0
                m["sail/dpr/pairs", default: 0] += 1
            }
            if pair.swapped { swap(&pair.chosen, &pair.rejected); swap(&pair.referenceChosen, &pair.referenceRejected) }
            m["sail/generation/identical", default: 0] += a == b ? 1 : 0
            pairs.append(pair)
        }
        // Means over the pairs of each route; the round's counts and costs.
        for route in ["dpp", "dpr"] {
            let n = m["sail/\(route)/pairs"] ?? 0
            for k in m.keys where k.hasPrefix("sail/\(route)/") && k != "sail/\(route)/pairs" && n > 0 { m[k]! /= n }
        }
        m["sail/generation/identical"] = (m["sail/generation/identical"] ?? 0) / Double(max(1, valid.count))
        m["sail/generation/prompts"] = Double(prompts.count)
        m["sail/generation/dropped"] = Double(prompts.count - valid.count)
        m["sail/label/seconds"] = labelSeconds
        m["sail/label/tokens"] = forward
        return SAILRoundResult(pairs: pairs, metrics: m, generatedTokens: 0, forwardTokens: forward)
    }

    /// Every rank's samples, gathered on every rank in job order.
    func gatherSamples(_ mine: [(job: Int, tokens: [Int32], stopped: Bool)], count: Int) throws -> [(tokens: [Int32], stopped: Bool)] {
        struct Wire: Codable { var job: Int; var tokens: [Int32]; var stopped: Bool }
        let payload = try JSONEncoder().encode(mine.map { Wire(job: $0.job, tokens: $0.tokens, stopped: $0.stopped) })
        var out = [(tokens: [Int32], stopped: Bool)?](repeating: nil, count: count)
        for bytes in try comm.allGather(Array(payload)) {
            for w in try JSONDecoder().decode([Wire].self, from: Data(bytes)) { out[w.job] = (w.tokens, w.stopped) }
        }
        guard !out.contains(where: { $0 == nil }) else {
            throw SAILGenerationError(message: "a rank sent no samples for some prompts of the round; the ranks run different builds or configs")
        }
        return out.map { $0! }
    }

    /// One value per job from `compute` over batches of the jobs' sequences (longest first, batch c on rank c
    /// mod N), gathered on every rank. Adds the tokens run, over all ranks, to `tokens`.
    func logProbs(_ jobs: [Int], _ sequence: (Int) -> [Int32], responseStart: (Int) -> Int, tokens: inout Double,
                  _ compute: (TokenBatch, [Int]) -> [Double]) throws -> [Int: Double] {
        let lengths = jobs.map { sequence($0).count }
        var local: [Double] = []   // (job, value) pairs flattened
        var spent = 0.0
        for chunk in RankBatches.longestFirst(lengths: lengths, batchSize: batchSize, rank: comm.rank, size: comm.size) {
            let batch = TokenBatch(sequences: chunk.map { sequence(jobs[$0]) }, padToken: padToken)
            let values = compute(batch, chunk.map { responseStart(jobs[$0]) })
            for (k, v) in zip(chunk, values) { local += [Double(jobs[k]), v] }
            spent += Double(batch.realTokens)
        }
        tokens += try comm.allReduceSum(spent)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(local.count * 8)
        for v in local { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        var out: [Int: Double] = [:]
        for payload in try comm.allGather(bytes) {
            var values: [Double] = []
            values.reserveCapacity(payload.count / 8)
            var offset = 0
            while offset + 8 <= payload.count {
                var bits: UInt64 = 0
                for b in 0..<8 { bits |= UInt64(payload[offset + b]) << (8 * UInt64(b)) }
                values.append(Double(bitPattern: bits))
                offset += 8
            }
            var i = 0
            while i + 1 < values.count { out[Int(values[i])] = values[i + 1]; i += 2 }
        }
        guard out.count == jobs.count else {
            throw SAILGenerationError(message: "gathered \(out.count) values for \(jobs.count) samples; the ranks run different builds or configs")
        }
        return out
    }
}

/// A round that could not complete; says why.
public struct SAILGenerationError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { "SAIL generation: \(message)" }
}
