// SAIL's online state: the prompts queued for generation and the buffers of labelled online pairs, with
// their cursors (algorithms.md §4.2 "Generation buffering"). The state is the same on every rank — every
// decision is a function of (seed, global row) and of gathered results — and travels in checkpoints, so a
// resumed run consumes and generates exactly what an uninterrupted one would.
//
// One step of a global batch of G rows (positions j, global rows n = step·G + j):
//   1. route_j = SAILConfig.route(n); a PP or PR row queues its dataset prompt, then takes the next pair of its
//      route's buffer, or trains as plain DPO on its dataset pair when that buffer is empty;
//   2. if a route that is on has fewer than G pairs left and queued + G > generationPrompts (the code's trigger),
//      a round generates the first generationPrompts queued prompts and the queue is cleared;
//   3. the round's pairs, each put `reuse` times and shuffled (seeded by the round), replace both buffers.
// So online pairs are consumed from the step after the round that made them (a lag of at most one round).

import Foundation
import Alignment
import Tensors

/// A prompt waiting to be answered twice by the policy.
public struct QueuedPrompt: Codable, Equatable, Sendable {
    /// `.policyPolicy` or `.policyReward`: the buffer its pair goes to.
    public var route: SAILRoute
    /// Prompt tokens (the dataset pair's rendered, truncated prompt).
    public var prompt: [Int32]
    /// The training pair it came from.
    public var source: Int

    public init(route: SAILRoute, prompt: [Int32], source: Int) {
        self.route = route; self.prompt = prompt; self.source = source
    }
}

/// A labelled pair of policy samples, with the reference log-probs its loss needs.
public struct OnlinePair: Codable, Equatable, Sendable {
    public var route: SAILRoute
    /// The pair's global generation index (seeds its samples and, for PP, its label).
    public var index: UInt64
    public var prompt: [Int32]
    public var chosen: [Int32]
    public var rejected: [Int32]
    /// ℓ_ref(chosen), ℓ_ref(rejected) (summed response log-probs under the frozen reference).
    public var referenceChosen: Double
    public var referenceRejected: Double
    /// Whether the second sample became the chosen one.
    public var swapped: Bool
    /// PP: σ(β·h) of the first sample over the second at labelling time; PR: nil.
    public var firstProbability: Double?
    /// PR: the labeller's scores of the chosen and rejected response; PP: nil.
    public var chosenScore: Double?
    public var rejectedScore: Double?

    public init(route: SAILRoute, index: UInt64, prompt: [Int32], chosen: [Int32], rejected: [Int32], referenceChosen: Double,
                referenceRejected: Double, swapped: Bool, firstProbability: Double? = nil, chosenScore: Double? = nil, rejectedScore: Double? = nil) {
        self.route = route; self.index = index; self.prompt = prompt; self.chosen = chosen; self.rejected = rejected
        self.referenceChosen = referenceChosen; self.referenceRejected = referenceRejected; self.swapped = swapped
        self.firstProbability = firstProbability; self.chosenScore = chosenScore; self.rejectedScore = rejectedScore
    }
}

/// One row of a step's global batch as SAIL trains it.
public struct SAILStepRow: Equatable, Sendable {
    /// The row's position in the run's stream of rows (step·G + position).
    public var globalRow: UInt64
    /// The route drawn for the row.
    public var routed: SAILRoute
    /// The route it trains with: `routed`, or `.dpo` when its buffer was empty.
    public var route: SAILRoute
    /// The dataset pair the sampler put at this position.
    public var offline: Int
    /// The online pair it consumed (PP and PR rows with a non-empty buffer).
    public var online: OnlinePair?
}

/// The queue, the buffers, their cursors and the run's counts.
public struct SAILOnlineState: Codable, Equatable, Sendable {
    public var queue: [QueuedPrompt] = []
    /// Labelled pairs of each route, consumed from `cursor` on.
    public var policyPolicy: [OnlinePair] = []
    public var policyReward: [OnlinePair] = []
    public var policyPolicyCursor = 0
    public var policyRewardCursor = 0
    /// Generation rounds run so far.
    public var rounds = 0
    /// Prompts generated so far (the next round's first global generation index).
    public var generatedPrompts: UInt64 = 0
    /// Rows trained on dataset pairs (plain DPO, SAIL-DP and short-buffer rows) and on online pairs, so far.
    public var offlineRows = 0
    public var onlineRows = 0

