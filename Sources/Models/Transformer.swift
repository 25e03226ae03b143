// The Llama-family transformer: forward and backward over a right-padded batch.
// Legend: B batch, T time, R = B·T rows, C width, F MLP features, V vocab,
//         QKV = (NH + 2·NKV)·HS fused projection, A = NH·HS attention channels, N selected positions.
//
// block(x):  m = x + Wo · attention(rotary(Wqkv · rmsnorm(x)))
//            y = m + Wdown · swiglu(Wgate|up · rmsnorm(m))
// head:      logits at N selected positions = rmsnorm(x_L)[positions] · Eᵀ (E = lm_head, or the embedding when tied)

import Tensors

/// A causal LM whose parameters, gradients live in one slab each (see ParameterLayout).
public final class Transformer {
    public let config: ModelConfig
    public let layout: ParameterLayout
    /// All parameters.
    public let parameters: FloatBuffer
    /// All gradients (same layout); nil for an inference-only model and for a frozen base under adapters.
    public internal(set) var gradients: FloatBuffer?
    /// Whether forward passes keep the activations backward needs.
    public let training: Bool
    /// LoRA adapters, when attached: they (and the score head) are then the trainable parameters.
    public internal(set) var adapters: LoRAAdapters?
    /// One seed per batch row for the adapters' dropout masks during training (nil: no dropout, e.g. evaluation).
    public var adapterDropoutSeeds: [UInt64]?
    /// The base weights' identity, taken when adapters were attached.
    var baseIdentityCache: String?
    let rotary: RotaryTable
    var activations: Activations?
    var head: HeadBuffers?
    /// The targets of the last `logProbs` call, kept for its backward.
    var lastTargets: TokenTargets?
    /// bf16 copies of the weights while `withBF16Weights` runs (forward products in bf16), else nil.
    var bf16Weights: BF16Weights?
    /// The targets of the last `values` call, kept for its backward (ValueHead.swift).
    var lastValueTargets: TokenTargets?
    /// Per-example work of the following backward passes (DP-SGD; see PerExampleBackward.swift); nil: batch gradients.
    public var perExample: PerExampleBackward?
    /// What the last `.norms` backward left for `clippedBackward`.
    var normPass: NormPassState?

    /// Allocates a zero model; `trainable` also allocates gradients and per-block activations.
    public init(config: ModelConfig, trainable: Bool = true) throws {
        try config.validate()
        self.config = config
        layout = ParameterLayout(config: config)
        parameters = FloatBuffer(count: layout.count)
        gradients = trainable ? FloatBuffer(count: layout.count) : nil
        training = trainable
        rotary = RotaryTable(positions: config.maxPositions, headSize: config.headSize, base: config.ropeTheta)
    }

    /// Fills the parameters as Hugging Face initialises Llama: normal(0, std) matrices, unit norms.
    public func initializeRandomly(seed: UInt64, std: Float = 0.02) {
        var rng = SplitMix64(seed: seed)
        for view in layout.views {
            let p = parameters.pointer + view.offset
            if view.shape.count == 1 {
                p.update(repeating: 1, count: view.count)
            } else {
                for i in 0..<view.count { p[i] = std * rng.nextGaussian() }
            }
        }
    }

    /// Sets every trainable gradient to zero.
    public func zeroGradients() {
        gradients?.zero()
        adapters?.slab.gradients.zero()
    }

    /// Parameter pointer at a slab offset.
    @inline(__always) func w(_ offset: Int) -> FloatPtr { parameters.pointer + offset }
    /// Gradient pointer at a slab offset (nil when the base is frozen).
    @inline(__always) func g(_ offset: Int) -> FloatPtr? { gradients.map { $0.pointer + offset } }
    /// The score head's weights (C): in the adapters' slab when adapters are attached.
    var scoreWeight: FloatPtr? {
        if let a = adapters, let o = a.scoreOffset { return a.slab.values.pointer + o }
        return layout.score.map { w($0) }
    }
    /// The score head's gradient (C), nil when it is not trained.
    var scoreGradient: FloatPtr? {
        if let a = adapters, let o = a.scoreOffset { return a.slab.gradients.pointer + o }
        return layout.score.flatMap { g($0) }
    }

    // MARK: forward

