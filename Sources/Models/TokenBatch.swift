// A right-padded batch of token sequences.


/// B sequences of token ids padded on the right to a common length T.
public struct TokenBatch: Sendable {
    /// B
    public let batchSize: Int
    /// T
    public let length: Int
    /// (B, T) token ids; positions past a sequence's length hold the pad token.
    public let tokens: [Int32]
    /// (B) real tokens in each sequence (at least 1).
    public let lengths: [Int]

    /// Pads `sequences` to `length` (default: the longest) with `padToken`.
    public init(sequences: [[Int32]], length: Int? = nil, padToken: Int32 = 0) {
        let T = length ?? sequences.map(\.count).max() ?? 0
        precondition(sequences.allSatisfy { !$0.isEmpty && $0.count <= T }, "TokenBatch: empty sequence or longer than \(T)")
        batchSize = sequences.count
        self.length = T
        var tokens = [Int32](repeating: padToken, count: sequences.count * T)
        for (b, s) in sequences.enumerated() { for (t, id) in s.enumerated() { tokens[b * T + t] = id } }
        self.tokens = tokens
        lengths = sequences.map(\.count)
    }

    /// Wraps an already padded (B, T) token array.
    public init(tokens: [Int32], lengths: [Int], length T: Int) {
        precondition(tokens.count == lengths.count * T && lengths.allSatisfy { $0 >= 1 && $0 <= T })
        batchSize = lengths.count
        length = T
        self.tokens = tokens
        self.lengths = lengths
    }

    /// Real (non-padding) tokens in the batch.
    public var realTokens: Int { lengths.reduce(0, +) }
}

/// Positions whose next-token log-probability a loss needs: the logits at `positions[n]` (flat b·T + t)
/// score `targets[n]` (the token at t + 1); `sequence[n]` is the row b.
public struct TokenTargets: Sendable {
    public var positions: [Int] = []
    public var targets: [Int32] = []
    public var sequence: [Int] = []
    public init() {}

    /// Response tokens of each row: tokens t in [responseStart[b], length[b]) scored from position t − 1.
    public init(responsesOf batch: TokenBatch, responseStarts: [Int]) {
        precondition(responseStarts.count == batch.batchSize)
        let T = batch.length
        for b in 0..<batch.batchSize {
            precondition(responseStarts[b] >= 1, "a response needs at least one prompt token before it")
            for t in responseStarts[b]..<batch.lengths[b] {
                positions.append(b * T + t - 1)
                targets.append(batch.tokens[b * T + t])
                sequence.append(b)
            }
        }
    }

    /// Every next-token target of every row (language-model loss over whole sequences).
    public init(allOf batch: TokenBatch) {
        self.init(responsesOf: batch, responseStarts: Array(repeating: 1, count: batch.batchSize))
    }

    /// N
    public var count: Int { positions.count }
}
