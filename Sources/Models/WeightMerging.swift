// Linear weight merging: θ = Σ_i w_i θ_i over models of one architecture (P-SACPO's
// θ(q) = (1−q)·θ_r + q·θ_{r+λ̄g}, mergekit's `linear` method without renormalisation).
// Models loaded in different rotary layouts (GGUF: interleaved, Hugging Face: halfSplit) are merged
// in the first model's layout: their q/k rows are permuted before they are added.

import Foundation
import Tensors

/// Models that cannot be merged, or weights that make no sense; names the model, tensor or field and what to do.
public struct WeightMergeError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}

/// Linear merges of parameter slabs.
public enum WeightMerging {
    /// How far Σ w_i may be from 1 before the weights count as unnormalised.
    public static let normalizationTolerance: Double = 1e-6

    /// Checks that `weights` fit `count` models: same count, finite, and (unless `allowUnnormalized`) summing to 1.
    public static func validate(weights: [Float], count: Int, allowUnnormalized: Bool = false) throws {
        guard count >= 1 else { throw WeightMergeError(message: "no models to merge; give at least one --models entry") }
        guard weights.count == count else {
            throw WeightMergeError(message: "\(count) models but \(weights.count) weights; give one --weights value per model, in the same order")
        }
        if let bad = weights.firstIndex(where: { !$0.isFinite }) {
            throw WeightMergeError(message: "weight \(bad + 1) is \(weights[bad]); weights must be finite numbers")
        }
        let sum = weights.reduce(0.0) { $0 + Double($1) }
        if !allowUnnormalized && abs(sum - 1) > normalizationTolerance {
            throw WeightMergeError(message: "weights \(weights) sum to \(sum), not 1; rescale them (P-SACPO uses 1−q and q) or pass --allow-unnormalized")
        }
    }

    /// Checks that `other` has `reference`'s architecture (rotary layout aside): every tensor with the
    /// same name and shape, and the same non-shape hyper-parameters.
    ///
    /// - Parameters:
    ///   - names: how the two models are called in errors (their paths on the command line).
    public static func checkCompatible(_ other: Transformer, with reference: Transformer,
                                       names: (other: String, reference: String) = ("model 2", "model 1")) throws {
        let refViews = Dictionary(uniqueKeysWithValues: reference.layout.views.map { ($0.name, $0) })
        let otherViews = Dictionary(uniqueKeysWithValues: other.layout.views.map { ($0.name, $0) })
        for view in reference.layout.views {
            guard let o = otherViews[view.name] else {
                throw WeightMergeError(message: "tensor \(view.name) is in \(names.reference) but not in \(names.other); merge models of one architecture"
                                       + (view.name == "score.weight" ? " (both with or both without a score head)" : ""))
            }
            guard o.shape == view.shape else {
                throw WeightMergeError(message: "tensor \(view.name) has shape \(o.shape) in \(names.other) but \(view.shape) in \(names.reference); merge models of one architecture")
            }
        }
        for view in other.layout.views where refViews[view.name] == nil {
            throw WeightMergeError(message: "tensor \(view.name) is in \(names.other) but not in \(names.reference); merge models of one architecture"
                                   + (view.name == "score.weight" ? " (both with or both without a score head)" : ""))
        }
        let a = reference.config, b = other.config
        let fields: [(String, String, String)] = [
            ("numHeads", "\(a.numHeads)", "\(b.numHeads)"), ("numKVHeads", "\(a.numKVHeads)", "\(b.numKVHeads)"),
            ("ropeTheta", "\(a.ropeTheta)", "\(b.ropeTheta)"), ("rmsNormEps", "\(a.rmsNormEps)", "\(b.rmsNormEps)"),
            ("tieWordEmbeddings", "\(a.tieWordEmbeddings)", "\(b.tieWordEmbeddings)"),
        ]
        for (field, x, y) in fields where x != y {
            throw WeightMergeError(message: "config field \(field) is \(y) in \(names.other) but \(x) in \(names.reference); merge models of one architecture")
        }
    }

    /// The linear merge θ = Σ_i w_i θ_i, as a new inference model with the first model's config
    /// (and rotary layout; the others' q/k rows are converted to it).
    ///
    /// Each element is accumulated in Float32 in model order: `w_0·θ_0`, then `+ w_1·θ_1`, and so on.
    /// - Parameters:
    ///   - names: how the models are called in errors (default "model 1", "model 2", …).
    /// - Throws: `WeightMergeError` for mismatched architectures (naming the tensor or field) or bad weights.
    public static func merge(_ models: [Transformer], weights: [Float], allowUnnormalized: Bool = false,
                             names: [String]? = nil, trainable: Bool = false) throws -> Transformer {
        try validate(weights: weights, count: models.count, allowUnnormalized: allowUnnormalized)
        let label = names ?? models.indices.map { "model \($0 + 1)" }
        let first = models[0]
        for i in models.indices.dropFirst() {
            try checkCompatible(models[i], with: first, names: (label[i], label[0]))
        }
        let out = try Transformer(config: first.config, trainable: trainable)
        let target = first.config.ropeLayout
        let dst = out.parameters.pointer
        for view in first.layout.views {
            let isRotary = view.name.hasSuffix("q_proj.weight") || view.name.hasSuffix("k_proj.weight")
            let heads = view.name.hasSuffix("q_proj.weight") ? first.config.numHeads : first.config.numKVHeads
            var scratch: [Float] = []
            for (i, model) in models.enumerated() {
                let srcView = model.layout.views.first { $0.name == view.name }!
                let src = UnsafePointer(model.parameters.pointer + srcView.offset)
                if isRotary && model.config.ropeLayout != target {
                    scratch = Array(UnsafeBufferPointer(start: src, count: view.count))
                    scratch.withUnsafeMutableBufferPointer {
                        model.config.ropeLayout.convertRows($0.baseAddress!, heads: heads, headSize: model.config.headSize,
                                                            columns: model.config.hiddenSize, to: target)
                    }
                }
                let w = weights[i]
                let d = dst + view.offset
                func accumulate(_ p: UnsafePointer<Float>) {
                    if i == 0 {
                        for j in 0..<view.count { d[j] = w * p[j] }
                    } else {
                        for j in 0..<view.count { d[j] += w * p[j] }
                    }
                }
                if isRotary && model.config.ropeLayout != target {
                    scratch.withUnsafeBufferPointer { accumulate($0.baseAddress!) }
                } else {
                    accumulate(src)
                }
            }
        }
        return out
    }
}
