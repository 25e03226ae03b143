// The data position saved in checkpoints: global samples consumed, epoch, shuffle seed.

/// Where a run is in its data, independent of the world size.
///
/// Saved in checkpoints; `GlobalBatchSampler.validate(_:)` checks on resume that the seed,
/// dataset size and global batch size are unchanged (the world size and the number of
/// accumulation steps may change).
public struct DataCursor: Codable, Equatable, Sendable {
    /// The epoch of the next optimizer step (0-based).
    public var epoch: Int
    /// Samples of this epoch's permutation already consumed (a multiple of the global batch size).
    public var samplesConsumedInEpoch: Int
    /// Samples consumed since the start of training, over all epochs.
    public var samplesConsumed: Int
    /// The shuffle seed.
    public var seed: UInt64
    /// The dataset size the permutation was made for.
    public var datasetSize: Int
    /// The global batch size (samples per optimizer step).
    public var globalBatchSize: Int

    public init(epoch: Int = 0, samplesConsumedInEpoch: Int = 0, samplesConsumed: Int = 0, seed: UInt64,
                datasetSize: Int, globalBatchSize: Int) {
        self.epoch = epoch
        self.samplesConsumedInEpoch = samplesConsumedInEpoch
        self.samplesConsumed = samplesConsumed
        self.seed = seed
        self.datasetSize = datasetSize
        self.globalBatchSize = globalBatchSize
    }

    /// Optimizer steps taken since the start of training.
    public var globalStep: Int { globalBatchSize > 0 ? samplesConsumed / globalBatchSize : 0 }
    /// The step within the current epoch.
    public var stepInEpoch: Int { globalBatchSize > 0 ? samplesConsumedInEpoch / globalBatchSize : 0 }
}
