// The buffers of incremental decoding, sized once for the largest step of a `generate` call (the prefill)
// and reused by every later step: no decoding step allocates. A step is described in the workspace too:
// `begin()`, then `append(sequence:tokens:)` for every sequence that gets new tokens, then
// `Transformer.decodeStep(_:workspace:)`, which leaves the logits of each such sequence's last new token
// in `logits`, row k for sequence `active[k]`.
// Legend: R rows (new tokens in a step, all sequences), S sequences, P cache capacity, n longest run of
//         new tokens of one sequence, C width, F MLP features, QKV fused projection, A = NH·HS, V vocab.

import Tensors

/// Scratch space and the description of one decoding step.
public final class DecodeWorkspace {
    /// Largest number of new tokens in one step (over all sequences).
    public let rowCapacity: Int
    /// Sequences of the cache this workspace serves.
    public let sequences: Int
    /// Longest run of new tokens of one sequence in one step.
    public let longestRun: Int
    /// Positions of the cache (P).
    public let capacity: Int
    /// Scratch slots for the attention of prefill steps (and samplers in `generate`): four per thread, so
    /// that `parallelFor` still balances them when a thread is descheduled on a busy machine.
    public let slots: Int

    let x: FloatBuffer             // (R, C) residual stream
    let norm: FloatBuffer          // (R, C)
    let qkv: FloatBuffer           // (R, QKV) after rotary
    let attention: FloatBuffer     // (R, A)
    let gateUp: FloatBuffer        // (R, 2F)
    let hidden: FloatBuffer        // (R, F)
    let rstd: FloatBuffer          // (R)
    let last: FloatBuffer          // (S, C) residual at each active sequence's last new token
    let lastNorm: FloatBuffer      // (S, C)
    /// Logits after each active sequence's last new token, row k for `active[k]`.
    public let logits: FloatBuffer // (S, V)
    let scores: FloatBuffer        // (max(slots · n, S · NH), P) attention scores of (sequence, head) items

    /// The step: new tokens of all sequences in sequence order (R), their positions (R), and per sequence
    /// its run length and first row.
    public private(set) var tokens: [Int32]
    private(set) var positions: [Int32]
    public private(set) var runs: [Int]
    private(set) var rowStart: [Int]
    /// Sequences with new tokens this step, in increasing order (row k of `logits` belongs to active[k]).
    public private(set) var active: [Int]

    /// Buffers for steps of at most `rows` new tokens in all, at most `longestRun` per sequence, over a
    /// cache of `sequences` sequences and `capacity` positions.
    public init(config c: ModelConfig, sequences S: Int, rows R: Int, longestRun n: Int, capacity P: Int) {
        precondition(S >= 1 && R >= 1 && n >= 1 && P >= 1)
        rowCapacity = R
        sequences = S
        longestRun = n
        capacity = P
        slots = max(1, 4 * ThreadPool.threads)
        let C = c.hiddenSize, F = c.intermediateSize
        x = FloatBuffer(count: R * C)
        norm = FloatBuffer(count: R * C)
        qkv = FloatBuffer(count: R * c.qkvChannels)
        attention = FloatBuffer(count: R * c.attentionChannels)
        gateUp = FloatBuffer(count: R * 2 * F)
        hidden = FloatBuffer(count: R * F)
        rstd = FloatBuffer(count: R)
        last = FloatBuffer(count: S * C)
        lastNorm = FloatBuffer(count: S * C)
        logits = FloatBuffer(count: S * c.vocabSize)
        scores = FloatBuffer(count: max(slots * n, S * c.numHeads) * P)
        tokens = []
        tokens.reserveCapacity(R)
        positions = []
        positions.reserveCapacity(R)
        runs = [Int](repeating: 0, count: S)
        rowStart = [Int](repeating: 0, count: S)
        active = []
        active.reserveCapacity(S)
    }

    /// Starts describing a step: no sequence has new tokens.
    public func begin() {
        tokens.removeAll(keepingCapacity: true)
        positions.removeAll(keepingCapacity: true)
        active.removeAll(keepingCapacity: true)
        for s in 0..<sequences { runs[s] = 0 }
    }

    /// Appends new tokens of sequence `s`, which continue its cache at position `start`. Sequences must
    /// be appended in increasing order, each at most once per step.
    public func append<T: Collection>(sequence s: Int, tokens run: T, start: Int) where T.Element == Int32 {
        precondition(active.last.map { $0 < s } ?? true, "sequences must be appended once each, in increasing order")
        precondition(!run.isEmpty && run.count <= longestRun && tokens.count + run.count <= rowCapacity,
                     "a step of \(tokens.count + run.count) rows (\(run.count) for sequence \(s)) exceeds the workspace (\(rowCapacity) rows, \(longestRun) per sequence)")
        rowStart[s] = tokens.count
        runs[s] = run.count
        active.append(s)
        var p = Int32(start)
        for t in run {
            tokens.append(t)
            positions.append(p)
            p += 1
        }
    }

    /// Rows of the step.
    public var rows: Int { tokens.count }
}
