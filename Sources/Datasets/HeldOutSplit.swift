// Deterministic train / held-out split by hashing a key (sample id or prompt).

import Tensors

/// Splits items into train and held-out sets by hashing a key, so that an item's side depends only
/// on its key, the seed and the fraction — not on the order or number of items, the world size or
/// the files listed before it.
///
/// `u = SplitMix64.mix(FNV-1a-64(UTF-8 key) ^ seed) >> 11`, held out iff `u / 2^53 < fraction`.
/// Keying by prompt (the default for pairs) keeps all pairs of one prompt on the same side, so
/// evaluation prompts are unseen in training.
public struct HeldOutSplit: Equatable, Sendable, Codable {
    /// The fraction to hold out, in [0, 1] (1: every item, an evaluation-only source).
    public var fraction: Double
    public var seed: UInt64

    /// - Throws: `DatasetError.invalidConfiguration` if the fraction is outside [0, 1].
    public init(fraction: Double, seed: UInt64 = 0) throws {
        guard fraction.isFinite, fraction >= 0, fraction <= 1 else {
            throw DatasetError(.invalidConfiguration, file: "dataset config", field: "evalFraction",
                               "evalFraction is \(fraction); use a value in [0, 1], e.g. 0.05 (1 holds the whole dataset out)")
        }
        self.fraction = fraction
        self.seed = seed
    }

    /// 64-bit FNV-1a of the key's UTF-8 bytes.
    public static func fnv1a(_ key: String) -> UInt64 { StableHash.fnv1a(key) }

    /// Whether the item with `key` is held out.
    public func isHeldOut(_ key: String) -> Bool {
        let u = SplitMix64.mix(Self.fnv1a(key) ^ seed) >> 11
        return Double(u) / 9_007_199_254_740_992.0 < fraction
    }

    /// Splits `items`, keeping their order within each side.
    public func split<T>(_ items: [T], key: (T) -> String) -> (train: [T], heldOut: [T]) {
        var train: [T] = [], heldOut: [T] = []
        for item in items {
            if isHeldOut(key(item)) { heldOut.append(item) } else { train.append(item) }
        }
        return (train, heldOut)
    }

    /// Splits pairs by prompt (all pairs of one prompt land on the same side).
    public func split(_ pairs: [PreferencePair]) -> (train: [PreferencePair], heldOut: [PreferencePair]) {
        split(pairs, key: \.promptKey)
    }
}
