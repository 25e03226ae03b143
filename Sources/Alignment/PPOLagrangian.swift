// The Safe-RLHF PPO-Lagrangian glue around `LagrangeMultiplierUpdate` (algorithms.md §5.5): the window of recent
// episode costs whose mean is J_C, one λ step per RL step with its history, and the per-token advantage mix.
//
//     J_C = mean of the last `window` episode costs (Safe-RLHF `episode_cost_window_size`, 128)
//     log λ ← log λ + lr·(J_C − d)·λ, clamped to log λ_max        (LagrangeMultiplierUpdate)
//     A_t = (A_R,t − λ·A_C,t) / (1 + λ)                          (LagrangeMultiplierUpdate.advantage)
//
// Data-parallel use: every rank sends its new episode costs to rank 0 in global episode order; rank 0 appends them
// to ONE window, steps λ and broadcasts it (and the whole state is in its checkpoint). Safe-RLHF instead keeps a
// window per rank and averages the per-rank means; the single global window makes J_C, and so λ, independent of
// the world size. To match Safe-RLHF's amount of history at W ranks, use a window of W × 128.

import Foundation

/// The last `capacity` episode costs, oldest first; Codable for checkpoints.
public struct EpisodeCostWindow: Sendable, Equatable, Codable {
    /// The most costs kept (Safe-RLHF `episode_cost_window_size`).
    public let capacity: Int
    /// The kept costs, oldest first; at most `capacity`.
    public private(set) var costs: [Double]
    /// Costs appended over the window's lifetime (including those that fell out).
    public private(set) var totalAppended: Int

    /// An empty window; throws `.invalidParameter` unless capacity ≥ 1.
    public init(capacity: Int = 128) throws {
        try requireParameter(Double(capacity), "episode cost window: capacity", "an integer ≥ 1 (Safe-RLHF uses 128)") { $0 >= 1 }
        self.capacity = capacity
        self.costs = []
        self.totalAppended = 0
    }

    /// Appends episode costs in episode order, dropping the oldest beyond `capacity`.
    /// Throws `.nonFinite` (and appends nothing) if a cost is NaN or infinite.
    public mutating func append(contentsOf newCosts: [Double]) throws {
        try requireFinite(newCosts, "episode cost window", "episode costs")
        costs.append(contentsOf: newCosts)
        totalAppended += newCosts.count
        if costs.count > capacity { costs.removeFirst(costs.count - capacity) }
    }

    /// J_C, the mean of the kept costs; throws `.noValidTokens` when the window is empty.
    public func mean() throws -> Double {
        guard !costs.isEmpty else { throw PolicyGradientError.noValidTokens(function: "episode cost window") }
        return costs.reduce(0, +) / Double(costs.count)
    }
}

/// One λ step of PPO-Lagrangian: for `pipeline.jsonl` and the checkpoint's λ history.
public struct LagrangeStepRecord: Sendable, Equatable, Codable {
    /// 1-based RL step.
    public var step: Int
    /// J_C, the window mean the step used.
    public var episodeCost: Double
    /// λ after the step.
    public var lambda: Double
}

/// Safe-RLHF's multiplier state: the log-λ SGD, the episode-cost window and the λ history; Codable for checkpoints.
public struct PPOLagrangian: Sendable, Equatable, Codable {
    /// The log-λ update (λ0, learning rate, threshold d, λ_max, delay).
    public private(set) var multiplier: LagrangeMultiplierUpdate
    /// The recent episode costs.
    public private(set) var window: EpisodeCostWindow
    /// One record per `step`, oldest first.
    public private(set) var history: [LagrangeStepRecord]

    /// Creates the state from a configured multiplier and a window size (Safe-RLHF: 128).
    public init(multiplier: LagrangeMultiplierUpdate, windowSize: Int = 128) throws {
        self.multiplier = multiplier
        self.window = try EpisodeCostWindow(capacity: windowSize)
        self.history = []
    }

    /// The current λ.
    public var lambda: Double { multiplier.lambda }

    /// One RL step: appends the step's episode costs (global episode order), takes J_C = the window mean, steps
    /// log λ (held during the multiplier's delay) and records it. Returns the record.
    /// - Throws: `.nonFinite` for a non-finite cost, `.noValidTokens` if the window is still empty.
    @discardableResult
    public mutating func step(episodeCosts: [Double]) throws -> LagrangeStepRecord {
        var next = window
        try next.append(contentsOf: episodeCosts)
        let jc = try next.mean()
        window = next
        multiplier.update(episodeCost: jc)
        let record = LagrangeStepRecord(step: history.count + 1, episodeCost: jc, lambda: multiplier.lambda)
        history.append(record)
        return record
    }

    /// The actor's per-token advantages (A_R − λ·A_C)/(1 + λ) at the current λ.
    /// - Throws: `.lengthMismatch` or `.nonFinite` for bad inputs.
    public func advantages(reward: [Double], cost: [Double]) throws -> [Double] {
        try requireCount(cost, reward.count, "PPO-Lagrangian advantages", "cost advantages")
        try requireFinite(reward, "PPO-Lagrangian advantages", "reward advantages")
        try requireFinite(cost, "PPO-Lagrangian advantages", "cost advantages")
        return multiplier.advantages(reward: reward, cost: cost)
    }
}
