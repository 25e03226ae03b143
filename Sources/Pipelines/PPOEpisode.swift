// A rollout batch as PPO's update reads it: each episode's tokens, the rollout-time log-probs of the policy
// and the reference, the critics' values and the score models' outputs, and then what `PPOAdvantages`
// derives from them (the actor's advantage and each critic's returns per token).
//
// Streams: s = 0 the reward (reward model, −β·KL per token), s = 1 the cost (cost model, +β·KL per token;
// PPO-Lagrangian only). Legend: T response tokens of an episode, S streams.
//
// Distributed: each rank computes the advantages of the episodes it sampled (GAE is per sequence); batch
// whitening all-reduces [n, Σx, Σx²]; the finished episodes are then gathered so every rank can train any
// mini-batch. PPO-Lagrangian's λ is stepped on rank 0 from every episode cost and broadcast before the
// advantages are mixed (Safe-RLHF's order: λ first, then (A_R − λ·A_C)/(1 + λ) with the new λ).

import Foundation
import Alignment
import Distributed
import Training

/// One sampled response with what the update needs.
public struct PPOEpisode: Codable, Equatable, Sendable {
    /// Position in the rollout batch (0..<rolloutBatchSize): its sampling generator's key.
    public var index: Int
    /// The prompt's index among the training prompts.
    public var prompt: Int
    public var promptTokens: [Int32]
    /// The response (its stop token included when one ended it).                    // (T)
    public var responseTokens: [Int32]
    public var stopped: Bool
    /// log π_old of each response token (the policy's forward pass at rollout time).  // (T)
    public var logProbs: [Float]
    /// log π_ref of each response token.                                             // (T)
    public var referenceLogProbs: [Float]
    /// V_old of each stream's critic at each response token.                         // (S, T)
    public var values: [[Float]]
    /// Each stream's score (reward, cost) at the last token, penalties applied.       // (S)
    public var scores: [Double]
    /// The actor's advantage per token (after mixing and whitening).                  // (T)
    public var advantages: [Double] = []
    /// Each stream's GAE returns R_t = A_t + V_t (the critics' targets).              // (S, T)
    public var returns: [[Double]] = []

    public init(index: Int, prompt: Int, promptTokens: [Int32], responseTokens: [Int32], stopped: Bool, logProbs: [Float],
                referenceLogProbs: [Float], values: [[Float]], scores: [Double]) {
        self.index = index; self.prompt = prompt; self.promptTokens = promptTokens; self.responseTokens = responseTokens
        self.stopped = stopped; self.logProbs = logProbs; self.referenceLogProbs = referenceLogProbs
        self.values = values; self.scores = scores
    }

    /// T
    public var length: Int { responseTokens.count }
}

/// The reward streams, GAE, the Lagrangian mix and whitening of a rollout batch.
public struct PPOAdvantages {
    public let settings: PPOConfig
    /// β of this rollout's per-token penalty.
    public let klCoefficient: Double

    public init(settings: PPOConfig, klCoefficient: Double) {
        self.settings = settings; self.klCoefficient = klCoefficient
    }

    /// Sums over this rank's episodes of the rollout statistics (divide by the batch's episode count after an
    /// all-reduce): `objective/kl`, `objective/scores`, `objective/non_score_reward`, `objective/rlhf_reward`,
    /// with a cost stream `objective/costs`, `objective/cost_with_kl_penalty`, and `objective/response_length`.
    public typealias Sums = [String: Double]

    /// Fills `advantages` and `returns` of this rank's `episodes`; every rank calls it (batch whitening is an
    /// all-reduce). `lambda` mixes a cost stream in (PPO-Lagrangian); nil uses the reward stream alone.
    /// - Throws: `PolicyGradientError` for non-finite inputs (the caller names the step).
    public func compute(_ episodes: inout [PPOEpisode], lambda: Double?, comm: Communicator) throws -> (sums: Sums, klPerSequence: [Double]) {
        let streams = lambda == nil ? 1 : 2
        var sums: Sums = [:]
        var klPerSequence: [Double] = []
        var actor = [Double]()                                                              // (N) local
        let layout = try SequenceLayout(lengths: episodes.map(\.length))
        if !episodes.isEmpty {
            let logp = episodes.flatMap { $0.logProbs.map(Double.init) }, ref = episodes.flatMap { $0.referenceLogProbs.map(Double.init) }
            var perStream: [AdvantageEstimate] = []
            for s in 0..<streams {
                let config = TokenRewardConfig(klCoefficient: klCoefficient, estimator: settings.klEstimator, scoreClip: settings.scoreClip)
                let r = try tokenRewards(logProbs: logp, referenceLogProbs: ref, scores: episodes.map { $0.scores[s] }, layout: layout,
                                         config: config, stream: s == 0 ? .reward : .cost)
                if s == 0 { klPerSequence = r.klPerSequence }
                let n = Double(episodes.count)
                for (k, v) in r.metrics { sums[k, default: 0] = v * n }   // same KL from both streams: one value
                perStream.append(try generalizedAdvantages(rewards: r.rewards, values: episodes.flatMap { $0.values[s].map(Double.init) },
                                                           layout: layout, gamma: settings.gamma, lambda: settings.gaeLambda))
            }
            if let lambda {
                actor = perStream[0].advantages.indices.map {
                    LagrangeMultiplierUpdate.advantage(reward: perStream[0].advantages[$0], cost: perStream[1].advantages[$0], lambda: lambda)
                }
            } else {
                actor = perStream[0].advantages
            }
            for i in episodes.indices { episodes[i].returns = perStream.map { Array($0.returns[layout.range(of: i)]) } }
            sums["objective/response_length"] = Double(layout.tokenCount)
            sums["val/num_eos_tokens"] = Double(episodes.filter(\.stopped).count)   // a count, as TRL logs it
        }
        switch settings.whitening {
        case .batch:
            // Moments of every response token of the batch, over all ranks.
            var moments = try WhiteningMoments(values: actor).asArray
            try comm.allReduceSum(&moments)
            let global = try WhiteningMoments(reduced: moments)
            if !actor.isEmpty { actor = try whiten(actor, moments: global) }
        case .sequence:
            if !actor.isEmpty { actor = try whitenPerSequence(actor, layout: layout) }
        case .none:
            break
        }
        for i in episodes.indices { episodes[i].advantages = Array(actor[layout.range(of: i)]) }
        return (sums, klPerSequence)
    }
}

extension Array where Element == PPOEpisode {
    /// Every rank's episodes on every rank, in rollout order (`index`).
    func gathered(_ comm: Communicator) throws -> [PPOEpisode] {
        let payloads = try comm.allGather([UInt8](try JSONEncoder().encode(self)))
        let all = try payloads.flatMap { try JSONDecoder().decode([PPOEpisode].self, from: Foundation.Data($0)) }
        return all.sorted { $0.index < $1.index }
    }
}
