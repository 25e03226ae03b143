// Incremental decoding with a key/value cache: each step feeds every sequence a run of new tokens
// (a whole prompt at prefill, one token while sampling) and returns the logits after its last one.
// The step runs in a DecodeWorkspace (buffers sized once); a step of one row takes the matrix-vector
// kernel for every projection, larger steps Matmul.
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
    let kvChannels: Int

    /// Allocates an empty cache for `sequences` sequences of at most `capacity` tokens.
    public init(config c: ModelConfig, sequences S: Int, capacity P: Int) {
        sequences = S
        capacity = P
        lengths = [Int](repeating: 0, count: S)
        kvChannels = c.numKVHeads * c.headSize
        keys = (0..<c.numLayers).map { _ in FloatBuffer(count: S * P * c.numKVHeads * c.headSize) }
        values = (0..<c.numLayers).map { _ in FloatBuffer(count: S * P * c.numKVHeads * c.headSize) }
    }

    /// Makes sequence `target` a copy of sequence `source` (its keys, values and length): a prompt
    /// shared by several samples is prefilled once.
    public func copySequence(_ source: Int, to target: Int) {
        let n = lengths[source] * kvChannels, P = capacity
        for l in keys.indices {
            (keys[l].pointer + target * P * kvChannels).update(from: keys[l].pointer + source * P * kvChannels, count: n)
            (values[l].pointer + target * P * kvChannels).update(from: values[l].pointer + source * P * kvChannels, count: n)
        }
        lengths[target] = lengths[source]
    }
}

extension Transformer {
    /// Appends `newTokens[s]` (possibly empty) to each sequence's cache and returns, for every sequence
    /// that received tokens, the logits (V) after its last new token, keyed by sequence index.
    /// Allocates a workspace for this one step; `generate` reuses one across steps instead.
    public func decodeStep(_ cache: KVCache, newTokens: [[Int32]]) -> [Int: [Float]] {
        precondition(newTokens.count == cache.sequences)
        let R = newTokens.reduce(0) { $0 + $1.count }
        guard R > 0 else { return [:] }
        let ws = DecodeWorkspace(config: config, sequences: cache.sequences, rows: R,
                                 longestRun: newTokens.map(\.count).max()!, capacity: cache.capacity)
        ws.begin()
        for (s, run) in newTokens.enumerated() where !run.isEmpty { ws.append(sequence: s, tokens: run, start: cache.lengths[s]) }
        decodeStep(cache, workspace: ws)
        let V = config.vocabSize
        var out: [Int: [Float]] = [:]
        for (k, s) in ws.active.enumerated() { out[s] = Array(UnsafeBufferPointer(start: ws.logits.pointer + k * V, count: V)) }
        return out
    }

    /// Runs the step described in `ws` (see DecodeWorkspace): appends each active sequence's new tokens
    /// to the cache and leaves the logits after its last one in `ws.logits`. Allocates nothing without
    /// LoRA adapters (with them, each adapter allocates its (R, r) intermediate).
    public func decodeStep(_ cache: KVCache, workspace ws: DecodeWorkspace) {
        let c = config, C = c.hiddenSize, F = c.intermediateSize, QKV = c.qkvChannels, A = c.attentionChannels
        let HS = c.headSize, KV = c.numKVHeads * HS, P = cache.capacity, V = c.vocabSize, NH = c.numHeads
        let R = ws.rows, S = ws.active.count
        guard R > 0 else { return }
        precondition(ws.sequences == cache.sequences && ws.capacity == P, "the workspace was sized for another cache")
        for s in ws.active {
            precondition(cache.lengths[s] + ws.runs[s] <= P, "KV cache of \(P) positions is full")
        }
        for t in ws.tokens { precondition(t >= 0 && Int(t) < V, "token id \(t) outside the vocabulary") }
        let x = ws.x.pointer, norm = ws.norm.pointer, qkv = ws.qkv.pointer, att = ws.attention.pointer
        // LoRA adapters (when attached and enabled) add to each projection as in `forward`, without dropout.
        let lora = adapters
        ws.tokens.withUnsafeBufferPointer {
            Embedding.forward(out: x, tokens: $0.baseAddress!, table: w(layout.embedding), rows: R, channels: C)
        }
        let scale = 1 / Float(HS).squareRoot()
        for l in 0..<c.numLayers {
            let o = layout.blocks[l]
            RMSNorm.forward(out: norm, rstd: ws.rstd.pointer, inp: x, weight: w(o.attentionNorm), rows: R, channels: C, eps: c.rmsNormEps)
            project(qkv, norm, o.qkv, rows: R, N: QKV, K: C)
            lora?.forward(layer: l, site: .qkv, input: norm, output: qkv, rows: R, stride: QKV, time: 1, save: false, dropoutSeeds: nil)
            ws.positions.withUnsafeBufferPointer {
                Rotary.apply(qkv, rows: R, rowStride: QKV, heads: NH + c.numKVHeads, sequenceLength: 1,
                             table: rotary, layout: c.ropeLayout, positions: $0.baseAddress!)
            }
            let kc = cache.keys[l].pointer, vc = cache.values[l].pointer
            for s in ws.active {
                for i in 0..<ws.runs[s] {
                    let r = ws.rowStart[s] + i, p = cache.lengths[s] + i
                    (kc + (s * P + p) * KV).update(from: qkv + r * QKV + A, count: KV)
                    (vc + (s * P + p) * KV).update(from: qkv + r * QKV + A + KV, count: KV)
                }
            }
            BLAS.withThreads(1) { attendAll(cache, ws, layer: l, scale: scale) }
            project(x, att, o.output, rows: R, N: C, K: A, accumulate: true)
            lora?.forward(layer: l, site: .output, input: att, output: x, rows: R, stride: C, time: 1, save: false, dropoutSeeds: nil)
            RMSNorm.forward(out: norm, rstd: ws.rstd.pointer, inp: x, weight: w(o.mlpNorm), rows: R, channels: C, eps: c.rmsNormEps)
            project(ws.gateUp.pointer, norm, o.gateUp, rows: R, N: 2 * F, K: C)
            lora?.forward(layer: l, site: .gateUp, input: norm, output: ws.gateUp.pointer, rows: R, stride: 2 * F, time: 1,
                          save: false, dropoutSeeds: nil)
            SwiGLU.forward(out: ws.hidden.pointer, gateUp: ws.gateUp.pointer, rows: R, features: F)
            project(x, ws.hidden.pointer, o.down, rows: R, N: C, K: F, accumulate: true)
            lora?.forward(layer: l, site: .down, input: ws.hidden.pointer, output: x, rows: R, stride: C, time: 1, save: false, dropoutSeeds: nil)
        }
        // Final norm and LM head at each sequence's last new row only.
        for (k, s) in ws.active.enumerated() {
            (ws.last.pointer + k * C).update(from: x + (ws.rowStart[s] + ws.runs[s] - 1) * C, count: C)
        }
        RMSNorm.forward(out: ws.lastNorm.pointer, rstd: ws.rstd.pointer, inp: ws.last.pointer, weight: w(layout.finalNorm),
                        rows: S, channels: C, eps: c.rmsNormEps)
        project(ws.logits.pointer, ws.lastNorm.pointer, layout.lmHead, rows: S, N: V, K: C)
        for s in ws.active { cache.lengths[s] += ws.runs[s] }
    }

