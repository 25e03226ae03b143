// Typed errors of the Privacy module: each names the quantity at fault and what to change.

import Foundation

/// A failure of privacy accounting, noise or sampling that a user (config, checkpoint, command line) can cause.
public struct PrivacyError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    /// What went wrong, for programmatic checks in callers and tests.
    public enum Kind: String, Sendable {
        /// A parameter (σ, q, δ, steps, a tolerance) outside its valid range.
        case invalidParameter
        /// A saved accountant history written by another mechanism (e.g. RDP history into a PRV accountant).
        case mechanismMismatch
        /// A saved history that cannot be a history (negative steps, q outside [0, 1], σ not finite, …).
        case malformedHistory
        /// The requested (ε, δ) cannot be reached with the configured sample rate and steps.
        case budgetUnreachable
        /// The numerical accountant cannot represent this mechanism at the requested precision.
        case numericalFailure
        /// Saved noise-generator state that does not fit the generator it is restored into.
        case noiseStateMismatch
    }

    public let kind: Kind
    /// The setting or field at fault (e.g. "sampleRate", "history[2].steps").
    public let field: String
    public let message: String

    public init(_ kind: Kind, field: String, _ message: String) {
        self.kind = kind
        self.field = field
        self.message = message
    }

    public var description: String { "privacy: \(field): \(message)" }
    public var errorDescription: String? { description }
}

extension PrivacyError {
    /// Checks that δ is a probability strictly between 0 and 1.
    static func checkDelta(_ delta: Double, field: String = "delta") throws {
        guard delta > 0, delta < 1 else {
            throw PrivacyError(.invalidParameter, field: field,
                               "δ = \(delta) must lie in (0, 1); the usual choice is 1/N for a dataset of N examples.")
        }
    }

    /// Checks a sample rate in [0, 1] (0 is a step that touches no data).
    static func checkSampleRate(_ q: Double, field: String = "sampleRate") throws {
        guard q >= 0, q <= 1 else {
            throw PrivacyError(.invalidParameter, field: field,
                               "sample rate q = \(q) must lie in [0, 1]; it is the expected batch size divided by the dataset size.")
        }
    }

    /// Checks a noise multiplier σ ≥ 0 (0 means no noise: ε = ∞).
    static func checkNoiseMultiplier(_ sigma: Double, field: String = "noiseMultiplier") throws {
        guard sigma >= 0, sigma.isFinite else {
            throw PrivacyError(.invalidParameter, field: field,
                               "noise multiplier σ = \(sigma) must be a finite number ≥ 0 (the noise std is σ·C).")
        }
    }
}
