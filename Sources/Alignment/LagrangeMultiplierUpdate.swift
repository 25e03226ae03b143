// The Safe-RLHF PPO-Lagrangian multiplier update and advantage mix (algorithms.md §5.5).
//
// Constraint J_C = E[C] ≤ d. The multiplier is parameterised as λ = exp(log λ), so it stays positive; each RL step
// takes one SGD step on lambda_loss = −(J_C − d)·λ with respect to log λ:
//
//     log λ ← log λ + lr · (J_C − d) · λ,   then   log λ ← min(log λ, log λ_max)
//
// and the actor uses the advantage A = (A_R − λ·A_C) / (1 + λ).

import Foundation

/// Why a `LagrangeMultiplierUpdate` was rejected.
public enum LagrangeMultiplierError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The initial λ was not a finite positive number (log-parameterisation needs λ > 0).
    case nonPositiveInitialLambda(Double)
    /// λ_max was not a finite positive number.
    case nonPositiveLambdaMax(Double)
    /// The learning rate was negative or not finite.
    case invalidLearningRate(Double)

    public var description: String {
        switch self {
        case .nonPositiveInitialLambda(let value):
            return "lagrange multiplier: initial lambda is \(value) but must be a finite number > 0 "
                + "(λ is stored as log λ); Safe-RLHF's default is 1.0."
        case .nonPositiveLambdaMax(let value):
            return "lagrange multiplier: lambda max is \(value) but must be a finite number > 0; the default is 5.0, "
                + "or pass nil for no clamp."
        case .invalidLearningRate(let value):
            return "lagrange multiplier: learning rate is \(value) but must be a finite number ≥ 0; the default is 0.1."
        }
    }

    public var errorDescription: String? { description }
}

/// The Safe-RLHF multiplier λ for the cost constraint E[C] ≤ d, updated by SGD on log λ.
public struct LagrangeMultiplierUpdate: Sendable, Equatable, Codable {
    /// log λ, the trained parameter.
    public private(set) var logLambda: Double
    /// SGD learning rate on log λ (`lambda_lr`).
    public var learningRate: Double
    /// The cost threshold d (`--threshold`).
    public var threshold: Double
    /// Upper clamp on λ (`lambda_max`); nil for none.
    public var lambdaMax: Double?
    /// Steps during which λ is held fixed (`lambda_update_delay_steps`).
    public var delaySteps: Int
    /// Calls to `update(episodeCost:)` so far.
    public private(set) var stepCount: Int

    /// The current multiplier λ = exp(log λ) > 0.
    public var lambda: Double { exp(logLambda) }

    /// Creates the update with Safe-RLHF's defaults (λ0 = 1, lr = 0.1, d = 0, λ_max = 5, no delay).
    public init(initialLambda: Double = 1.0, learningRate: Double = 0.1, threshold: Double = 0,
                lambdaMax: Double? = 5.0, delaySteps: Int = 0) throws {
        guard initialLambda > 0, initialLambda.isFinite else {
            throw LagrangeMultiplierError.nonPositiveInitialLambda(initialLambda)
        }
        if let lambdaMax, !(lambdaMax > 0 && lambdaMax.isFinite) {
            throw LagrangeMultiplierError.nonPositiveLambdaMax(lambdaMax)
        }
        guard learningRate >= 0, learningRate.isFinite else { throw LagrangeMultiplierError.invalidLearningRate(learningRate) }
        self.logLambda = log(initialLambda)
        self.learningRate = learningRate
        self.threshold = threshold
        self.lambdaMax = lambdaMax
        self.delaySteps = max(0, delaySteps)
        self.stepCount = 0
        if let lambdaMax { logLambda = min(logLambda, log(lambdaMax)) }
    }

    /// One RL step: given J_C (the mean recent episode cost), updates log λ and returns the new λ.
    @discardableResult
    public mutating func update(episodeCost: Double) -> Double {
        stepCount += 1
        guard stepCount > delaySteps else { return lambda }
        logLambda += learningRate * (episodeCost - threshold) * lambda
        if let lambdaMax { logLambda = min(logLambda, log(lambdaMax)) }
        return lambda
    }

    /// The actor's advantage (A_R − λ·A_C) / (1 + λ) at the current λ.
    public func advantage(reward: Double, cost: Double) -> Double {
        LagrangeMultiplierUpdate.advantage(reward: reward, cost: cost, lambda: lambda)
    }

    /// The actor's advantages, elementwise, at the current λ.
    public func advantages(reward: [Double], cost: [Double]) -> [Double] {
        precondition(reward.count == cost.count, "advantages: \(reward.count) reward but \(cost.count) cost advantages")
        let l = lambda
        return zip(reward, cost).map { LagrangeMultiplierUpdate.advantage(reward: $0, cost: $1, lambda: l) }
    }

    /// (A_R − λ·A_C) / (1 + λ).
    public static func advantage(reward: Double, cost: Double, lambda: Double) -> Double {
        (reward - lambda * cost) / (1 + lambda)
    }
}
