// LoRA adapters (Hu et al. 2021, as PEFT implements them) on the block projections: for a target
// projection W (out, in), y = x·Wᵀ + s·dropout(x)·Aᵀ·Bᵀ with A (r, in), B (out, r), s = alpha / r.
// PEFT's initialisation: A Kaiming-uniform (a = √5, i.e. U(−1/√in, 1/√in)), B zero, so a fresh
// adapter leaves the model unchanged. The base weights stay frozen; the adapters (and a score head or
// value heads, which train fully beside them) live in one slab of their own, which is what the optimizer,
// the gradient all-reduce and checkpoints see.
//
// Legend: R rows (B·T), r adapter rank, in/out a projection's input and output features.
// Forward of a target: G = s·(x̃·Aᵀ) (R, r), saved; y[:, cols] += G·Bᵀ.
// Backward:            dB += dyᵀ·G; dH = s·(dy·B); dA += dHᵀ·x̃; dx += mask ⊙ (dH·A) / (1 − p).

import Foundation
import Tensors

/// A projection LoRA can adapt (PEFT's target module names: q_proj, k_proj, …).
public enum LoRATarget: String, Codable, CaseIterable, Sendable {
    case q, k, v, o, gate, up, down

    /// The Hugging Face module path inside a block.
    public var modulePath: String {
        switch self {
        case .q: "self_attn.q_proj"
        case .k: "self_attn.k_proj"
        case .v: "self_attn.v_proj"
        case .o: "self_attn.o_proj"
        case .gate: "mlp.gate_proj"
        case .up: "mlp.up_proj"
        case .down: "mlp.down_proj"
        }
    }

    /// The fused matmul the target belongs to.
    public var site: LoRASite {
        switch self {
        case .q, .k, .v: .qkv
        case .o: .output
        case .gate, .up: .gateUp
        case .down: .down
        }
    }
}

/// The four projection sites of a block (q|k|v and gate|up are fused matmuls).
public enum LoRASite: Sendable {
    case qkv, output, gateUp, down
}

/// The adapter hyper-parameters (PEFT's LoraConfig: r, lora_alpha, lora_dropout, target_modules).
public struct LoRASettings: Codable, Equatable, Sendable {
    public var rank: Int
    public var alpha: Double
    public var dropout: Double
    public var targets: [LoRATarget]
    /// Seed of A's initialisation.
    public var seed: UInt64

    public init(rank: Int, alpha: Double, dropout: Double = 0, targets: [LoRATarget] = LoRATarget.allCases, seed: UInt64 = 0) {
        self.rank = rank; self.alpha = alpha; self.dropout = dropout; self.targets = targets; self.seed = seed
    }

    /// s = alpha / r.
    public var scaling: Float { Float(alpha / Double(rank)) }
}

/// One adapter: where its A and B live in the slab and where it reads and writes.
struct LoRAAdapter {
    let layer: Int
    let target: LoRATarget
    /// Input and output features of the adapted projection.
    let inFeatures: Int, outFeatures: Int
    /// First output column inside the fused site output (k after q, up after gate).
    let column: Int
    /// Slab offsets of A (r, in) and B (out, r).
    let a: Int, b: Int
}

/// Every adapter of a model, their slab (values and gradients), and the activations their backward needs.
public final class LoRAAdapters {
    public let settings: LoRASettings
    /// Adapters (and the score head, when the model has one) in one trainable slab.
    public let slab: ParameterSlab
    /// The score head's offset in the slab (reward and cost models).
    public let scoreOffset: Int?
    /// The value heads' offset in the slab (PPO's critics on the trunk), (H, C).
    public let valueOffset: Int?
    /// Whether the adapters take part in forward passes (off: the base model, e.g. DPO's reference).
    public var enabled = true
    let adapters: [LoRAAdapter]
    /// Adapter indices per (layer, site).
    let bySite: [[LoRASite: [Int]]]
    /// Saved G = s·x̃·Aᵀ per adapter for backward, sized for `savedRows` rows.       // each (R, r)
    var saved: [FloatBuffer] = []
    var savedRows = 0

