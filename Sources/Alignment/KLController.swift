// The KL coefficient β of PPO's per-token penalty: fixed, or TRL's adaptive controller (Ziegler et al. 2019,
// arXiv 1909.08593; TRL `AdaptiveKLController`):
//
//     e = clip(KL / target − 1, −0.2, 0.2)
//     β ← β · (1 + e · n / horizon)
//
// where KL is the batch's mean over sequences of Σ_t k_t (`TokenRewards.klPerSequence`, `objective/kl`) and n the
// number of episodes in the update (TRL passes batch_size × number of processes, i.e. the global batch).
// TRL's defaults: β0 = 0.2, target 6, horizon 10,000. The state is Codable so a resumed run continues with the
// same β (the controller is part of the checkpoint's algorithm state).

import Foundation

/// A fixed or adaptive KL coefficient, resumable from a checkpoint.
public struct KLController: Sendable, Equatable, Codable {
    /// Fixed β or TRL's proportional controller.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// β never changes.
        case fixed
        /// β ← β·(1 + clip(KL/target − 1, −0.2, 0.2)·n/horizon).
        case adaptive
    }

    /// Which controller this is.
    public let kind: Kind
    /// The current β.
    public private(set) var value: Double
    /// The KL the adaptive controller steers towards (nil when fixed).
    public let target: Double?
    /// The adaptive controller's horizon in episodes (nil when fixed).
    public let horizon: Double?
    /// Calls to `update` so far.
    public private(set) var updateCount: Int

    /// The largest proportional error the adaptive controller acts on (TRL's ±0.2).
    public static let errorClip = 0.2

    private init(kind: Kind, value: Double, target: Double?, horizon: Double?) {
        self.kind = kind
        self.value = value
        self.target = target
        self.horizon = horizon
        self.updateCount = 0
    }

    /// A fixed coefficient β ≥ 0.
    public static func fixed(_ coefficient: Double) throws -> KLController {
        try requireParameter(coefficient, "KL controller: coefficient", "a finite number ≥ 0 (e.g. 0.05)") { $0 >= 0 }
        return KLController(kind: .fixed, value: coefficient, target: nil, horizon: nil)
    }

    /// TRL's adaptive controller starting at `initial` (TRL 0.2) with `target` KL (6) and `horizon` (10,000).
    public static func adaptive(initial: Double = 0.2, target: Double = 6, horizon: Double = 10_000) throws -> KLController {
        try requireParameter(initial, "KL controller: initial coefficient", "a finite number > 0 (TRL uses 0.2)") { $0 > 0 }
        try requireParameter(target, "KL controller: target", "a finite number > 0 (TRL uses 6)") { $0 > 0 }
        try requireParameter(horizon, "KL controller: horizon", "a finite number > 0 (TRL uses 10000)") { $0 > 0 }
        return KLController(kind: .adaptive, value: initial, target: target, horizon: horizon)
    }

    /// Updates β from the batch's mean per-sequence KL over `episodes` episodes and returns the new β.
    /// The fixed controller only counts the call.
    /// - Throws: `.invalidParameter` for a non-finite KL or a negative episode count.
    @discardableResult
    public mutating func update(currentKL: Double, episodes: Int) throws -> Double {
        try requireParameter(currentKL, "KL controller: current KL", "a finite number (the mean Σ_t KL per sequence)") { _ in true }
        try requireParameter(Double(episodes), "KL controller: episodes", "≥ 0 (the global batch size)") { $0 >= 0 }
        updateCount += 1
        guard kind == .adaptive, let target, let horizon else { return value }
        let error = min(max(currentKL / target - 1, -Self.errorClip), Self.errorClip)
        value *= 1 + error * Double(episodes) / horizon
        return value
    }
}
