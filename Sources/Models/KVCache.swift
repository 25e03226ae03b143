// Incremental decoding with a key/value cache: each step feeds every sequence a run of new tokens
// (a whole prompt at prefill, one token while sampling) and returns the logits after its last one.
// Legend: S sequences, P cache capacity (positions), R new rows this step (Σ over sequences),
//         C width, F MLP features, QKV fused projection, A = NH·HS, KV = NKV·HS, V vocab.

import Tensors
import COpenBLAS

/// Cached keys and values of every block for S sequences, and each sequence's length so far.
public final class KVCache {
    public let sequences: Int
    public let capacity: Int
    /// Tokens already in the cache, per sequence.
    public internal(set) var lengths: [Int]
    let keys: [FloatBuffer]        // per block (S, P, KV), after rotary
    let values: [FloatBuffer]      // per block (S, P, KV)

    /// Allocates an empty cache for `sequences` sequences of at most `capacity` tokens.
    public init(config c: ModelConfig, sequences S: Int, capacity P: Int) {
        sequences = S
        capacity = P
        lengths = [Int](repeating: 0, count: S)
        let kv = c.numKVHeads * c.headSize
        keys = (0..<c.numLayers).map { _ in FloatBuffer(count: S * P * kv) }
        values = (0..<c.numLayers).map { _ in FloatBuffer(count: S * P * kv) }
    }
}

extension Transformer {
    /// Appends `newTokens[s]` (possibly empty) to each sequence's cache and returns, for every sequence
    /// that received tokens, the logits (V) after its last new token, keyed by sequence index.
    public func decodeStep(_ cache: KVCache, newTokens: [[Int32]]) -> [Int: [Float]] {
        let c = config, C = c.hiddenSize, F = c.intermediateSize, QKV = c.qkvChannels, A = c.attentionChannels
        let HS = c.headSize, KV = c.numKVHeads * HS, P = cache.capacity, V = c.vocabSize
        precondition(newTokens.count == cache.sequences)
        var rowStart: [Int] = [], positions: [Int32] = [], tokens: [Int32] = []
        for (s, run) in newTokens.enumerated() {
            precondition(cache.lengths[s] + run.count <= P, "KV cache of \(P) positions is full")
            rowStart.append(tokens.count)
            for (i, t) in run.enumerated() {
                precondition(t >= 0 && Int(t) < V, "token id \(t) outside the vocabulary")
                tokens.append(t)
                positions.append(Int32(cache.lengths[s] + i))
            }
        }
        let R = tokens.count
        guard R > 0 else { return [:] }
        let x = FloatBuffer(count: R * C), norm = FloatBuffer(count: R * C)       // (R, C)
        let qkv = FloatBuffer(count: R * QKV), att = FloatBuffer(count: R * A)   // (R, QKV), (R, A)
        let gateUp = FloatBuffer(count: R * 2 * F), hidden = FloatBuffer(count: R * F)
        let rstd = FloatBuffer(count: R)
        tokens.withUnsafeBufferPointer {
            Embedding.forward(out: x.pointer, tokens: $0.baseAddress!, table: w(layout.embedding), rows: R, channels: C)
        }
        let scale = 1 / Float(HS).squareRoot()
        for l in 0..<c.numLayers {
            let o = layout.blocks[l]
            RMSNorm.forward(out: norm.pointer, rstd: rstd.pointer, inp: x.pointer, weight: w(o.attentionNorm), rows: R, channels: C, eps: c.rmsNormEps)
            linear(qkv.pointer, norm.pointer, o.qkv, M: R, N: QKV, K: C)
            positions.withUnsafeBufferPointer {
                Rotary.apply(qkv.pointer, rows: R, rowStride: QKV, heads: c.numHeads + c.numKVHeads, sequenceLength: 1,
                             table: rotary, layout: c.ropeLayout, positions: $0.baseAddress!)
            }
            let kc = cache.keys[l].pointer, vc = cache.values[l].pointer
            for (s, run) in newTokens.enumerated() where !run.isEmpty {
                for i in 0..<run.count {
                    let r = rowStart[s] + i, p = cache.lengths[s] + i
                    (kc + (s * P + p) * KV).update(from: qkv.pointer + r * QKV + A, count: KV)
                    (vc + (s * P + p) * KV).update(from: qkv.pointer + r * QKV + A + KV, count: KV)
                }
            }
            // Attention per (sequence, head): n new queries against the cache's first `past + n` keys.
            let work = newTokens.enumerated().filter { !$0.element.isEmpty }.flatMap { s in (0..<c.numHeads).map { (s.offset, $0) } }
            BLAS.withThreads(1) {
                parallelFor(work.count) { item in
                    let (s, h) = work[item]
                    let n = newTokens[s].count, past = cache.lengths[s], L = past + n, g = h / (c.numHeads / c.numKVHeads)
                    let scores = FloatPtr.allocate(capacity: n * L)                                   // (n, L)
                    defer { scores.deallocate() }
                    let q = qkv.pointer + rowStart[s] * QKV + h * HS
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(L), Int32(HS), scale, q, Int32(QKV),
                                kc + s * P * KV + g * HS, Int32(KV), 0, scores, Int32(L))
                    for i in 0..<n {
                        let row = scores + i * L, keys = past + i + 1
                        let m = VectorMath.max(row, count: keys)
                        let inv = 1 / VectorMath.expShifted(row, count: keys, shift: m)
                        for j in 0..<keys { row[j] *= inv }
                        for j in keys..<L { row[j] = 0 }
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(HS), Int32(L), 1, scores, Int32(L),
                                vc + s * P * KV + g * HS, Int32(KV), 0, att.pointer + rowStart[s] * A + h * HS, Int32(A))
                }
            }
            linear(x.pointer, att.pointer, o.output, M: R, N: C, K: A, accumulate: true)
            RMSNorm.forward(out: norm.pointer, rstd: rstd.pointer, inp: x.pointer, weight: w(o.mlpNorm), rows: R, channels: C, eps: c.rmsNormEps)
            linear(gateUp.pointer, norm.pointer, o.gateUp, M: R, N: 2 * F, K: C)
            SwiGLU.forward(out: hidden.pointer, gateUp: gateUp.pointer, rows: R, features: F)
            linear(x.pointer, hidden.pointer, o.down, M: R, N: C, K: F, accumulate: true)
        }
        // Final norm and LM head at each sequence's last new row only.
        let active = newTokens.indices.filter { !newTokens[$0].isEmpty }
        let last = FloatBuffer(count: active.count * C), lastNorm = FloatBuffer(count: active.count * C)
        for (k, s) in active.enumerated() {
            (last.pointer + k * C).update(from: x.pointer + (rowStart[s] + newTokens[s].count - 1) * C, count: C)
        }
        RMSNorm.forward(out: lastNorm.pointer, rstd: rstd.pointer, inp: last.pointer, weight: w(layout.finalNorm),
                        rows: active.count, channels: C, eps: c.rmsNormEps)
        let logits = FloatBuffer(count: active.count * V)                                              // (S_active, V)
        linear(logits.pointer, lastNorm.pointer, layout.lmHead, M: active.count, N: V, K: C)
        for s in active { cache.lengths[s] += newTokens[s].count }
        var out: [Int: [Float]] = [:]
        for (k, s) in active.enumerated() { out[s] = Array(UnsafeBufferPointer(start: logits.pointer + k * V, count: V)) }
        return out
    }
}
