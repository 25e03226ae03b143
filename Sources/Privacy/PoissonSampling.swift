// Poisson sampling of DP-SGD batches over ranks: each example of 0..<N is in step s's batch independently
// with probability q, decided by a hash of (seed, s, index), so the batch does not depend on the world size.
// Rank r of W takes the sampled indices i with i mod W = r; the union over ranks is the whole Poisson sample.

import Foundation
import Tensors

/// The Poisson sample of every step of a run, sharded over ranks.
public struct PoissonSampler: Sendable, Equatable {
    public let datasetSize: Int
    public let sampleRate: Double
    public let seed: UInt64

    /// - Throws: `.invalidParameter` for N < 1 or q outside (0, 1].
    public init(datasetSize: Int, sampleRate: Double, seed: UInt64) throws {
        guard datasetSize >= 1 else {
            throw PrivacyError(.invalidParameter, field: "datasetSize", "the private dataset has \(datasetSize) examples; it needs at least 1.")
        }
        guard sampleRate > 0, sampleRate <= 1 else {
            throw PrivacyError(.invalidParameter, field: "sampleRate",
                               "q = \(sampleRate) must lie in (0, 1]; set it to the expected batch size divided by \(datasetSize).")
        }
        self.datasetSize = datasetSize
        self.sampleRate = sampleRate
        self.seed = seed
    }

    /// q·N: the divisor of the noised gradient sum (Opacus divides by the expected, not the realised, batch size).
    public var expectedBatchSize: Double { sampleRate * Double(datasetSize) }

    /// The first word of step s's SplitMix64 stream (a different odd multiplier than the index stream's).
    private func stepKey(_ step: Int) -> UInt64 {
        var rng = SplitMix64(seed: seed ^ ((UInt64(truncatingIfNeeded: step) &+ 1) &* 0xD1B5_4A32_D192_ED03))
        return rng.next()
    }

    /// Whether `index` is in step `step`'s batch: word index + 1 of the SplitMix64 stream started at the step's
    /// key, as a 53-bit uniform, below q.
    public func isSampled(index: Int, step: Int) -> Bool { isSampled(index: index, key: stepKey(step)) }

    @inline(__always)
    private func isSampled(index: Int, key: UInt64) -> Bool {
        var rng = SplitMix64(seed: key &+ (UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15))
        return rng.nextUnit() < sampleRate
    }

    /// This rank's part of step `step`'s batch: the sampled global indices i ≡ rank (mod worldSize), ascending.
    /// May be empty (the step still adds noise).
    public func indices(step: Int, rank: Int, worldSize: Int) throws -> [Int] {
        guard worldSize >= 1, rank >= 0, rank < worldSize else {
            throw PrivacyError(.invalidParameter, field: "rank", "rank \(rank) of a world of \(worldSize) ranks does not exist.")
        }
        let key = stepKey(step)
        var out: [Int] = []
        out.reserveCapacity(Int(expectedBatchSize / Double(worldSize) * 1.2) + 8)
        for index in stride(from: rank, to: datasetSize, by: worldSize) where isSampled(index: index, key: key) {
            out.append(index)
        }
        return out
    }

    /// A logical batch cut into physical batches of at most `maxSize` examples, in order (none when empty).
    public static func physicalBatches(_ logical: [Int], maxSize: Int) throws -> [ArraySlice<Int>] {
        guard maxSize >= 1 else {
            throw PrivacyError(.invalidParameter, field: "physicalBatchSize", "the physical batch size is \(maxSize); it must be at least 1.")
        }
        return stride(from: 0, to: logical.count, by: maxSize).map { logical[$0..<min($0 + maxSize, logical.count)] }
    }
}
