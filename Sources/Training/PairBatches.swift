// Turning tokenized pairs into model batches and per-pair sequence log-probs or scores.

import Models
import Datasets

/// The sequences of m pairs as one right-padded batch: rows 0..<m chosen, m..<2m rejected.
public struct PairBatch {
    public let batch: TokenBatch
    public let responseStarts: [Int]
    public let pairs: Int

    public init(_ pairs: [TokenizedPair], padToken: Int32 = 0) {
        let seqs = pairs.map { $0.chosenSequence } + pairs.map { $0.rejectedSequence }
        batch = TokenBatch(sequences: seqs.map { $0.map(Int32.init) }, padToken: padToken)
        responseStarts = pairs.map(\.responseStart) + pairs.map(\.responseStart)
        self.pairs = pairs.count
    }

    /// Tokens in the batch (real, not padding).
    public var tokens: Int { batch.realTokens }
}

extension Transformer {
    /// Sequence log-probs of chosen and rejected responses of each pair (runs forward).
    public func pairLogProbs(_ b: PairBatch, reduction: SequenceReduction) -> (chosen: [Double], rejected: [Double]) {
        let lp = sequenceLogProbs(b.batch, responseStarts: b.responseStarts, reduction: reduction)
        return (Array(lp[0..<b.pairs]), Array(lp[b.pairs...]))
    }

    /// Scores of chosen and rejected responses of each pair (score head; runs forward).
    public func pairScores(_ b: PairBatch) -> (chosen: [Double], rejected: [Double]) {
        forward(b.batch)
        let s = scores().map(Double.init)
        return (Array(s[0..<b.pairs]), Array(s[b.pairs...]))
    }
}
