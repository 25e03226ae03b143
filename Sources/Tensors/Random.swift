// SplitMix64 (Steele, Lea & Flood 2014): the seeded generator of initialisation, sampling and pseudo-labels.

import Foundation

/// A fast, seedable 64-bit generator; the same seed gives the same stream on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
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
}
