// The unit the optimizer, the gradient all-reduce and checkpoints work on: one slab of trainable
// values, one of their gradients, and the named views of both (llm.c's layout).

import Tensors

/// Trainable values and gradients as one contiguous slab each, with named views in a fixed order.
public struct ParameterSlab {
    /// The values.
    public let values: FloatBuffer
    /// The gradients, same layout.
    public let gradients: FloatBuffer
    /// Every named tensor, in slab order.
    public let views: [ParameterView]

    public init(values: FloatBuffer, gradients: FloatBuffer, views: [ParameterView]) {
        precondition(values.count == gradients.count, "ParameterSlab: \(values.count) values but \(gradients.count) gradients")
        self.values = values; self.gradients = gradients; self.views = views
    }

    /// Number of trainable values.
    public var count: Int { values.count }
    /// Slab ranges that receive weight decay.
    public var decayRanges: [Range<Int>] { views.filter(\.decays).map(\.range) }
}

extension Transformer {
    /// What training updates: the adapters (and score head) when attached, else the whole model.
    public var trainable: ParameterSlab {
        if let a = adapters { return a.slab }
        guard let gradients else { preconditionFailure("an inference-only model has nothing to train") }
        return ParameterSlab(values: parameters, gradients: gradients, views: layout.views)
    }

    /// One line for logs: what is trained and how many values.
    public var trainableDescription: String {
        guard let a = adapters else { return String(format: "all %.1fM parameters", Double(layout.count) / 1e6) }
        let s = a.settings
        return String(format: "LoRA r=%d alpha=%g dropout=%g on %@: %.2fM parameters (base %.1fM frozen)", s.rank, s.alpha, s.dropout,
                      s.targets.map(\.rawValue).joined(separator: ","), Double(a.slab.count) / 1e6, Double(layout.count) / 1e6)
    }

    /// The identity of frozen base weights under attached adapters (nil: full fine-tuning, nothing is frozen).
    public var baseIdentity: String? { adapters == nil ? nil : baseIdentityCache }
}
