// Sampling a rollout batch on the ranks: episode j of the batch (its prompt chosen by the run's prompt
// cursor) is sampled from the current policy with a generator keyed by (the rollout's seed, j), in batches
// cut the same way for every world size (batch c on rank c mod N), then scored by forward passes over the
// same batches: the policy's log-probs and value heads (the "old" policy of the update), the reference's
// log-probs (adapters off with LoRA, a frozen copy with full fine-tuning), the score models at the last
// token, and separate critics when configured. So every sampled token and every number is the same
// whatever the number of ranks.

import Foundation
import Datasets
import Models
import Rollout
import Tensors
import Training

/// Tokens a rollout or an evaluation spent (this rank).
public struct PPOTokenCount: Codable, Equatable, Sendable {
    /// Sampled tokens (one decode step each).
    public var generated: Double = 0
    /// Tokens through forward passes only: prompt prefill, policy, reference, score models, critics.
    public var forward: Double = 0
    public init(generated: Double = 0, forward: Double = 0) { self.generated = generated; self.forward = forward }
}

/// The models a rollout reads and how it samples.
struct PPORolloutModels {
    /// The policy being trained (samples, old log-probs, value heads).
    let policy: Transformer
    /// A frozen reference; nil: the policy with its adapters switched off.
    let reference: Transformer?
    /// Score models per stream: the reward model, then the cost model (PPO-Lagrangian).
    let scoreModels: [Transformer]
    /// Separate critics per stream (empty: value heads on the policy's trunk).
    let critics: [PPOCritic]
    let options: SamplingOptions
    let stopTokens: Set<Int32>
    let batchSize: Int
    let padToken: Int32
    /// Subtracted from the reward of a response no stop token ended.
    let missingEOSPenalty: Double?

    /// The rows of prompt + response sequences and their response starts.
    static func rows(_ prompts: [[Int32]], _ responses: [[Int32]], pad: Int32) -> (TokenBatch, [Int]) {
        (TokenBatch(sequences: zip(prompts, responses).map { $0 + $1 }, padToken: pad), prompts.map(\.count))
    }

    /// Continuations of `prompts`, sample i drawn from the generator keyed by (`seed`, `keys[i]`).
    func sample(_ prompts: [[Int32]], keys: [Int], seed: UInt64) -> [GeneratedSequence] {
        var o = options
        o.seed = seed
        return policy.generate(prompts: prompts, options: o, stopTokens: stopTokens, sampleIDs: keys.map { UInt64($0) })
    }

    /// log π_ref of the response tokens of `batch` (the reference, or the policy with adapters off).
    func referenceLogProbs(_ batch: TokenBatch, _ targets: TokenTargets) -> [Float] {
        if let reference {
            reference.forward(batch)
            return reference.logProbs(targets)
        }
        return policy.withAdaptersDisabled {
            policy.forward(batch)
            return policy.logProbs(targets)
        }
    }

    /// Each score model's score of each row at its last token.                          // (S, B)
    func scores(_ batch: TokenBatch) -> [[Float]] {
        scoreModels.map { m in
            m.forward(batch)
            return m.scores()
        }
    }

    /// This rank's episodes of a rollout batch: the global positions `0..<prompts.count` are cut into batches of
    /// `batchSize` and batch c runs on rank c mod `size`. `promptIDs[j]` names episode j's prompt.
    func episodes(prompts: [[Int32]], promptIDs: [Int], seed: UInt64, rank: Int, size: Int) -> ([PPOEpisode], PPOTokenCount) {
        var out: [PPOEpisode] = []
        var count = PPOTokenCount()
        let heads = policy.config.valueHeads
        for range in RankBatches.ranges(count: prompts.count, batchSize: batchSize, rank: rank, size: size) {
            let positions = Array(range)
            let chunk = positions.map { prompts[$0] }
            let generated = sample(chunk, keys: positions, seed: seed)
            let (batch, starts) = Self.rows(chunk, generated.map(\.tokens), pad: padToken)
            let targets = TokenTargets(responsesOf: batch, responseStarts: starts)
            // The old policy: the same forward pass the update takes (no adapter dropout).
            policy.adapterDropoutSeeds = nil
            policy.forward(batch)
            let logp = policy.logProbs(targets)
            let headValues = heads > 0 ? policy.values(targets) : []                       // (N, H)
            let criticValues = critics.map { $0.values(batch, targets) }                  // (S, N)
            let ref = referenceLogProbs(batch, targets)
            let scores = self.scores(batch)
            var offset = 0
            for (k, j) in positions.enumerated() {
                let g = generated[k], T = g.tokens.count
                let streams = scoreModels.count
                var values: [[Float]] = []
                for s in 0..<streams {
                    if critics.isEmpty {
                        values.append((0..<T).map { headValues[(offset + $0) * heads + s] })
                    } else {
                        values.append(Array(criticValues[s][offset..<offset + T]))
                    }
                }
                var episodeScores = (0..<streams).map { Double(scores[$0][k]) }
                if let penalty = missingEOSPenalty, !g.stopped { episodeScores[0] -= penalty }
                out.append(PPOEpisode(index: j, prompt: promptIDs[j], promptTokens: chunk[k], responseTokens: g.tokens, stopped: g.stopped,
                                      logProbs: Array(logp[offset..<offset + T]), referenceLogProbs: Array(ref[offset..<offset + T]),
                                      values: values, scores: episodeScores))
                offset += T
            }
            let rowTokens = Double(batch.realTokens)
            count.generated += Double(generated.reduce(0) { $0 + $1.tokens.count })
            count.forward += Double(chunk.reduce(0) { $0 + $1.count })                     // prefill
            count.forward += rowTokens * Double(2 + scoreModels.count + critics.count)    // policy, reference, scores, critics
        }
        return (out, count)
    }
}
