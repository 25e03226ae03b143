// The Gaussian noise of DP-SGD: `secure` from ChaCha20 keyed by the OS CSPRNG (private; Opacus' secure
// mode), or `seeded` from SplitMix64 (reproducible and restorable for tests and exact resume; NOT private).

import Foundation
import Tensors

/// The saved state of a noise source: its mode and, for the seeded mode, the generator's position.
public struct NoiseSourceState: Codable, Equatable, Sendable {
    public enum Mode: String, Codable, Sendable { case secure, seeded }
    public var mode: Mode
    /// SplitMix64's state (seeded mode only).
    public var splitMixState: UInt64?

    public init(mode: Mode, splitMixState: UInt64? = nil) {
        self.mode = mode
        self.splitMixState = splitMixState
    }

    enum CodingKeys: String, CodingKey {
        case mode
        case splitMixState = "splitmix64_state"
    }
}

/// A stream of N(0, std²) noise added to gradient slabs.
///
/// - `secure`: each value is (z₁ + z₂ + z₃ + z₄)/2 · std with zᵢ standard normals (Box–Muller on 24-bit
///   uniforms in SIMD float, `FastGaussian`) from a ChaCha20 keystream under a key from the OS CSPRNG
///   (`ChaCha20Random`), and one draw is discarded at the start of each call: Opacus'
///   `_generate_noise(secure_mode=True)`, whose sum of 2n = 4 draws defends against floating-point
///   attacks on a single Gaussian sample (Holohan & Braghin 2021, §5.1).
/// - `seeded`: one SplitMix64 Box–Muller draw per value; the same seed gives the same noise, and the state
///   can be saved and restored. Logs and checkpoints must mark a run with this mode as not private.
public final class GaussianNoiseSource {
    private enum Generator {
        case secure(ChaCha20Random)
        case seeded(SplitMix64)
    }
    private var generator: Generator

    /// A source drawing from ChaCha20 under a fresh key from the OS CSPRNG.
    public static func secure() -> GaussianNoiseSource { GaussianNoiseSource(.secure(ChaCha20Random())) }

    /// A reproducible source (not private).
    public static func seeded(_ seed: UInt64) -> GaussianNoiseSource { GaussianNoiseSource(.seeded(SplitMix64(seed: seed))) }

    private init(_ generator: Generator) { self.generator = generator }

    /// Restores a saved source: the seeded mode continues exactly where it stopped; the secure mode has no
    /// state and continues under a fresh key from the OS.
    /// - Throws: `.noiseStateMismatch` when a seeded state lacks its generator position.
    public convenience init(restoring state: NoiseSourceState) throws {
        switch state.mode {
        case .secure:
            self.init(.secure(ChaCha20Random()))
        case .seeded:
            guard let position = state.splitMixState else {
                throw PrivacyError(.noiseStateMismatch, field: "noise.splitmix64_state",
                                   "a seeded noise state needs its generator position; the checkpoint is damaged. "
                                   + "Resume from an earlier checkpoint or start a new run.")
            }
            var rng = SplitMix64(seed: 0)
            rng.state = position
            self.init(.seeded(rng))
        }
    }

    /// Whether the noise is fit for a privacy guarantee (only the secure mode is).
    public var isPrivate: Bool { if case .secure = generator { return true } else { return false } }

    /// The state to save in a checkpoint.
    public var state: NoiseSourceState {
        switch generator {
        case .secure: return NoiseSourceState(mode: .secure)
        case .seeded(let rng): return NoiseSourceState(mode: .seeded, splitMixState: rng.state)
        }
    }

    /// One line for logs saying whether this noise is private.
    public var summary: String {
        isPrivate ? "noise: secure (ChaCha20 keyed from the OS CSPRNG, sum of 4 Gaussian draws)"
                  : "noise: seeded SplitMix64 — NOT PRIVATE (tests and exact resume only)"
    }

    /// Adds N(0, std²) to each of `count` values; nothing when std is 0.
    public func addNoise(to values: FloatPtr, count: Int, standardDeviation std: Double) {
        guard std > 0, count > 0 else { return }
        switch generator {
        case .seeded(var rng):
            for i in 0..<count { values[i] += Float(std * rng.nextNormal()) }
            generator = .seeded(rng)
        case .secure(let stream):
            // Large slabs (full fine-tuning: every parameter) are cut into one contiguous part per thread, each
            // drawn from its own ChaCha20 stream (part 0 from this source's generator, the others under fresh
            // keys from the OS).
            let parts = count >= Self.parallelThreshold ? max(1, ThreadPool.threads) : 1, scale = Float(std)
            if parts == 1 { FastGaussian.addNoise(to: values, count: count, scale: scale, generator: stream); return }
            parallelFor(parts) { p in
                let lo = p * count / parts, hi = (p + 1) * count / parts
                FastGaussian.addNoise(to: values + lo, count: hi - lo, scale: scale, generator: p == 0 ? stream : ChaCha20Random())
            }
        }
    }

    /// Slabs from this many values up are drawn by several threads (secure mode).
    static let parallelThreshold = 1 << 18
}
