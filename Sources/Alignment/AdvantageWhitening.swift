// Advantage whitening as TRL's `masked_whiten` does it (ppo-dp.md §4), over a whole data-parallel batch or per
// sequence:
//
//     x̂ = (x − mean) / sqrt(var + 1e-8)        (+ mean again when shiftMean is false)
//
// with the masked mean and the UNBIASED (Bessel-corrected) masked variance, as TRL's `masked_var(unbiased=True)`:
//     var = Σ(x − mean)² / (n − 1),   n = number of valid tokens.
//
// Global batch over ranks: every rank computes `WhiteningMoments(values:mask:)` of its tokens, the caller
// all-reduces `moments.asArray` = [n, Σx, Σx²] (a sum), rebuilds `WhiteningMoments(reduced:)` and calls
// `whiten(_:mask:moments:)` on its own tokens. The result does not depend on the world size. From the moments,
// var = (Σx² − (Σx)²/n)/(n − 1) in Double; its rounding error is about 1e-16·mean²/var relative, negligible for
// advantages (|mean|/std far below 1e6).
//
// n = 1: TRL divides by zero (n − 1 = 0) and returns NaN. Here the single token's centred value is exactly 0, so it
// whitens to 0 (or to the mean when shiftMean is false) and `variance` reports 0. Masked-out tokens come back as 0.
//
// Per-sequence whitening (each sequence by its own moments) keeps one example's advantages independent of the
// others', which per-example DP-SGD accounting needs (ppo-dp.md §5).

import Foundation

/// The count, sum and sum of squares of the valid values of a batch: all-reducible by a plain sum.
public struct WhiteningMoments: Sendable, Equatable, Codable {
    /// n, the number of valid values (a Double so the three moments travel in one Double all-reduce).
    public var count: Double
    /// Σx over valid values.
    public var sum: Double
    /// Σx² over valid values.
    public var sumOfSquares: Double

    /// Creates moments from their parts.
    public init(count: Double, sum: Double, sumOfSquares: Double) {
        self.count = count
        self.sum = sum
        self.sumOfSquares = sumOfSquares
    }

    /// The moments of the values where `mask` is true (all values when `mask` is nil).
    public init(values: [Double], mask: [Bool]? = nil) throws {
        let function = "whitening moments"
        let mask = try resolveMask(mask, count: values.count, function)
        try requireFinite(values, function, "values")
        var n = 0.0, s = 0.0, q = 0.0
        for i in values.indices where mask[i] {
            n += 1
            s += values[i]
            q += values[i] * values[i]
        }
        self.init(count: n, sum: s, sumOfSquares: q)
    }

    /// Rebuilds moments from an all-reduced `[count, sum, sumOfSquares]`.
    public init(reduced: [Double]) throws {
        try requireCount(reduced, 3, "whitening moments", "reduced moments [count, sum, sumOfSquares]")
        try requireFinite(reduced, "whitening moments", "reduced moments")
        self.init(count: reduced[0], sum: reduced[1], sumOfSquares: reduced[2])
    }

    /// `[count, sum, sumOfSquares]`, the buffer to all-reduce (sum) across ranks.
    public var asArray: [Double] { [count, sum, sumOfSquares] }

    /// The moments of two disjoint sets of values together.
    public static func + (a: WhiteningMoments, b: WhiteningMoments) -> WhiteningMoments {
        WhiteningMoments(count: a.count + b.count, sum: a.sum + b.sum, sumOfSquares: a.sumOfSquares + b.sumOfSquares)
    }

    /// The mean Σx / n; throws `.noValidTokens` when n = 0.
    public func mean() throws -> Double {
        guard count > 0 else { throw PolicyGradientError.noValidTokens(function: "whitening") }
        return sum / count
    }

    /// The variance: unbiased Σ(x − mean)²/(n − 1) (TRL's choice) or biased /n; 0 when n = 1.
    /// Throws `.noValidTokens` when n = 0.
    public func variance(unbiased: Bool = true) throws -> Double {
        let m = try mean()
        guard count > 1 else { return 0 }
        let centred = max(0, sumOfSquares - m * sum)   // Σ(x − mean)², clamped against rounding below 0
        return centred / (unbiased ? count - 1 : count)
    }
}

/// The ε TRL adds to the variance before the square root.
public let whiteningEpsilon = 1e-8

/// Whitens `values` with given moments (usually the all-reduced moments of the whole batch).
///
/// - Parameters:
///   - values: this rank's values (advantages).   // (N)
///   - mask: which values are valid; masked-out values come back as 0. Nil means all.
///   - moments: the moments to normalise with.
///   - shiftMean: false adds the mean back after scaling (TRL's `shift_mean=False`).
/// - Throws: `PolicyGradientError` for a mask of the wrong length, non-finite values or empty moments.
public func whiten(_ values: [Double], mask: [Bool]? = nil, moments: WhiteningMoments,
                   shiftMean: Bool = true) throws -> [Double] {
    let mask = try resolveMask(mask, count: values.count, "whitening")
    try requireFinite(values, "whitening", "values")
    let mean = try moments.mean()
    let scale = 1 / (try moments.variance(unbiased: true) + whiteningEpsilon).squareRoot()
    var out = [Double](repeating: 0, count: values.count)   // (N)
    for i in values.indices where mask[i] {
        let centred = moments.count > 1 ? (values[i] - mean) * scale : 0
        out[i] = shiftMean ? centred : centred + mean
    }
    return out
}

/// Whitens a whole single-process batch: moments of the valid values, then `whiten`.
/// For a data-parallel batch, all-reduce the moments instead (see the file header).
public func whitenGlobally(_ values: [Double], mask: [Bool]? = nil, shiftMean: Bool = true) throws -> [Double] {
    try whiten(values, mask: mask, moments: WhiteningMoments(values: values, mask: mask), shiftMean: shiftMean)
}

/// Whitens every sequence of a ragged batch by its own moments (valid tokens only).
/// A sequence with no valid token is left at 0; one with a single valid token whitens to 0.
public func whitenPerSequence(_ values: [Double], layout: SequenceLayout, mask: [Bool]? = nil,
                              shiftMean: Bool = true) throws -> [Double] {
    try requireCount(values, layout.tokenCount, "per-sequence whitening", "values")
    let mask = try resolveMask(mask, count: values.count, "per-sequence whitening")
    var out = [Double](repeating: 0, count: values.count)   // (N)
    for s in 0..<layout.sequenceCount {
        let range = layout.range(of: s)
        let slice = Array(values[range]), sliceMask = Array(mask[range])
        let moments = try WhiteningMoments(values: slice, mask: sliceMask)
        guard moments.count > 0 else { continue }
        let whitened = try whiten(slice, mask: sliceMask, moments: moments, shiftMean: shiftMean)
        out.replaceSubrange(range, with: whitened)
    }
    return out
}
