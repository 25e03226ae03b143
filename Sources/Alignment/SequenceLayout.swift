// A ragged batch: variable-length response sequences stored back to back in one flat array.
//
// Every per-token PPO function takes flat arrays plus a `SequenceLayout`; sequence i owns the slice
// `offsets[i] ..< offsets[i] + lengths[i]`. Only response tokens are stored (no prompt, no padding), so the
// token after the last one of a sequence is the end of the episode (its value is 0 in GAE).

import Foundation

/// The lengths (and derived start offsets) of the sequences of a flat per-token array.
public struct SequenceLayout: Sendable, Equatable {
    /// Number of tokens of each sequence, in batch order.
    public let lengths: [Int]
    /// Start of each sequence in the flat array: offsets[i] = lengths[0] + … + lengths[i−1].
    public let offsets: [Int]
    /// Total number of tokens (the flat arrays' length).
    public let tokenCount: Int

    /// Creates a layout from sequence lengths; throws `.negativeSequenceLength` for a length below 0.
    public init(lengths: [Int]) throws {
        var offsets = [Int]()
        offsets.reserveCapacity(lengths.count)
        var total = 0
        for (i, length) in lengths.enumerated() {
            guard length >= 0 else { throw PolicyGradientError.negativeSequenceLength(index: i, length: length) }
            offsets.append(total)
            total += length
        }
        self.lengths = lengths
        self.offsets = offsets
        self.tokenCount = total
    }

    /// The layout of nested per-sequence arrays.
    public init<T>(of sequences: [[T]]) {
        // Counts are never negative, so this cannot throw.
        try! self.init(lengths: sequences.map(\.count))
    }

    /// Number of sequences.
    public var sequenceCount: Int { lengths.count }

    /// The flat indices of sequence `i`.
    public func range(of i: Int) -> Range<Int> { offsets[i] ..< offsets[i] + lengths[i] }

    /// Splits a flat per-token array into one array per sequence; throws `.lengthMismatch` unless it has
    /// `tokenCount` values.
    public func split<T>(_ flat: [T]) throws -> [[T]] {
        try requireCount(flat, tokenCount, "sequence layout", "flat values")
        return (0..<sequenceCount).map { Array(flat[range(of: $0)]) }
    }

    /// Concatenates per-sequence arrays into one flat array and its layout.
    public static func flatten<T>(_ sequences: [[T]]) -> (flat: [T], layout: SequenceLayout) {
        (sequences.flatMap { $0 }, SequenceLayout(of: sequences))
    }
}
