// Sampling from a model: batched prompts of different lengths, KV-cache decoding, temperature,
// top-k, top-p, per-prompt seeds, stop tokens, and the log-prob of every sampled token.

import Foundation
import Tensors

/// How tokens are chosen at each step.
public struct SamplingOptions: Codable, Equatable, Sendable {
    /// Choose the most likely token (ignores temperature, top-k, top-p).
    public var greedy: Bool = false
    /// Softmax temperature (> 0).
    public var temperature: Float = 1
    /// Keep only the k most likely tokens (0: all).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
    public var topP: Float = 1
    /// New tokens per sequence at most.
    public var maxNewTokens: Int = 64
    /// Base seed; sequence i samples from its own generator seeded by (seed, its index).
    public var seed: UInt64 = 0
    public init(greedy: Bool = false, temperature: Float = 1, topK: Int = 0, topP: Float = 1, maxNewTokens: Int = 64, seed: UInt64 = 0) {
        self.greedy = greedy; self.temperature = temperature; self.topK = topK; self.topP = topP
        self.maxNewTokens = maxNewTokens; self.seed = seed
    }
}

/// One generated continuation.
public struct GeneratedSequence: Equatable, Sendable {
    /// New tokens (the stop token included when one ended the sequence).
    public var tokens: [Int32]
    /// log π(token | prefix) of each new token under the model's own distribution (temperature 1,
    /// no truncation): the reference log-probs MoCAN and PeCAN need.
    public var logProbs: [Float]
    /// Whether a stop token ended the sequence (false: the token budget did).
    public var stopped: Bool
    /// Σ logProbs.
    public var totalLogProb: Double { logProbs.reduce(0.0) { $0 + Double($1) } }
}

extension Transformer {
    /// Continues every prompt; `sampleIDs[i]` (default i) keys prompt i's generator, so a sample does
    /// not depend on which other prompts share the batch or which rank runs it.
    ///
    /// Identical prompts (K samples of one prompt) are prefilled once and their caches copied. One
    /// DecodeWorkspace and one Sampler per thread serve every step: the loop allocates nothing per token.
    public func generate(prompts: [[Int32]], options: SamplingOptions, stopTokens: Set<Int32>,
                         sampleIDs: [UInt64]? = nil) -> [GeneratedSequence] {
        guard !prompts.isEmpty else { return [] }
        precondition(prompts.allSatisfy { !$0.isEmpty }, "every prompt needs at least one token")
        let S = prompts.count, V = config.vocabSize, N = options.maxNewTokens
        var out = prompts.map { _ in GeneratedSequence(tokens: [], logProbs: [], stopped: false) }
        guard N > 0 else { return out }
        for s in 0..<S { out[s].tokens.reserveCapacity(N); out[s].logProbs.reserveCapacity(N) }
        let capacity = min(config.maxPositions, prompts.map(\.count).max()! + N)
        let inputs = prompts.map { $0.suffix(capacity) }
        // The first sequence with each distinct prompt is prefilled; the others copy its cache.
        var firstWith: [ArraySlice<Int32>: Int] = [:], leader = [Int](repeating: 0, count: S)
        for s in 0..<S {
            if firstWith[inputs[s]] == nil { firstWith[inputs[s]] = s }
            leader[s] = firstWith[inputs[s]]!
        }
        let prefillRows = inputs.indices.filter { leader[$0] == $0 }.reduce(0) { $0 + inputs[$1].count }
        let cache = KVCache(config: config, sequences: S, capacity: capacity)
        let ws = DecodeWorkspace(config: config, sequences: S, rows: max(S, prefillRows),
                                 longestRun: inputs.map(\.count).max()!, capacity: capacity)
        let samplers = (0..<min(S, ws.slots)).map { _ in Sampler(vocabSize: V) }
        let rngs = UnsafeMutablePointer<SplitMix64>.allocate(capacity: S)
        for s in 0..<S { (rngs + s).initialize(to: SplitMix64(seed: options.seed &+ 0x9E37_79B9_7F4A_7C15 &* ((sampleIDs?[s] ?? UInt64(s)) &+ 1))) }
        let chosen = UnsafeMutablePointer<Int32>.allocate(capacity: S), chosenLogp = UnsafeMutablePointer<Float>.allocate(capacity: S)
        let logitsRow = UnsafeMutablePointer<Int>.allocate(capacity: S)    // row of ws.logits each sampling sequence reads
        let sampling = UnsafeMutablePointer<Int>.allocate(capacity: S)     // sequences that sample this step
        defer { rngs.deallocate(); chosen.deallocate(); chosenLogp.deallocate(); logitsRow.deallocate(); sampling.deallocate() }

        // Prefill the leaders; every sequence samples its first token from its leader's logits.
        ws.begin()
        for s in 0..<S where leader[s] == s { ws.append(sequence: s, tokens: inputs[s], start: 0) }
        decodeStep(cache, workspace: ws)
        for s in 0..<S where leader[s] != s { cache.copySequence(leader[s], to: s) }
        for (k, s) in ws.active.enumerated() { logitsRow[s] = k }
        for s in 0..<S { logitsRow[s] = logitsRow[leader[s]]; sampling[s] = s }
        var count = S
        while true {
            // Sample every sequence of this step, sequences dealt round-robin to the samplers.
            let slots = samplers.count, n = count
            parallelFor(min(slots, n)) { slot in
                var i = slot
                while i < n {
                    let s = sampling[i]
                    (chosen[s], chosenLogp[s]) = samplers[slot].sample(ws.logits.pointer + logitsRow[s] * V, options: options, rng: &rngs[s])
                    i += slots
                }
            }
            ws.begin()
            for i in 0..<n {
                let s = sampling[i], token = chosen[s]
                out[s].tokens.append(token)
                out[s].logProbs.append(chosenLogp[s])
                if stopTokens.contains(token) { out[s].stopped = true; continue }
                if out[s].tokens.count >= N || cache.lengths[s] >= capacity { continue }
                ws.append(sequence: s, tokens: CollectionOfOne(token), start: cache.lengths[s])
            }
            if ws.rows == 0 { break }
            decodeStep(cache, workspace: ws)
            count = ws.active.count
            for (k, s) in ws.active.enumerated() { sampling[k] = s; logitsRow[s] = k }
        }
        return out
    }
}
