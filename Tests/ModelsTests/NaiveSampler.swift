// The first sampler (one Double exp per token, a sort of the whole vocabulary for top-k and top-p), kept
// verbatim (only renamed) as the reference the fast `Sampler` must reproduce token for token.

import Foundation
import Tensors
import Models

enum NaiveSampler {
    /// Picks a token and returns it with its log-probability under the untempered, untruncated softmax.
    static func sample(_ logits: [Float], options o: SamplingOptions, rng: inout SplitMix64) -> (Int32, Float) {
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
