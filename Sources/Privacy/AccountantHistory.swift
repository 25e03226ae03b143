// The state every accountant shares: a history of (σ, q, steps) segments, saved in checkpoints.
// On disk it is Opacus' state dict: {"mechanism": "rdp", "history": [{noise_multiplier, sample_rate, steps}, …]}.

import Foundation

/// How an accountant turns a history into ε.
public enum AccountantMechanism: String, Codable, CaseIterable, Sendable {
    /// Rényi DP of the subsampled Gaussian at Opacus' default orders, converted by Balle et al. (2020).
    case rdp
    /// Numerical composition of privacy-loss random variables (Gopi et al. 2021), Opacus' PRV accountant.
    case prv
    /// Gaussian DP by the central limit theorem (Dong et al. 2019; Bu et al. 2020): an approximation.
    case gdp
}

/// A run of `steps` DP-SGD steps with the same noise multiplier σ and Poisson sample rate q.
public struct PrivacySegment: Codable, Equatable, Sendable {
    public var noiseMultiplier: Double
    public var sampleRate: Double
    public var steps: Int

    public init(noiseMultiplier: Double, sampleRate: Double, steps: Int) {
        self.noiseMultiplier = noiseMultiplier
        self.sampleRate = sampleRate
        self.steps = steps
    }

    enum CodingKeys: String, CodingKey {
        case noiseMultiplier = "noise_multiplier"
        case sampleRate = "sample_rate"
        case steps
    }

    /// Checks σ ≥ 0 finite, q ∈ [0, 1], steps ≥ 0, naming `field` (e.g. "history[2]") in the error.
    public func validate(field: String, kind: PrivacyError.Kind = .invalidParameter) throws {
        guard noiseMultiplier >= 0, noiseMultiplier.isFinite else {
            throw PrivacyError(kind, field: "\(field).noise_multiplier",
                               "σ = \(noiseMultiplier) must be a finite number ≥ 0.")
        }
        guard sampleRate >= 0, sampleRate <= 1 else {
            throw PrivacyError(kind, field: "\(field).sample_rate", "q = \(sampleRate) must lie in [0, 1].")
        }
        guard steps >= 0 else {
            throw PrivacyError(kind, field: "\(field).steps", "steps = \(steps) must be ≥ 0.")
        }
    }
}

/// An accountant's saved state: its mechanism and its history.
public struct AccountantState: Codable, Equatable, Sendable {
    public var mechanism: AccountantMechanism
    public var history: [PrivacySegment]

    public init(mechanism: AccountantMechanism, history: [PrivacySegment]) {
        self.mechanism = mechanism
        self.history = history
    }

    /// Decodes a state, reporting a missing key, an unknown mechanism or a segment out of range as a
    /// `PrivacyError` of kind `.malformedHistory`.
    public init(from decoder: Decoder) throws {
        let container: KeyedDecodingContainer<CodingKeys>
        do {
            container = try decoder.container(keyedBy: CodingKeys.self)
        } catch {
            throw PrivacyError(.malformedHistory, field: "accountant state",
                               "expected an object with keys \"mechanism\" and \"history\"; the checkpoint is damaged or not an accountant state.")
        }
        let name: String
        do { name = try container.decode(String.self, forKey: .mechanism) } catch {
            throw PrivacyError(.malformedHistory, field: "mechanism",
                               "missing or not a string; expected one of rdp, prv, gdp.")
        }
        guard let mechanism = AccountantMechanism(rawValue: name) else {
            throw PrivacyError(.malformedHistory, field: "mechanism",
                               "'\(name)' is not an accountant; expected one of rdp, prv, gdp.")
        }
        let history: [PrivacySegment]
        do { history = try container.decode([PrivacySegment].self, forKey: .history) } catch {
            throw PrivacyError(.malformedHistory, field: "history",
                               "missing, or a segment lacks a number for noise_multiplier, sample_rate or steps (\(error)).")
        }
        for (i, segment) in history.enumerated() {
            try segment.validate(field: "history[\(i)]", kind: .malformedHistory)
        }
        self.mechanism = mechanism
        self.history = history
    }

    /// The total number of steps over all segments.
    public var totalSteps: Int { history.reduce(0) { $0 + $1.steps } }
}

/// An accountant: records DP-SGD steps as a history of segments and turns it into ε for a δ.
/// Codable as its `AccountantState` (each accountant's `init(from:)` goes through `init(state:)`), so
/// decoding the state of another mechanism or a malformed history is a `PrivacyError`.
public protocol PrivacyAccountant: Codable, Sendable {
    /// The mechanism this accountant implements (written into its saved state).
    static var mechanism: AccountantMechanism { get }
    /// The segments recorded so far, oldest first.
    var history: [PrivacySegment] { get }
    /// An accountant with the given (validated) history.
    init(history: [PrivacySegment]) throws
    /// Records `steps` steps with σ and q; consecutive steps with equal σ and q extend the last segment.
    mutating func step(noiseMultiplier: Double, sampleRate: Double, steps: Int) throws
    /// The ε of the whole history at δ (for PRV the upper bound Opacus reports).
    func epsilon(delta: Double) throws -> Double
}

extension PrivacyAccountant {
    /// An accountant with no steps.
    public init() { try! self.init(history: []) }   // an empty history is always valid

    /// Records one step.
    public mutating func step(noiseMultiplier: Double, sampleRate: Double) throws {
        try step(noiseMultiplier: noiseMultiplier, sampleRate: sampleRate, steps: 1)
    }

    /// This accountant's saved state.
    public var state: AccountantState { AccountantState(mechanism: Self.mechanism, history: history) }

    /// Restores from a saved state, refusing a state of another mechanism.
    public init(state: AccountantState) throws {
        guard state.mechanism == Self.mechanism else {
            throw PrivacyError(.mechanismMismatch, field: "mechanism",
                               "the saved history is a \(state.mechanism.rawValue) history and cannot be loaded into a "
                               + "\(Self.mechanism.rawValue) accountant; resume with accountant: \(state.mechanism.rawValue), "
                               + "or start a new run.")
        }
        try self.init(history: state.history)
    }

    /// The total number of steps recorded.
    public var totalSteps: Int { history.reduce(0) { $0 + $1.steps } }

}

/// Validates a history (each segment) before an accountant takes it.
func validatedHistory(_ history: [PrivacySegment]) throws -> [PrivacySegment] {
    for (i, segment) in history.enumerated() { try segment.validate(field: "history[\(i)]") }
    return history
}

/// Appends `steps` steps with σ and q to a history, extending the last segment when σ and q are equal
/// (Opacus' `step`); zero steps change nothing.
func appendSteps(_ history: inout [PrivacySegment], noiseMultiplier: Double, sampleRate: Double, steps: Int) throws {
    let segment = PrivacySegment(noiseMultiplier: noiseMultiplier, sampleRate: sampleRate, steps: steps)
    try segment.validate(field: "step")
    guard steps > 0 else { return }
    if let last = history.last, last.noiseMultiplier == noiseMultiplier, last.sampleRate == sampleRate {
        history[history.count - 1].steps += steps
    } else {
        history.append(segment)
    }
}

/// An accountant of the given mechanism with the given history.
public func makeAccountant(_ mechanism: AccountantMechanism, history: [PrivacySegment] = []) throws -> any PrivacyAccountant {
    switch mechanism {
    case .rdp: return try RDPAccountant(history: history)
    case .prv: return try PRVAccountant(history: history)
    case .gdp: return try GDPAccountant(history: history)
    }
}
