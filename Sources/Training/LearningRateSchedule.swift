// Warmup + decay learning-rate schedules matching Hugging Face transformers' `get_*_schedule_with_warmup`.

import Foundation

/// A learning rate as a function of the number of optimizer steps already taken.
///
/// `rate(at: k)` is the rate for the (k+1)-th update, i.e. what a PyTorch `LambdaLR` returns after k
/// `scheduler.step()` calls: peak × multiplier(k). With warmup > 0 the very first update therefore uses rate 0,
/// exactly like transformers.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
    /// The shape after warmup.
    public enum Kind: String, Codable, CaseIterable, Sendable {
        /// `get_constant_schedule_with_warmup`: linear warmup, then peak.
        case constant
        /// `get_linear_schedule_with_warmup`: linear warmup, then linear decay to 0 at `totalSteps`.
        case linear
        /// `get_cosine_schedule_with_warmup` (num_cycles 0.5): linear warmup, then half a cosine to 0 at `totalSteps`.
        case cosine
    }

    /// The shape after warmup.
    public var kind: Kind
    /// The learning rate reached at the end of warmup.
    public var peak: Float
    /// Steps of linear warmup from 0 to `peak`.
    public var warmupSteps: Int
    /// Total optimizer steps of the run (ignored by `.constant`).
    public var totalSteps: Int

    /// Creates a schedule.
    public init(kind: Kind, peak: Float, warmupSteps: Int = 0, totalSteps: Int) {
        self.kind = kind
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// The learning rate to use after `step` optimizer steps have been taken.
    public func rate(at step: Int) -> Float {
        Float(Double(peak) * multiplier(at: step))
    }

    /// The transformers LambdaLR multiplier after `step` steps, in Double.
    public func multiplier(at step: Int) -> Double {
        if step < warmupSteps {
            return Double(step) / Double(max(1, warmupSteps))
        }
        switch kind {
        case .constant:
            return 1
        case .linear:
            return max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
        case .cosine:
            let numCycles = 0.5
            let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
            return max(0, 0.5 * (1 + cos(Double.pi * numCycles * 2 * progress)))
        }
    }
}
