// Deterministic, world-size-independent assignment of samples to optimizer steps, ranks and micro-steps.

import Foundation
import Tensors

/// Assigns dataset indices to (epoch, step, rank, micro-step) so that every optimizer step sees
/// the same samples whatever the world size and gradient-accumulation count.
///
/// - Each epoch uses a permutation of `0 ..< datasetSize` that depends only on (seed, epoch,
///   datasetSize): `SplitMix64(seed: seed ^ (0x9E3779B97F4A7C15 · (epoch + 1))).permutation(count:)`
///   (Fisher–Yates), or the identity when `shuffle` is off.
/// - Optimizer step `s` of an epoch takes the permutation's positions `[s·G, (s+1)·G)`,
///   `G` = `globalBatchSize` (fixed by the config). The last `datasetSize mod G` positions of each
///   epoch are dropped (an incomplete batch would change the step's effective size and make the
///   sample set depend on `G`'s remainder handling); they are different samples each epoch.
/// - The step's `G` positions are cut into `R·A` micro-batches of `B = G/(R·A)` consecutive
///   positions; rank `r`, micro-step `a` takes micro-batch `m = r·A + a`, i.e. each rank takes a
///   contiguous block of `G/R` positions and walks through it in `A` micro-steps. So 2 ranks × 1
///   micro-step and 1 rank × 2 micro-steps compute exactly the same micro-batches.
/// `G` must be divisible by `R·A` (`validate` says what to change).
public final class GlobalBatchSampler: @unchecked Sendable {
    public let datasetSize: Int
    public let globalBatchSize: Int
    public let worldSize: Int
    public let accumulationSteps: Int
    public let seed: UInt64
    public let shuffle: Bool

    private let lock = NSLock()
    private var cachedEpoch: Int?
    private var cachedPermutation: [Int] = []

    /// - Throws: `DatasetError.invalidConfiguration` (see `validate`).
    public init(datasetSize: Int, globalBatchSize: Int, worldSize: Int = 1, accumulationSteps: Int = 1,
                seed: UInt64, shuffle: Bool = true) throws {
        try Self.validate(datasetSize: datasetSize, globalBatchSize: globalBatchSize, worldSize: worldSize,
                          accumulationSteps: accumulationSteps)
        self.datasetSize = datasetSize
        self.globalBatchSize = globalBatchSize
        self.worldSize = worldSize
        self.accumulationSteps = accumulationSteps
        self.seed = seed
        self.shuffle = shuffle
    }

    /// Checks the batch layout, saying which setting to change.
    public static func validate(datasetSize: Int, globalBatchSize: Int, worldSize: Int, accumulationSteps: Int) throws {
        func fail(_ field: String, _ message: String) -> DatasetError {
            DatasetError(.invalidConfiguration, file: "batch layout", field: field, message)
        }
        guard worldSize >= 1 else { throw fail("worldSize", "the world size is \(worldSize); it must be at least 1") }
        guard accumulationSteps >= 1 else {
            throw fail("gradientAccumulationSteps", "gradientAccumulationSteps is \(accumulationSteps); it must be at least 1")
        }
        guard globalBatchSize >= 1 else {
            throw fail("globalBatchSize", "globalBatchSize is \(globalBatchSize); it must be at least 1")
        }
        let parts = worldSize * accumulationSteps
        guard globalBatchSize % parts == 0 else {
            let lower = globalBatchSize / parts * parts, upper = lower + parts
            var options = ["set globalBatchSize to a multiple of \(parts) (e.g. \(lower > 0 ? "\(lower) or " : "")\(upper))"]
            let divisors = (1...accumulationSteps * 4).filter { globalBatchSize % (worldSize * $0) == 0 }
            if let a = divisors.first(where: { $0 >= accumulationSteps }) ?? divisors.last {
                options.append("set gradientAccumulationSteps to \(a)")
            }
            options.append("run on a number of ranks that divides \(globalBatchSize / accumulationSteps)")
            throw fail("globalBatchSize",
                       "globalBatchSize \(globalBatchSize) is not divisible by world size \(worldSize) × gradientAccumulationSteps \(accumulationSteps) = \(parts); " + options.joined(separator: ", or "))
        }
        guard datasetSize >= globalBatchSize else {
            throw fail("globalBatchSize",
                       "the dataset has \(datasetSize) samples, fewer than one global batch of \(globalBatchSize); lower globalBatchSize or add data")
        }
    }

    /// Samples per micro-batch (`G / (R·A)`).
    public var microBatchSize: Int { globalBatchSize / (worldSize * accumulationSteps) }
    /// Samples per rank per optimizer step (`G / R`).
    public var perRankBatchSize: Int { globalBatchSize / worldSize }
    /// Complete optimizer steps per epoch (`datasetSize / G`).
    public var stepsPerEpoch: Int { datasetSize / globalBatchSize }
    /// Samples left out of each epoch (`datasetSize mod G`).
    public var droppedPerEpoch: Int { datasetSize % globalBatchSize }

    /// The epoch's order of dataset indices.
    public func permutation(epoch: Int) -> [Int] {
        lock.lock()
        defer { lock.unlock() }
        if cachedEpoch == epoch { return cachedPermutation }
        let p: [Int]
        if shuffle {
            var rng = SplitMix64(seed: Self.epochSeed(seed: seed, epoch: epoch))
            p = rng.permutation(count: datasetSize)
        } else {
            p = Array(0..<datasetSize)
        }
        cachedEpoch = epoch
        cachedPermutation = p
        return p
    }