    /// Runs the trunk and the final norm over `batch`; heads (`logProbs`, `scores`) read the result.
    public func forward(_ batch: TokenBatch) {
        let c = config, B = batch.batchSize, T = batch.length, R = B * T
        precondition(T <= c.maxPositions, "sequence length \(T) exceeds maxPositions \(c.maxPositions)")
        precondition(batch.tokens.allSatisfy { $0 >= 0 && Int($0) < c.vocabSize }, "token id outside the vocabulary")
        if let a = activations, a.fits(batch: B, time: T, heads: c.numHeads) {
            a.batch = B
            a.time = T
        } else {
            activations = nil   // free the old buffers before allocating larger ones
            activations = Activations(config: c, batch: B, time: T, training: training)
        }
        let a = activations!
        let lora = adapters, seeds = adapterDropoutSeeds
        lora?.reserve(rows: R)
        a.tokens = batch.tokens
        a.lengths = batch.lengths
        let C = c.hiddenSize, F = c.intermediateSize, QKV = c.qkvChannels, A = c.attentionChannels
        let shape = AttentionShape(batch: B, time: T, heads: c.numHeads, kvHeads: c.numKVHeads, headSize: c.headSize)
        a.tokens.withUnsafeBufferPointer { Embedding.forward(out: a.residual(0).pointer, tokens: $0.baseAddress!,
                                                              table: w(layout.embedding), rows: R, channels: C) }
        for l in 0..<c.numLayers {
            let o = layout.blocks[l], s = a.block(l)
            let x = a.residual(l).pointer, y = a.residual(l + 1).pointer
            RMSNorm.forward(out: s.attentionNorm.pointer, rstd: s.attentionRstd.pointer, inp: x, weight: w(o.attentionNorm),
                            rows: R, channels: C, eps: c.rmsNormEps)
            linear(s.qkv.pointer, s.attentionNorm.pointer, o.qkv, M: R, N: QKV, K: C)
            lora?.forward(layer: l, site: .qkv, input: s.attentionNorm.pointer, output: s.qkv.pointer, rows: R, stride: QKV, time: T,
                          save: training, dropoutSeeds: seeds)
            Rotary.apply(s.qkv.pointer, rows: R, rowStride: QKV, heads: c.numHeads + c.numKVHeads, sequenceLength: T,
                         table: rotary, layout: c.ropeLayout)
            Attention.forward(out: s.attention.pointer, att: s.probabilities.pointer, qkv: s.qkv.pointer,
                              lengths: a.lengths, shape: shape)
            // middle = x + Wo · attention
            s.middle.pointer.update(from: x, count: R * C)
            linear(s.middle.pointer, s.attention.pointer, o.output, M: R, N: C, K: A, accumulate: true)
            lora?.forward(layer: l, site: .output, input: s.attention.pointer, output: s.middle.pointer, rows: R, stride: C, time: T,
                          save: training, dropoutSeeds: seeds)
            RMSNorm.forward(out: s.mlpNorm.pointer, rstd: s.mlpRstd.pointer, inp: s.middle.pointer, weight: w(o.mlpNorm),
                            rows: R, channels: C, eps: c.rmsNormEps)
            linear(s.gateUp.pointer, s.mlpNorm.pointer, o.gateUp, M: R, N: 2 * F, K: C)
            lora?.forward(layer: l, site: .gateUp, input: s.mlpNorm.pointer, output: s.gateUp.pointer, rows: R, stride: 2 * F, time: T,
                          save: training, dropoutSeeds: seeds)
            SwiGLU.forward(out: s.hidden.pointer, gateUp: s.gateUp.pointer, rows: R, features: F)
            // y = middle + Wdown · hidden
            y.update(from: s.middle.pointer, count: R * C)
            linear(y, s.hidden.pointer, o.down, M: R, N: C, K: F, accumulate: true)
            lora?.forward(layer: l, site: .down, input: s.hidden.pointer, output: y, rows: R, stride: C, time: T,
                          save: training, dropoutSeeds: seeds)
        }
        RMSNorm.forward(out: a.finalNorm.pointer, rstd: a.finalRstd.pointer, inp: a.residual(c.numLayers).pointer,
                        weight: w(layout.finalNorm), rows: R, channels: C, eps: c.rmsNormEps)
    }

