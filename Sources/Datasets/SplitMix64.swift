// SplitMix64: the small, documented PRNG behind shuffles and held-out splits.

/// Steele, Lea & Flood's SplitMix64 (as in Java's `SplittableRandom` and Vigna's reference code):
///
/// ```
/// state += 0x9E3779B97F4A7C15
/// z = state
/// z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
/// z = (z ^ (z >> 27)) * 0x94D049BB133111EB
/// return z ^ (z >> 31)          (all arithmetic mod 2^64)
/// ```
/// Chosen because it is a few lines in any language, so a Python twin can reproduce every
/// permutation this package makes.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// The current state.
    public var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

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