    /// The generator seed of an epoch: `seed ^ (0x9E3779B97F4A7C15 · (epoch + 1))` (mod 2^64).
    public static func epochSeed(seed: UInt64, epoch: Int) -> UInt64 {
        seed ^ (SplitMix64.golden &* UInt64(truncatingIfNeeded: epoch + 1))
    }

    /// The `G` dataset indices of optimizer step `step` (0-based within `epoch`).
    public func stepIndices(epoch: Int, step: Int) -> [Int] {
        precondition((0..<stepsPerEpoch).contains(step), "step \(step) outside 0..<\(stepsPerEpoch)")
        let p = permutation(epoch: epoch)
        return Array(p[(step * globalBatchSize)..<((step + 1) * globalBatchSize)])
    }

    /// The `G/R` dataset indices rank `rank` processes in that step (its `A` micro-batches in order).
    public func rankIndices(epoch: Int, step: Int, rank: Int) -> [Int] {
        (0..<accumulationSteps).flatMap { microBatch(epoch: epoch, step: step, rank: rank, microStep: $0) }
    }

    /// The dataset indices of rank `rank`'s micro-step `microStep` in that step.
    public func microBatch(epoch: Int, step: Int, rank: Int, microStep: Int) -> [Int] {
        precondition((0..<worldSize).contains(rank), "rank \(rank) outside 0..<\(worldSize)")
        precondition((0..<accumulationSteps).contains(microStep), "micro-step \(microStep) outside 0..<\(accumulationSteps)")
        precondition((0..<stepsPerEpoch).contains(step), "step \(step) outside 0..<\(stepsPerEpoch)")
        let p = permutation(epoch: epoch)
        let b = microBatchSize
        let start = step * globalBatchSize + (rank * accumulationSteps + microStep) * b
        return Array(p[start..<(start + b)])
    }

    // MARK: - Cursor

    /// A cursor at the start of training for this sampler.
    public func startCursor() -> DataCursor {
        DataCursor(seed: seed, datasetSize: datasetSize, globalBatchSize: globalBatchSize)
    }

    /// Checks that a saved cursor belongs to this data (same seed, dataset size and global batch size).
    public func validate(_ cursor: DataCursor) throws {
        func fail(_ field: String, _ message: String) -> DatasetError {
            DatasetError(.invalidConfiguration, file: "data cursor", field: field, message)
        }
        guard cursor.seed == seed else {
            throw fail("seed", "the checkpoint's shuffle seed is \(cursor.seed) but the config says \(seed); resume with the original seed or start a new run")
        }
        guard cursor.datasetSize == datasetSize else {
            throw fail("datasetSize", "the checkpoint was made on \(cursor.datasetSize) training samples but the data now has \(datasetSize); resume with the same data files and options, or start a new run")
        }
        guard cursor.globalBatchSize == globalBatchSize else {
            throw fail("globalBatchSize", "the checkpoint used globalBatchSize \(cursor.globalBatchSize) but the config says \(globalBatchSize); the world size and gradientAccumulationSteps may change on resume, the global batch size may not")
        }
        guard cursor.samplesConsumedInEpoch >= 0, cursor.samplesConsumedInEpoch % globalBatchSize == 0,
              cursor.epoch >= 0, cursor.samplesConsumed >= cursor.samplesConsumedInEpoch else {
            throw fail("samplesConsumedInEpoch", "the cursor (epoch \(cursor.epoch), \(cursor.samplesConsumedInEpoch) samples into it) is inconsistent; the checkpoint is corrupt")
        }
    }

    /// The cursor moved to the next epoch if its epoch has no complete step left.
    public func normalized(_ cursor: DataCursor) -> DataCursor {
        var c = cursor
        if c.samplesConsumedInEpoch + globalBatchSize > datasetSize {
            c.epoch += 1
            c.samplesConsumedInEpoch = 0
        }
        return c
    }

    /// The (epoch, step) the cursor's next optimizer step runs.
    public func nextStep(_ cursor: DataCursor) -> (epoch: Int, step: Int) {
        let c = normalized(cursor)
        return (c.epoch, c.samplesConsumedInEpoch / globalBatchSize)
    }

    /// Every dataset index of the cursor's next optimizer step, in global order (the same on every rank).
    public func globalBatch(at cursor: DataCursor) -> [Int] {
        let (epoch, step) = nextStep(cursor)
        return stepIndices(epoch: epoch, step: step)
    }

    /// Rank `rank`'s micro-batches for the cursor's next optimizer step.
    public func microBatches(at cursor: DataCursor, rank: Int) -> [[Int]] {
        let (epoch, step) = nextStep(cursor)
        return (0..<accumulationSteps).map { microBatch(epoch: epoch, step: step, rank: rank, microStep: $0) }
    }

    /// The cursor after the next optimizer step.
    public func advanced(_ cursor: DataCursor) -> DataCursor {
        var c = normalized(cursor)
        c.samplesConsumedInEpoch += globalBatchSize
        c.samplesConsumed += globalBatchSize
        return normalized(c)
    }
}
