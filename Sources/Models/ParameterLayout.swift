// The parameter slab: every weight of the model in one contiguous Float32 run, with named views
// in a fixed order and the Hugging Face name of each. Gradients and optimizer moments use the same
// layout, so a view's offset addresses all of them.
//
// Order (Legend: V vocab, C width, F MLP features, QKV = (NH + 2·NKV)·HS, A = NH·HS):
//   model.embed_tokens.weight                      (V, C)
//   per block l:
//     model.layers.l.input_layernorm.weight        (C)
//     model.layers.l.self_attn.q_proj.weight       (A, C)      ┐ contiguous: one fused
//     model.layers.l.self_attn.k_proj.weight       (NKV·HS, C) │ (QKV, C) projection
//     model.layers.l.self_attn.v_proj.weight       (NKV·HS, C) ┘
//     model.layers.l.self_attn.o_proj.weight       (C, A)
//     model.layers.l.post_attention_layernorm.weight (C)
//     model.layers.l.mlp.gate_proj.weight          (F, C)      ┐ contiguous: one fused
//     model.layers.l.mlp.up_proj.weight            (F, C)      ┘ (2F, C) projection
//     model.layers.l.mlp.down_proj.weight          (C, F)
//   model.norm.weight                              (C)
//   lm_head.weight                                 (V, C)      only when not tied
//   score.weight                                   (1, C)      only with a score head
//   v_head.weight                                  (H, C)      only with value heads (PPO critics)


/// One named tensor inside the slab.
public struct ParameterView: Equatable, Sendable {
    /// The Hugging Face name (safetensors key).
    public let name: String
    /// First element in the slab.
    public let offset: Int
    /// Row-major shape.
    public let shape: [Int]
    /// Whether AdamW applies weight decay (matrices yes, norm weights no).
    public let decays: Bool
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Slab range of this view.
    public var range: Range<Int> { offset..<(offset + count) }
}

/// Offsets of one block's tensors.
public struct BlockOffsets: Sendable {
    public let attentionNorm, qkv, output, mlpNorm, gateUp, down: Int
}

/// Where every tensor lives in the slab.
public struct ParameterLayout: Sendable {
    /// Every view, in slab order.
    public let views: [ParameterView]
    /// Total elements.
    public let count: Int
    public let embedding: Int
    public let blocks: [BlockOffsets]
    public let finalNorm: Int
    /// The LM head (equals `embedding` when tied).
    public let lmHead: Int
    /// The score head, when present.
    public let score: Int?
    /// The value heads (H, C), when present.
    public let valueHead: Int?
    private let index: [String: Int]

    public init(config c: ModelConfig) {
        var views: [ParameterView] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], decays: Bool) -> Int {
            let v = ParameterView(name: name, offset: offset, shape: shape, decays: decays)
            views.append(v)
            offset += v.count
            return v.offset
        }
        let C = c.hiddenSize, HS = c.headSize, F = c.intermediateSize
        embedding = add("model.embed_tokens.weight", [c.vocabSize, C], decays: true)
        var blocks: [BlockOffsets] = []
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            let an = add(p + "input_layernorm.weight", [C], decays: false)
            let q = add(p + "self_attn.q_proj.weight", [c.numHeads * HS, C], decays: true)
            _ = add(p + "self_attn.k_proj.weight", [c.numKVHeads * HS, C], decays: true)
            _ = add(p + "self_attn.v_proj.weight", [c.numKVHeads * HS, C], decays: true)
            let o = add(p + "self_attn.o_proj.weight", [C, c.numHeads * HS], decays: true)
            let mn = add(p + "post_attention_layernorm.weight", [C], decays: false)
            let g = add(p + "mlp.gate_proj.weight", [F, C], decays: true)
            _ = add(p + "mlp.up_proj.weight", [F, C], decays: true)
            let d = add(p + "mlp.down_proj.weight", [C, F], decays: true)
            blocks.append(BlockOffsets(attentionNorm: an, qkv: q, output: o, mlpNorm: mn, gateUp: g, down: d))
        }
        self.blocks = blocks
        finalNorm = add("model.norm.weight", [C], decays: false)
        lmHead = c.tieWordEmbeddings ? embedding : add("lm_head.weight", [c.vocabSize, C], decays: true)
        score = c.scoreHead ? add("score.weight", [1, C], decays: true) : nil
        valueHead = c.valueHeads > 0 ? add(Self.valueHeadName, [c.valueHeads, C], decays: true) : nil
        count = offset
        self.views = views
        index = Dictionary(uniqueKeysWithValues: views.enumerated().map { ($1.name, $0) })
    }

    /// The value heads' tensor name (TRL's `AutoModelForCausalLMWithValueHead` calls its head `v_head`).
    public static let valueHeadName = "v_head.weight"

    /// The view with a Hugging Face name, if the model has it.
    public func view(named name: String) -> ParameterView? { index[name].map { views[$0] } }

    /// Slab ranges that receive weight decay.
    public var decayRanges: [Range<Int>] { views.filter(\.decays).map(\.range) }
}
