// The clipped gradient sum of DP-SGD for one physical batch: Σ_i c_i ∇ℓ_i with
// c_i = min(1, C/(‖∇ℓ_i‖ + 1e-6)), ‖·‖ the joint L2 norm over every trainable parameter, added into the
// trainable gradient slab (which is not otherwise touched).
//
// - LoRA (the slab is the adapters and the score head): each example's gradient is materialised in the one
//   backward pass (book-keeping), then clipped and summed by one sgemm: (E, P) memory.
// - Full fine-tuning: a first backward computes no parameter gradient and gives every example's norm from
//   its layers' inputs and output gradients (GhostNormPass), then one clipped backward starts from the same
//   output gradients with each example's rows scaled by its factor. No per-example gradient is stored.
//
// Legend: E examples, B rows, P trainable parameters.

import Foundation
import Models
import Privacy
import Tensors

public final class ClippedGradientSum {
    public let model: Transformer
    /// The clipping norm C.
    public let maxNorm: Double
    /// Ghost or materialised linear norms in full fine-tuning (automatic by default; tests force each path).
    public var normMethod: PerExampleNormMethod {
        get { normPass.method }
        set { normPass.method = newValue }
    }
    private let normPass = GhostNormPass()
    /// The per-example adapter gradients (LoRA), grown to the largest physical batch.   // (E, P)
    private var perExample: PerExampleGradients?

    /// Seconds of the last `accumulate`'s parts: the per-example pass (LoRA: the backward with per-example
    /// gradients; full: the norm pass), of which the norms' own arithmetic (full: inside the observer), and
    /// the clipping (LoRA: norms and the clipped sgemm; full: the clipped backward).
    public private(set) var lastTimings = (perExamplePass: 0.0, normArithmetic: 0.0, clipping: 0.0)

    public init(model: Transformer, maxNorm: Double) {
        precondition(maxNorm > 0, "ClippedGradientSum: the clipping norm must be positive")
        self.model = model
        self.maxNorm = maxNorm
    }

    /// Whether the per-example gradients are materialised (LoRA) rather than normed by a first pass (full).
    public var materializes: Bool { model.adapters != nil }

    /// Bytes of per-example state held: the (E, P) gradient buffer with LoRA, or the norm pass's scratch
    /// (for one example at a time) with full fine-tuning.
    public var perExampleBytes: Int {
        materializes ? (perExample?.values.count ?? 0) * MemoryLayout<Float>.stride : normPass.scratchBytes
    }

    /// After the model's forward pass over `batch` (and `logProbs`/`scores`/`values`), adds Σ_i c_i ∇ℓ_i into the
    /// trainable gradients, given the objective's ∂(Σ_i ℓ_i)/∂outputs (each example touching only its own
    /// rows). Returns each example's unclipped norm ‖∇ℓ_i‖ (E): the joint norm over everything trainable, so
    /// PPO's policy and value losses are clipped together per example.
    public func accumulate(_ batch: MicroBatch, dLogProbs: [Float]?, dScores: [Float]?, dValues: [Float]? = nil) -> [Double] {
        let E = batch.examples.count
        guard E > 0 else { return [] }
        if materializes {
            let P = model.trainable.count
            if (perExample?.capacity ?? 0) < E { perExample = nil; perExample = PerExampleGradients(parameters: P, capacity: E) }
            let buffer = perExample!
            buffer.reset(examples: E, rowExample: batch.rowExample)
            model.perExample = .gradients(buffer)
            defer { model.perExample = nil }
            let t0 = Self.now()
            model.backward(dLogProbs: dLogProbs, dScores: dScores, dValues: dValues)
            let t1 = Self.now()
            defer { lastTimings = (t1 - t0, 0, Self.now() - t1) }
            let squared = PerExampleClipping.squaredRowNorms(buffer.values.pointer, examples: E, parameters: P)
            let factors = PerExampleClipping.clipFactors(squaredNorms: squared, maxNorm: maxNorm)
            PerExampleClipping.accumulateClippedSum(into: model.trainable.gradients.pointer, perExample: buffer.values.pointer,
                                                    factors: factors, parameters: P)
            return squared.map { $0.squareRoot() }
        }
        normPass.begin(time: batch.batch.length, lengths: batch.batch.lengths, rowExample: batch.rowExample, examples: E)
        model.perExample = .norms(normPass)
        let t0 = Self.now()
        normPass.seconds = 0
        model.backward(dLogProbs: dLogProbs, dScores: dScores, dValues: dValues)
        model.perExample = nil
        let t1 = Self.now()
        let squared = normPass.squaredNorms
        let factors = PerExampleClipping.clipFactors(squaredNorms: squared, maxNorm: maxNorm)
        model.clippedBackward(rowFactors: batch.rowExample.map { Float(factors[$0]) })
        lastTimings = (t1 - t0, normPass.seconds, Self.now() - t1)
        return squared.map { $0.squareRoot() }
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
