// Work cut into batches the same way for every number of ranks: batch c runs on rank c mod N, so each
// batch — and every number computed from it, to the last bit — is the same whatever N is. Used by
// sharded sampling, scoring, DPO's reference log-probs and evaluation.

/// Rank-independent batching of sharded work.
public enum RankBatches {
    /// This rank's batches of `0..<count` in order: [c·batchSize, (c+1)·batchSize) for every c ≡ rank (mod size).
    public static func ranges(count: Int, batchSize: Int, rank: Int, size: Int) -> [Range<Int>] {
        stride(from: 0, to: count, by: batchSize).enumerated()
            .filter { $0.offset % size == rank }
            .map { $0.element..<min($0.element + batchSize, count) }
    }

    /// This rank's batches of item indices, all items sorted longest first (little padding) and then cut
    /// as `ranges` cuts them.
    public static func longestFirst(lengths: [Int], batchSize: Int, rank: Int, size: Int) -> [[Int]] {
        let order = lengths.indices.sorted { (lengths[$0], $1) > (lengths[$1], $0) }
        return ranges(count: order.count, batchSize: batchSize, rank: rank, size: size).map { Array(order[$0]) }
    }
}