    public init() {}

    /// Pairs of `route` not yet consumed.
    public func remaining(_ route: SAILRoute) -> Int {
        switch route {
        case .policyPolicy: return policyPolicy.count - policyPolicyCursor
        case .policyReward: return policyReward.count - policyRewardCursor
        case .dpo, .dataPolicy: return 0
        }
    }

    /// The next unconsumed pair of `route`, advancing its cursor (nil when empty).
    mutating func take(_ route: SAILRoute) -> OnlinePair? {
        guard remaining(route) > 0 else { return nil }
        switch route {
        case .policyPolicy: defer { policyPolicyCursor += 1 }; return policyPolicy[policyPolicyCursor]
        case .policyReward: defer { policyRewardCursor += 1 }; return policyReward[policyRewardCursor]
        case .dpo, .dataPolicy: return nil
        }
    }

    /// Routes the G rows of step `step` (dataset pairs `offline`, in global order) and consumes online pairs:
    /// step 1 of the file header. `prompt(id)` gives a dataset pair's prompt tokens.
    public mutating func routeStep(_ step: Int, offline: [Int], config: SAILConfig, prompt: (Int) -> [Int32]) -> [SAILStepRow] {
        let G = offline.count
        return offline.enumerated().map { j, id in
            let n = UInt64(step) &* UInt64(G) &+ UInt64(j)
            let routed = config.route(globalRow: n)
            var row = SAILStepRow(globalRow: n, routed: routed, route: routed, offline: id, online: nil)
            if routed == .policyPolicy || routed == .policyReward {
                queue.append(QueuedPrompt(route: routed, prompt: prompt(id), source: id))
                if let pair = take(routed) { row.online = pair } else { row.route = .dpo }
            }
            if row.online == nil { offlineRows += 1 } else { onlineRows += 1 }
            return row
        }
    }

    /// The code's trigger (step 2): a route that is on is short of a global batch of pairs, and the queue
    /// will hold a round's prompts within a step.
    public func shouldGenerate(config: SAILConfig, globalBatch G: Int, generationPrompts: Int) -> Bool {
        let short = (config.policyPolicyProbability > 0 && remaining(.policyPolicy) < G)
            || (config.policyRewardProbability > 0 && remaining(.policyReward) < G)
        return short && !queue.isEmpty && queue.count + G > generationPrompts
    }

    /// The prompts of the next round (the first `generationPrompts` queued) and their first global index;
    /// clears the queue, as the code does.
    public mutating func takeRound(generationPrompts: Int) -> (prompts: [QueuedPrompt], firstIndex: UInt64) {
        let prompts = Array(queue.prefix(generationPrompts))
        queue.removeAll()
        let first = generatedPrompts
        generatedPrompts += UInt64(prompts.count)
        return (prompts, first)
    }

    /// Replaces both buffers with a round's labelled pairs (step 3): each pair `reuse` times, shuffled by a
    /// generator seeded by (seed, round); cursors restart at 0.
    public mutating func refill(with pairs: [OnlinePair], reuse: Int, seed: UInt64) {
        rounds += 1
        func fill(_ route: SAILRoute, _ purpose: UInt64) -> [OnlinePair] {
            let repeated = pairs.filter { $0.route == route }.flatMap { Array(repeating: $0, count: reuse) }
            var rng = SplitMix64(seed: SplitMix64.mix(seed ^ (UInt64(rounds) &* SplitMix64.golden)) &+ purpose)
            return rng.permutation(count: repeated.count).map { repeated[$0] }
        }
        policyPolicy = fill(.policyPolicy, 1)
        policyReward = fill(.policyReward, 2)
        policyPolicyCursor = 0
        policyRewardCursor = 0
    }
}
