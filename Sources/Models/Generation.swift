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
    public func generate(prompts: [[Int32]], options: SamplingOptions, stopTokens: Set<Int32>,
                         sampleIDs: [UInt64]? = nil) -> [GeneratedSequence] {
        guard !prompts.isEmpty else { return [] }
        precondition(prompts.allSatisfy { !$0.isEmpty }, "every prompt needs at least one token")
        let capacity = min(config.maxPositions, prompts.map(\.count).max()! + options.maxNewTokens)
        let cache = KVCache(config: config, sequences: prompts.count, capacity: capacity)
        var rngs = prompts.indices.map { i in SplitMix64(seed: options.seed &+ 0x9E37_79B9_7F4A_7C15 &* ((sampleIDs?[i] ?? UInt64(i)) &+ 1)) }
        var out = prompts.map { _ in GeneratedSequence(tokens: [], logProbs: [], stopped: false) }
        var next: [[Int32]] = prompts.map { Array($0.suffix(capacity)) }
        for _ in 0..<options.maxNewTokens {
            let logits = decodeStep(cache, newTokens: next)
            if logits.isEmpty { break }
            next = Array(repeating: [], count: prompts.count)
            for (s, row) in logits {
                let (token, logp) = Sampler.sample(row, options: options, rng: &rngs[s])
                out[s].tokens.append(token)
                out[s].logProbs.append(logp)
                if stopTokens.contains(token) { out[s].stopped = true; continue }
                if out[s].tokens.count < options.maxNewTokens && cache.lengths[s] < capacity { next[s] = [token] }
            }
        }
        return out
    }
}

/// Token selection from one row of logits.
public enum Sampler {
    /// Picks a token and returns it with its log-probability under the untempered, untruncated softmax.
    public static func sample(_ logits: [Float], options o: SamplingOptions, rng: inout SplitMix64) -> (Int32, Float) {
        let V = logits.count
        var m = -Float.infinity, arg = 0
        for v in 0..<V where logits[v] > m { m = logits[v]; arg = v }
        var z = 0.0
        for v in 0..<V { z += Foundation.exp(Double(logits[v] - m)) }
        let lse = Double(m) + Foundation.log(z)
        func logp(_ v: Int) -> Float { Float(Double(logits[v]) - lse) }
        if o.greedy || o.temperature <= 0 { return (Int32(arg), logp(arg)) }
        // Candidates sorted by logit when truncating; all tokens otherwise.
        var candidates = Array(0..<V)
        if o.topK > 0 || o.topP < 1 {
            candidates.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
            if o.topK > 0 { candidates = Array(candidates.prefix(o.topK)) }
        }
        let t = Double(o.temperature)
        var weights = candidates.map { Foundation.exp((Double(logits[$0]) - Double(m)) / t) }
        if o.topP < 1 {
            let total = weights.reduce(0, +)
            var acc = 0.0, keep = weights.count
            for (i, w) in weights.enumerated() {
                acc += w / total
                if acc >= Double(o.topP) { keep = i + 1; break }
            }
            candidates = Array(candidates.prefix(keep)); weights = Array(weights.prefix(keep))
        }
        let total = weights.reduce(0, +)
        var u = Double(rng.next() >> 11) / Double(1 << 53) * total
        for (i, w) in weights.enumerated() {
            u -= w
            if u < 0 { return (Int32(candidates[i]), logp(candidates[i])) }
        }
        return (Int32(candidates.last!), logp(candidates.last!))
    }
}