    /// Builds adapters for `config` with A drawn from `settings.seed` and B zero; `score` is the initial score head (C),
    /// `valueHeads` the initial value heads (H·C).
    init(config c: ModelConfig, settings: LoRASettings, score: UnsafeBufferPointer<Float>?,
         valueHeads: UnsafeBufferPointer<Float>? = nil) throws {
        guard settings.rank >= 1 else { throw ModelConfigError(field: "lora.rank", message: "must be at least 1, got \(settings.rank)") }
        guard settings.alpha > 0, settings.alpha.isFinite else { throw ModelConfigError(field: "lora.alpha", message: "must be a positive number, got \(settings.alpha)") }
        guard settings.dropout >= 0, settings.dropout < 1 else { throw ModelConfigError(field: "lora.dropout", message: "must be in [0, 1), got \(settings.dropout)") }
        guard !settings.targets.isEmpty else { throw ModelConfigError(field: "lora.targets", message: "name at least one of \(LoRATarget.allCases.map(\.rawValue))") }
        self.settings = settings
        let C = c.hiddenSize, F = c.intermediateSize, A = c.attentionChannels, KV = c.numKVHeads * c.headSize, r = settings.rank
        var views: [ParameterView] = [], list: [LoRAAdapter] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            views.append(ParameterView(name: name, offset: offset, shape: shape, decays: true))
            offset += shape.reduce(1, *)
            return offset - shape.reduce(1, *)
        }
        let targets = LoRATarget.allCases.filter(settings.targets.contains)
        var bySite: [[LoRASite: [Int]]] = Array(repeating: [:], count: c.numLayers)
        for l in 0..<c.numLayers {
            for t in targets {
                let (inF, outF, column): (Int, Int, Int) = switch t {
                case .q: (C, A, 0)
                case .k: (C, KV, A)
                case .v: (C, KV, A + KV)
                case .o: (A, C, 0)
                case .gate: (C, F, 0)
                case .up: (C, F, F)
                case .down: (F, C, 0)
                }
                let prefix = "model.layers.\(l).\(t.modulePath)."
                let a = add(prefix + "lora_A.weight", [r, inF]), b = add(prefix + "lora_B.weight", [outF, r])
                bySite[l][t.site, default: []].append(list.count)
                list.append(LoRAAdapter(layer: l, target: t, inFeatures: inF, outFeatures: outF, column: column, a: a, b: b))
            }
        }
        scoreOffset = score.map { _ in add("score.weight", [1, C]) }
        valueOffset = valueHeads.map { _ in add(ParameterLayout.valueHeadName, [c.valueHeads, C]) }
        adapters = list
        self.bySite = bySite
        slab = ParameterSlab(values: FloatBuffer(count: offset), gradients: FloatBuffer(count: offset), views: views)
        // A ~ U(−1/√in, 1/√in) (kaiming_uniform_ with a = √5), B = 0, from one generator in slab order.
        var rng = SplitMix64(seed: settings.seed)
        for ad in list {
            let bound = 1 / Float(ad.inFeatures).squareRoot(), p = slab.values.pointer + ad.a
            for i in 0..<(r * ad.inFeatures) { p[i] = (2 * rng.nextUniform() - 1) * bound }
        }
        if let score, let s = scoreOffset { (slab.values.pointer + s).update(from: score.baseAddress!, count: C) }
        if let valueHeads, let v = valueOffset { (slab.values.pointer + v).update(from: valueHeads.baseAddress!, count: valueHeads.count) }
    }

    /// Makes sure every adapter has a saved-G buffer for `rows` rows.
    func reserve(rows: Int) {
        guard rows > savedRows else { return }
        saved = adapters.map { _ in FloatBuffer(count: rows * settings.rank) }
        savedRows = rows
    }

    // MARK: - Dropout

    /// Whether element (t, c) of row b's input to adapter `i` is kept, from the row's seed (independent of
    /// the batch's composition, so any world size draws the same masks).
    @inline(__always)
    static func keep(seed: UInt64, adapter i: Int, index: Int, p: Float) -> Bool {
        let u = SplitMix64.mix(seed &+ UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(truncatingIfNeeded: index) &* 0xD1B5_4A32_D192_ED03)
        return Float(u >> 40) * 0x1p-24 >= p
    }

    /// x̃ = mask ⊙ x / (1 − p) into `out` for adapter `i`.                          // (R, in)
    func dropout(_ x: ConstFloatPtr, into out: FloatPtr, adapter i: Int, rows R: Int, time T: Int, seeds: [UInt64]) {
        let inF = adapters[i].inFeatures, p = Float(settings.dropout), keepScale = 1 / (1 - p)
        parallelFor(R, minimumPerThread: 16) { r in
            let seed = seeds[r / T], base = (r % T) * inF
            for c in 0..<inF {
                out[r * inF + c] = Self.keep(seed: seed, adapter: i, index: base + c, p: p) ? x[r * inF + c] * keepScale : 0
            }
        }
    }

    // MARK: - Forward and backward of a site

    /// Adds every adapter of (layer, site) to the site's output `y` (R, stride): y[:, cols] += s·x̃·Aᵀ·Bᵀ.
    /// With `save`, keeps G for backward; `dropoutSeeds` (one per batch row, nil: no dropout) drives x̃.
    func forward(layer l: Int, site: LoRASite, input x: ConstFloatPtr, output y: FloatPtr, rows R: Int, stride: Int,
                 time T: Int, save: Bool, dropoutSeeds: [UInt64]?) {
        guard enabled, let list = bySite[l][site] else { return }
        let r = settings.rank, s = settings.scaling
        let useDropout = settings.dropout > 0 && dropoutSeeds != nil
        for i in list {
            let ad = adapters[i], w = slab.values.pointer
            let g = save ? saved[i] : FloatBuffer(count: R * r)                                    // (R, r)
            var xin = x
            let scratch = useDropout ? FloatBuffer(count: R * ad.inFeatures) : nil                   // (R, in)
            if let scratch, let seeds = dropoutSeeds {
                dropout(x, into: scratch.pointer, adapter: i, rows: R, time: T, seeds: seeds)
                xin = UnsafePointer(scratch.pointer)
            }
            Matmul.forward(g.pointer, xin, w + ad.a, M: R, N: r, K: ad.inFeatures)
            for j in 0..<(R * r) { g.pointer[j] *= s }
            Matmul.forward(y + ad.column, g.pointer, w + ad.b, M: R, N: ad.outFeatures, K: r, accumulate: true, ldOut: stride)
        }
    }

    /// Backward of `forward`: accumulates dA, dB into the slab's gradients and adds the input gradient into `dx` (R, in).
    /// With `perExample`, each example's dA, dB go into its row of that buffer instead (row by row over the
    /// rows' first `lengths[b]` positions, via the buffer's row→example map), and the slab is not touched.
    func backward(layer l: Int, site: LoRASite, input x: ConstFloatPtr, dOutput dy: ConstFloatPtr, dInput dx: FloatPtr,
                  rows R: Int, stride: Int, time T: Int, dropoutSeeds: [UInt64]?,
                  perExample: PerExampleGradients? = nil, lengths: [Int] = []) {
        guard enabled, let list = bySite[l][site] else { return }
        let r = settings.rank, s = settings.scaling, p = Float(settings.dropout)
        let useDropout = settings.dropout > 0 && dropoutSeeds != nil
        if perExample != nil { precondition(lengths.count * T == R, "LoRA per-example backward: \(lengths.count) lengths for \(R) rows of \(T)") }
        let dH = FloatBuffer(count: R * r)                                                           // (R, r)
        for i in list {
            let ad = adapters[i], w = slab.values.pointer, gw = slab.gradients.pointer
            let dyCols = dy + ad.column
            // dB += dyᵀ·G; dH = s·(dy·B)
            Matmul.backward(dinp: dH.pointer, dweight: perExample == nil ? gw + ad.b : nil, dout: dyCols, inp: saved[i].pointer,
                            weight: w + ad.b, M: R, N: ad.outFeatures, K: r, ldOut: stride, overwriteInput: true)
            if let perExample {
                // dB_e += dy_bᵀ·G_b over each row b of example e.                                        // (out, r)
                for (b, length) in lengths.enumerated() where length > 0 {
                    Matmul.backward(dinp: nil, dweight: perExample.row(perExample.rowExample[b]) + ad.b, dout: dyCols + b * T * stride,
                                    inp: saved[i].pointer + b * T * r, weight: w + ad.b, M: length, N: ad.outFeatures, K: r, ldOut: stride)
                }
            }
            for j in 0..<(R * r) { dH.pointer[j] *= s }
            var xd: FloatBuffer? = nil                                                               // (R, in) x̃ when dropout
            if useDropout, let seeds = dropoutSeeds {
                let dropped = FloatBuffer(count: R * ad.inFeatures), dxd = FloatBuffer(count: R * ad.inFeatures)   // (R, in)
                dropout(x, into: dropped.pointer, adapter: i, rows: R, time: T, seeds: seeds)
                Matmul.backward(dinp: dxd.pointer, dweight: perExample == nil ? gw + ad.a : nil, dout: dH.pointer, inp: dropped.pointer,
                                weight: w + ad.a, M: R, N: r, K: ad.inFeatures, overwriteInput: true)
                let inF = ad.inFeatures, keepScale = 1 / (1 - p)
                parallelFor(R, minimumPerThread: 16) { row in
                    let seed = seeds[row / T], base = (row % T) * inF
                    for c in 0..<inF where Self.keep(seed: seed, adapter: i, index: base + c, p: p) {
                        dx[row * inF + c] += dxd.pointer[row * inF + c] * keepScale
                    }
                }
                xd = dropped
            } else {
                Matmul.backward(dinp: dx, dweight: perExample == nil ? gw + ad.a : nil, dout: dH.pointer, inp: x, weight: w + ad.a,
                                M: R, N: r, K: ad.inFeatures)
            }
            if let perExample {
                // dA_e += dH_bᵀ·x̃_b over each row b of example e.                                        // (r, in)
                let xin = xd.map { UnsafePointer($0.pointer) } ?? x
                for (b, length) in lengths.enumerated() where length > 0 {
                    Matmul.backward(dinp: nil, dweight: perExample.row(perExample.rowExample[b]) + ad.a, dout: dH.pointer + b * T * r,
                                    inp: xin + b * T * ad.inFeatures, weight: w + ad.a, M: length, N: r, K: ad.inFeatures)
                }
            }
        }
    }

    // MARK: - Merging

    /// Adds s·B·A of every adapter into the base weights of `model` (W (out, in) of each target).
    func merge(into model: Transformer) {
        let s = settings.scaling, r = settings.rank
        for ad in adapters {
            let o = model.layout.blocks[ad.layer]
            let base: Int = switch ad.target {
            case .q, .k, .v: o.qkv + ad.column * ad.inFeatures
            case .o: o.output
            case .gate, .up: o.gateUp + ad.column * ad.inFeatures
            case .down: o.down
            }
            // W += (s·B) (out, r) · A (r, in): with Matmul's out = inp·weightᵀ, weight = Aᵀ (in, r).
            let scaledB = FloatBuffer(count: ad.outFeatures * r), aT = FloatBuffer(count: ad.inFeatures * r)
            for j in 0..<(ad.outFeatures * r) { scaledB.pointer[j] = s * slab.values.pointer[ad.b + j] }
            for i in 0..<r { for c in 0..<ad.inFeatures { aT.pointer[c * r + i] = slab.values.pointer[ad.a + i * ad.inFeatures + c] } }
            Matmul.forward(model.parameters.pointer + base, scaledB.pointer, aT.pointer, M: ad.outFeatures, N: ad.inFeatures, K: r,
                           accumulate: true)
        }
        if let so = scoreOffset, let mo = model.layout.score {
            (model.parameters.pointer + mo).update(from: slab.values.pointer + so, count: model.config.hiddenSize)
        }
        if let vo = valueOffset, let mo = model.layout.valueHead {
            (model.parameters.pointer + mo).update(from: slab.values.pointer + vo, count: model.config.valueHeads * model.config.hiddenSize)
        }
    }
}