    /// Attention of every active (sequence, head) of layer `layer`. A step of one token per sequence gives
    /// each item its own scores row (L ≤ P floats), so `parallelFor` balances the items freely; a step with
    /// longer runs (prefill) deals the items round-robin to one scratch slot per thread (run · P floats).
    func attendAll(_ cache: KVCache, _ ws: DecodeWorkspace, layer l: Int, scale: Float) {
        let c = config, HS = c.headSize, KV = c.numKVHeads * HS, QKV = c.qkvChannels, A = c.attentionChannels
        let NH = c.numHeads, P = cache.capacity, items = ws.active.count * NH
        let kc = cache.keys[l].pointer, vc = cache.values[l].pointer
        let att = ws.attention.pointer, qkv = ws.qkv.pointer
        @inline(__always) func attend(_ item: Int, _ scores: FloatPtr) {
            let s = ws.active[item / NH], h = item % NH
            attendCached(out: att + ws.rowStart[s] * A + h * HS, qkv: qkv + ws.rowStart[s] * QKV + h * HS,
                         keys: kc + s * P * KV, values: vc + s * P * KV, run: ws.runs[s],
                         past: cache.lengths[s], head: h, scale: scale, scores: scores)
        }
        if ws.rows == ws.active.count {
            parallelFor(items) { item in attend(item, ws.scores.pointer + item * P) }
        } else {
            let slots = ws.slots
            parallelFor(slots) { slot in
                var item = slot
                while item < items {
                    attend(item, ws.scores.pointer + slot * ws.longestRun * P)
                    item += slots
                }
            }
        }
    }

    /// One projection of a decoding step: out (R, N) (+)= inp (R, K) · Wᵀ with W (N, K) at slab offset
    /// `weight`: bf16 inside `withBF16Weights`, else the matrix-vector kernel when R = 1 and Matmul otherwise.
    @inline(__always)
    func project(_ out: FloatPtr, _ inp: ConstFloatPtr, _ weight: Int, rows R: Int, N: Int, K: Int, accumulate: Bool = false) {
        if let bf16Weights {
            bf16Weights.forward(out, inp, w(weight), M: R, N: N, K: K, accumulate: accumulate)
        } else if R == 1 {
            MatVec.forward(out, w(weight), inp, N: N, K: K, accumulate: accumulate)
        } else {
            Matmul.forward(out, inp, w(weight), M: R, N: N, K: K, accumulate: accumulate)
        }
    }

    /// Attention of head h for `run` new query rows of one sequence against its cache's first past + run
    /// positions (causal within the run). One row: DecodeAttention; several: two sgemm calls on the
    /// `scores` scratch (run · (past + run) floats).
    @inline(__always)
    func attendCached(out: FloatPtr, qkv: ConstFloatPtr, keys: ConstFloatPtr, values: ConstFloatPtr, run n: Int, past: Int,
                      head h: Int, scale: Float, scores: FloatPtr) {
        let c = config, HS = c.headSize, KV = c.numKVHeads * HS, QKV = c.qkvChannels, A = c.attentionChannels
        let g = h / (c.numHeads / c.numKVHeads), L = past + n
        if n == 1 {
            DecodeAttention.forward(out: out, q: qkv, keys: keys + g * HS, values: values + g * HS, length: L, headSize: HS,
                                    rowStride: KV, scale: scale, scores: scores)
            return
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(L), Int32(HS), scale, qkv, Int32(QKV),
                    keys + g * HS, Int32(KV), 0, scores, Int32(L))
        for i in 0..<n {
            let row = scores + i * L, visible = past + i + 1
            let m = VectorMath.max(row, count: visible)
            let inv = 1 / VectorMath.expShifted(row, count: visible, shift: m)
            for j in 0..<visible { row[j] *= inv }
            for j in visible..<L { row[j] = 0 }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(HS), Int32(L), 1, scores, Int32(L),
                    values + g * HS, Int32(KV), 0, out, Int32(A))
    }
}