    /// Log-probabilities of `targets` (N) from LM-head logits computed only at their positions.
    public func logProbs(_ targets: TokenTargets) -> [Float] {
        let a = activations!, c = config, N = targets.count, C = c.hiddenSize, V = c.vocabSize
        if (head?.capacity ?? -1) < N { head = HeadBuffers(positions: N, config: c) }
        let h = head!
        for (n, p) in targets.positions.enumerated() {
            (h.selected.pointer + n * C).update(from: a.finalNorm.pointer + p * C, count: C)
        }
        linear(h.logits.pointer, h.selected.pointer, layout.lmHead, M: N, N: V, K: C)
        var out = [Float](repeating: 0, count: N)
        targets.targets.withUnsafeBufferPointer { t in
            out.withUnsafeMutableBufferPointer { o in
                LogProbs.forward(logp: o.baseAddress!, lse: h.lse.pointer, logits: h.logits.pointer,
                                 targets: t.baseAddress!, positions: N, vocab: V)
            }
        }
        lastTargets = targets
        return out
    }

    /// The logits (N, V) of the last `logProbs` call (valid until `backward`).
    public var lastLogits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: head!.logits.pointer, count: lastTargets!.count * config.vocabSize)
    }

    /// Score head: one scalar per row, read at the row's last real token.
    public func scores() -> [Float] {
        guard let weight = scoreWeight else { preconditionFailure("scores() needs a model with scoreHead") }
        let a = activations!, C = config.hiddenSize
        return (0..<a.batch).map { b in
            let row = a.finalNorm.pointer + (b * a.time + a.lengths[b] - 1) * C
            var acc: Float = 0
            for i in 0..<C { acc += row[i] * weight[i] }
            return acc
        }
    }

    // MARK: backward

    /// Accumulates ∂L/∂parameters into `gradients`, given ∂L/∂(log-probs of the last `logProbs` call),
    /// ∂L/∂(scores) and/or ∂L/∂(values of the last `values` call, (N, H)). With `perExample` set,
    /// materialises per-example adapter gradients instead, or reports layers for per-example norms and
    /// computes no parameter gradient (PerExampleBackward.swift), value heads included.
    public func backward(dLogProbs: [Float]? = nil, dScores: [Float]? = nil, dValues: [Float]? = nil) {
        precondition(training && (gradients != nil || adapters != nil), "backward on an inference-only model")
        precondition(bf16Weights == nil, "backward inside withBF16Weights: bf16 forwards are for forward-only work")
        if perExampleGradientBuffer != nil { precondition(adapters != nil, "per-example gradients are materialised for LoRA adapters only") }
        let a = activations!, c = config, R = a.batch * a.time, C = c.hiddenSize, V = c.vocabSize
        let observer = perExampleNormObserver
        a.dNorm.pointer.update(repeating: 0, count: R * C)
        var headTargets: TokenTargets? = nil
        if let dLogProbs, let targets = lastTargets {
            let h = head!, N = targets.count
            precondition(dLogProbs.count == N)
            dLogProbs.withUnsafeBufferPointer { d in
                targets.targets.withUnsafeBufferPointer { t in
                    LogProbs.backward(logitsToGrad: h.logits.pointer, dlogp: d.baseAddress!, lse: h.lse.pointer,
                                      targets: t.baseAddress!, positions: N, vocab: V)
                }
            }
            observer?.lmHead(inputs: h.selected.pointer, logitGradients: h.logits.pointer, targets: targets, vocabulary: V,
                             channels: C, tiedToEmbedding: c.tieWordEmbeddings)
            headBackward(targets, weightGradient: observer == nil)
            headTargets = targets
            lastTargets = nil
        }
        if let dScores { scoreBackward(dScores) }
        let valueTargets = lastValueTargets
        if let dValues { valueHeadBackward(dValues, dNorm: a.dNorm.pointer) }
        normPass = observer == nil ? nil : NormPassState(targets: headTargets, dScores: dScores,
                                                         values: dValues.flatMap { d in valueTargets.map { ($0, d) } })
        trunkBackward()
    }

    /// The LM head's backward from ∂L/∂logits (in `head.logits`): the weight gradient (unless a norm pass)
    /// and the selected rows' input gradients added into dNorm.
    func headBackward(_ targets: TokenTargets, weightGradient: Bool) {
        let a = activations!, h = head!, N = targets.count, C = config.hiddenSize, V = config.vocabSize
        let dNorm = a.dNorm.pointer
        // dselected (N, C) = dlogits · E, reusing `selected` after the weight gradient is taken.
        if weightGradient {
            Matmul.backward(dinp: nil, dweight: g(layout.lmHead), dout: h.logits.pointer, inp: h.selected.pointer,
                            weight: w(layout.lmHead), M: N, N: V, K: C)
        }
        Matmul.backward(dinp: h.selected.pointer, dweight: nil, dout: h.logits.pointer, inp: h.selected.pointer,
                        weight: w(layout.lmHead), M: N, N: V, K: C, overwriteInput: true)
        for (n, p) in targets.positions.enumerated() {
            Elementwise.accumulate(dNorm + p * C, h.selected.pointer + n * C, count: C)
        }
    }

    /// The score head's backward: input gradients into dNorm; the weight gradient into the slab, into the
    /// per-example buffer, or reported to the norm observer.
    func scoreBackward(_ dScores: [Float]) {
        guard let weight = scoreWeight else { return }
        let a = activations!, B = a.batch, T = a.time, C = config.hiddenSize, dNorm = a.dNorm.pointer
        let observer = perExampleNormObserver, perExampleBuffer = perExampleGradientBuffer
        let gradient = observer == nil && perExampleBuffer == nil ? scoreGradient : nil
        for b in 0..<B {
            let r = b * T + a.lengths[b] - 1
            let row = a.finalNorm.pointer + r * C, d = dScores[b]
            let exampleGradient = perExampleBuffer.map { $0.row($0.rowExample[b]) + adapters!.scoreOffset! }
            for i in 0..<C {
                dNorm[r * C + i] += d * weight[i]
                gradient?[i] += d * row[i]
                exampleGradient?[i] += d * row[i]
            }
        }
        observer?.scoreHead(features: a.finalNorm.pointer, lastRows: (0..<B).map { $0 * T + a.lengths[$0] - 1 }, dScores: dScores,
                            channels: C)
    }

    /// Backward from dNorm (∂L/∂ final-norm output) through the final norm, the blocks and the embedding.
    func trunkBackward() {
        let a = activations!, c = config, B = a.batch, T = a.time, R = B * T
        let C = c.hiddenSize, F = c.intermediateSize, QKV = c.qkvChannels, A = c.attentionChannels
        let dNorm = a.dNorm.pointer, dx = a.dResidual.pointer
        let lora = adapters, seeds = adapterDropoutSeeds
        let observer = perExampleNormObserver, exampleGradients = perExampleGradientBuffer
        // Weight gradients: none in a norm pass (the observer sees each layer instead).
        func wg(_ offset: Int) -> FloatPtr? { observer == nil ? g(offset) : nil }
        dx.update(repeating: 0, count: R * C)
        RMSNorm.backward(dinp: dx, dweight: wg(layout.finalNorm), dout: dNorm, inp: a.residual(c.numLayers).pointer,
                         weight: w(layout.finalNorm), rstd: a.finalRstd.pointer, rows: R, channels: C)
        observer?.rmsNorm(inputs: a.residual(c.numLayers).pointer, rstd: a.finalRstd.pointer, outputGradients: dNorm, channels: C)
        let shape = AttentionShape(batch: B, time: T, heads: c.numHeads, kvHeads: c.numKVHeads, headSize: c.headSize)
        for l in stride(from: c.numLayers - 1, through: 0, by: -1) {
            let o = layout.blocks[l], s = a.block(l)
            // MLP: dx holds ∂L/∂y; y = middle + Wdown · hidden.
            Matmul.backward(dinp: a.dHidden.pointer, dweight: wg(o.down), dout: dx, inp: s.hidden.pointer, weight: w(o.down),
                            M: R, N: C, K: F, overwriteInput: true)
            observer?.linear(inputs: s.hidden.pointer, outputGradients: dx, inFeatures: F, outFeatures: C)
            lora?.backward(layer: l, site: .down, input: s.hidden.pointer, dOutput: dx, dInput: a.dHidden.pointer, rows: R, stride: C,
                           time: T, dropoutSeeds: seeds, perExample: exampleGradients, lengths: a.lengths)
            SwiGLU.backward(dgateUp: a.dGateUp.pointer, dout: a.dHidden.pointer, gateUp: s.gateUp.pointer, rows: R, features: F)
            Matmul.backward(dinp: dNorm, dweight: wg(o.gateUp), dout: a.dGateUp.pointer, inp: s.mlpNorm.pointer,
                            weight: w(o.gateUp), M: R, N: 2 * F, K: C, overwriteInput: true)
            observer?.linear(inputs: s.mlpNorm.pointer, outputGradients: a.dGateUp.pointer, inFeatures: C, outFeatures: 2 * F)
            lora?.backward(layer: l, site: .gateUp, input: s.mlpNorm.pointer, dOutput: a.dGateUp.pointer, dInput: dNorm, rows: R,
                           stride: 2 * F, time: T, dropoutSeeds: seeds, perExample: exampleGradients, lengths: a.lengths)
            RMSNorm.backward(dinp: dx, dweight: wg(o.mlpNorm), dout: dNorm, inp: s.middle.pointer, weight: w(o.mlpNorm),
                             rstd: s.mlpRstd.pointer, rows: R, channels: C)
            observer?.rmsNorm(inputs: s.middle.pointer, rstd: s.mlpRstd.pointer, outputGradients: dNorm, channels: C)
            // Attention: dx holds ∂L/∂middle; middle = x + Wo · attention.
            Matmul.backward(dinp: a.dAttention.pointer, dweight: wg(o.output), dout: dx, inp: s.attention.pointer,
                            weight: w(o.output), M: R, N: C, K: A, overwriteInput: true)
            observer?.linear(inputs: s.attention.pointer, outputGradients: dx, inFeatures: A, outFeatures: C)
            lora?.backward(layer: l, site: .output, input: s.attention.pointer, dOutput: dx, dInput: a.dAttention.pointer, rows: R,
                           stride: C, time: T, dropoutSeeds: seeds, perExample: exampleGradients, lengths: a.lengths)
            a.dQKV.zero()
            Attention.backward(dqkv: a.dQKV.pointer, dout: a.dAttention.pointer, att: s.probabilities.pointer,
                               qkv: s.qkv.pointer, shape: shape)
            Rotary.apply(a.dQKV.pointer, rows: R, rowStride: QKV, heads: c.numHeads + c.numKVHeads, sequenceLength: T,
                         table: rotary, layout: c.ropeLayout, inverse: true)
            Matmul.backward(dinp: dNorm, dweight: wg(o.qkv), dout: a.dQKV.pointer, inp: s.attentionNorm.pointer,
                            weight: w(o.qkv), M: R, N: QKV, K: C, overwriteInput: true)
            observer?.linear(inputs: s.attentionNorm.pointer, outputGradients: a.dQKV.pointer, inFeatures: C, outFeatures: QKV)
            lora?.backward(layer: l, site: .qkv, input: s.attentionNorm.pointer, dOutput: a.dQKV.pointer, dInput: dNorm, rows: R,
                           stride: QKV, time: T, dropoutSeeds: seeds, perExample: exampleGradients, lengths: a.lengths)
            RMSNorm.backward(dinp: dx, dweight: wg(o.attentionNorm), dout: dNorm, inp: a.residual(l).pointer,
                             weight: w(o.attentionNorm), rstd: s.attentionRstd.pointer, rows: R, channels: C)
            observer?.rmsNorm(inputs: a.residual(l).pointer, rstd: s.attentionRstd.pointer, outputGradients: dNorm, channels: C)
        }
        if let observer, g(layout.embedding) != nil {
            observer.embedding(tokens: a.tokens, outputGradients: dx, channels: C, vocabulary: c.vocabSize,
                               tiedToHead: c.tieWordEmbeddings)
        } else if let dtable = g(layout.embedding) {
            a.tokens.withUnsafeBufferPointer { Embedding.backward(dtable: dtable, dout: dx, tokens: $0.baseAddress!, rows: R, channels: C) }
        }
    }
}

import Foundation
