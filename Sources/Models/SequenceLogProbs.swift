// Masked sequence log-probabilities: the sum (or mean) of response-token log-probs per row.


/// How token log-probs of a response combine into one number.
public enum SequenceReduction: String, Codable, Sendable {
    /// Σ over response tokens (DPO, TRL's default).
    case sum
    /// Mean over response tokens (TRL's IPO).
    case mean
}

extension Transformer {
    /// Sequence log-probs (B) of each row's response tokens [responseStarts[b], lengths[b]); runs forward.
    public func sequenceLogProbs(_ batch: TokenBatch, responseStarts: [Int], reduction: SequenceReduction = .sum) -> [Double] {
        forward(batch)
        let targets = TokenTargets(responsesOf: batch, responseStarts: responseStarts)
        let logp = logProbs(targets)
        var sums = [Double](repeating: 0, count: batch.batchSize), counts = [Int](repeating: 0, count: batch.batchSize)
        for (n, b) in targets.sequence.enumerated() { sums[b] += Double(logp[n]); counts[b] += 1 }
        if reduction == .mean { for b in sums.indices where counts[b] > 0 { sums[b] /= Double(counts[b]) } }
        return sums
    }

    /// Backward of `sequenceLogProbs`: accumulates gradients given ∂L/∂(sequence log-prob) per row.
    public func backwardSequenceLogProbs(_ dSequence: [Double], reduction: SequenceReduction = .sum) {
        guard let targets = lastTargets else { preconditionFailure("backwardSequenceLogProbs without sequenceLogProbs") }
        var counts = [Int](repeating: 0, count: dSequence.count)
        for b in targets.sequence { counts[b] += 1 }
        let d = targets.sequence.map { b in Float(reduction == .mean ? dSequence[b] / Double(counts[b]) : dSequence[b]) }
        backward(dLogProbs: d)
    }

    /// Mean next-token cross-entropy over every real token of every row (the language-model loss);
    /// runs forward and, when `backward`, accumulates its gradients.
    @discardableResult
    public func languageModelLoss(_ batch: TokenBatch, responseStarts: [Int]? = nil, backward: Bool) -> Double {
        forward(batch)
        let targets = responseStarts.map { TokenTargets(responsesOf: batch, responseStarts: $0) } ?? TokenTargets(allOf: batch)
        let logp = logProbs(targets)
        let n = Double(targets.count)
        let loss = -logp.reduce(0.0) { $0 + Double($1) } / n
        if backward { self.backward(dLogProbs: [Float](repeating: Float(-1 / n), count: targets.count)) }
        return loss
    }
}
