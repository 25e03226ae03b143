// The typed errors of the PPO / PPO-Lagrangian math (per-token rewards, GAE, whitening, clipped losses, the KL
// controller, the episode-cost window) and the input checks they share.

import Foundation

/// Why a PPO computation rejected its input.
public enum PolicyGradientError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// Two per-token (or per-sequence) arrays that must line up have different lengths.
    case lengthMismatch(function: String, field: String, count: Int, expected: Int)
    /// An input value is NaN or infinite.
    case nonFinite(function: String, field: String, index: Int, value: Double)
    /// A sequence length in a layout is negative.
    case negativeSequenceLength(index: Int, length: Int)
    /// A sequence that must carry a score at its last token has no tokens.
    case emptySequence(function: String, index: Int)
    /// Nothing to average: the mask selects no token (or the batch is empty).
    case noValidTokens(function: String)
    /// A hyper-parameter is outside its domain.
    case invalidParameter(name: String, value: Double, expected: String)
    /// exp(log π − log π_old) overflowed; the mini-batch should have been skipped by the ratio guard.
    case ratioOverflow(index: Int, logRatio: Double)

    public var description: String {
        switch self {
        case .lengthMismatch(let function, let field, let count, let expected):
            return "\(function): \(field) has \(count) values but \(expected) were expected; "
                + "pass one value per token (or per sequence) in the same order as the other arrays."
        case .nonFinite(let function, let field, let index, let value):
            return "\(function): \(field)[\(index)] is \(value); every input must be a finite number — "
                + "check the model outputs (log-probs, values, scores) of this rollout for overflow."
        case .negativeSequenceLength(let index, let length):
            return "sequence layout: sequence \(index) has length \(length); lengths must be ≥ 0."
        case .emptySequence(let function, let index):
            return "\(function): sequence \(index) has no response token, so there is no last token to carry its score; "
                + "drop empty responses before scoring or make the sampler emit at least one token (EOS)."
        case .noValidTokens(let function):
            return "\(function): no valid token to average over (empty batch or an all-false mask); "
                + "check the response mask of this mini-batch."
        case .invalidParameter(let name, let value, let expected):
            return "\(name) is \(value) but must be \(expected)."
        case .ratioOverflow(let index, let logRatio):
            return "clipped policy loss: exp(log π − log π_old) overflows at token \(index) (log-ratio \(logRatio)); "
                + "check the mean ratio with PPORatioGuard before computing the loss and skip this mini-batch."
        }
    }

    public var errorDescription: String? { description }
}

/// Throws `.lengthMismatch` unless `values.count == expected`.
func requireCount<T>(_ values: [T], _ expected: Int, _ function: String, _ field: String) throws {
    guard values.count == expected else {
        throw PolicyGradientError.lengthMismatch(function: function, field: field, count: values.count, expected: expected)
    }
}

/// Throws `.nonFinite` naming the first NaN or infinite element of `values`.
func requireFinite(_ values: [Double], _ function: String, _ field: String) throws {
    for (i, v) in values.enumerated() where !v.isFinite {
        throw PolicyGradientError.nonFinite(function: function, field: field, index: i, value: v)
    }
}

/// Throws `.invalidParameter` unless `value` is finite and satisfies `condition`.
func requireParameter(_ value: Double, _ name: String, _ expected: String, _ condition: (Double) -> Bool) throws {
    guard value.isFinite, condition(value) else {
        throw PolicyGradientError.invalidParameter(name: name, value: value, expected: expected)
    }
}

/// The mask to use: `mask` after a length check, or all tokens when nil.
func resolveMask(_ mask: [Bool]?, count: Int, _ function: String) throws -> [Bool] {
    guard let mask else { return [Bool](repeating: true, count: count) }
    try requireCount(mask, count, function, "mask")
    return mask
}
