// SplitMix64 (Steele, Lea & Flood 2014): the one seeded generator of the package — initialisation,
// shuffles, held-out splits, sampling, pseudo-labels, dropout masks.
//
//     state += 0x9E3779B97F4A7C15
//     z = state
//     z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//     z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//     return z ^ (z >> 31)          (all arithmetic mod 2^64)
//
// Chosen because it is a few lines in any language, so a Python twin can reproduce every stream.

import Foundation

/// A fast, seedable 64-bit generator; the same seed gives the same stream on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable, Equatable, Codable {
    /// The increment of the state (the golden ratio in 64-bit fixed point).
    public static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// The current state (saved in checkpoints to resume a stream).
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= Self.golden
        return Self.mix(state)
    }

    /// The SplitMix64 output function (a bijective 64-bit finalizer).
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform Double in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// A standard normal Double (Box–Muller).
    public mutating func nextNormal() -> Double {
        let u1 = 1 - nextUnit(), u2 = nextUnit()          // u1 in (0, 1]
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// A uniform Float in [0, 1).
    public mutating func nextUniform() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// A standard normal Float.
    public mutating func nextGaussian() -> Float { Float(nextNormal()) }

    /// A uniform integer in `0 ..< bound` without modulo bias: draw `r` until
    /// `r >= (2^64 − bound) mod bound`, then return `r mod bound`.
    public mutating func uniform(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "uniform(below:) needs a positive bound")
        let threshold = (0 &- bound) % bound
        while true {
            let r = next()
            if r >= threshold { return r % bound }
        }
    }

    /// A permutation of `0 ..< count` by Durstenfeld's Fisher–Yates:
    /// `for i in count−1 down to 1: j = uniform(below: i+1); swap(a[i], a[j])`.
    public mutating func permutation(count: Int) -> [Int] {
        var a = Array(0..<count)
        var i = count - 1
        while i > 0 {
            let j = Int(uniform(below: UInt64(i + 1)))
            a.swapAt(i, j)
            i -= 1
        }
        return a
    }
}

/// FNV-1a 64 over bytes: the one stable hash of the package (cache keys, config hashes, held-out splits).
public enum StableHash {
    /// The FNV-1a offset basis.
    public static let offsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325

    /// The 64-bit FNV-1a hash of `bytes`, continuing from `seed`.
    public static func fnv1a<S: Sequence>(_ bytes: S, seed: UInt64 = offsetBasis) -> UInt64 where S.Element == UInt8 {
        var h = seed
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    /// The hash of a string's UTF-8 bytes.
    public static func fnv1a(_ text: String) -> UInt64 { fnv1a(text.utf8) }

    /// The hash of `bytes` as 16 hex digits.
    public static func hex(_ bytes: [UInt8], seed: UInt64 = offsetBasis) -> String {
        String(format: "%016llx", fnv1a(bytes, seed: seed))
    }
}
