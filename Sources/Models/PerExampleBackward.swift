// Per-example work inside a backward pass, for DP-SGD's per-example clipping (docs/privacy.md):
//
// - `gradients`: with LoRA, every example's gradient of the trainable slab (adapters and score head) is
//   materialised in the one backward pass ("book-keeping"), row by row through the row→example map, and
//   nothing is summed into the slab's gradients; the caller clips and sums them.
// - `norms`: with full fine-tuning, the backward pass computes no parameter gradient; it reports each
//   trainable layer's inputs and output gradients to an observer, which forms per-example norms without
//   materialising (ghost norms). The head's ∂L/∂logits stay in place, and `clippedBackward` then runs the
//   second, clipped backward from them with each row's output gradients scaled by its example's factor.
//
// Legend: B rows (sequences), T time, R = B·T, E examples, P trainable parameters, C width, V vocabulary,
// N selected LM-head positions.

import Tensors

/// Every example's gradient of the trainable slab, filled by a backward pass in `.gradients` mode.
public final class PerExampleGradients {
    /// Trainable parameters per example (the slab's count).
    public let parameters: Int
    /// Examples the buffer can hold.
    public let capacity: Int
    /// Per-example gradients, rows 0..<examples valid.                                 // (capacity, P)
    public let values: FloatBuffer
    /// Examples of the current batch.
    public private(set) var examples = 0
    /// The example of each batch row.                                                 // (B)
    public private(set) var rowExample: [Int] = []

    public init(parameters: Int, capacity: Int) {
        precondition(parameters > 0 && capacity > 0, "PerExampleGradients: \(capacity) examples of \(parameters) parameters")
        self.parameters = parameters
        self.capacity = capacity
        values = FloatBuffer(count: parameters * capacity)
    }

    /// Prepares for a batch of `examples` examples whose row b belongs to example rowExample[b]: zeroes their rows.
    public func reset(examples: Int, rowExample: [Int]) {
        precondition(examples <= capacity, "PerExampleGradients: \(examples) examples exceed the capacity \(capacity)")
        precondition(rowExample.allSatisfy { $0 >= 0 && $0 < examples }, "PerExampleGradients: a row's example is outside 0..<\(examples)")
        self.examples = examples
        self.rowExample = rowExample
        values.pointer.update(repeating: 0, count: examples * parameters)
    }

    /// Example e's gradient (P).
    @inline(__always) public func row(_ e: Int) -> FloatPtr { values.pointer + e * parameters }
}

/// Receives, during a backward pass in `.norms` mode, what per-example gradient norms of each trainable
/// tensor need. Pointers are valid during the call only (the LM head's until `embedding` returns).
/// Row r of an (R, ·) buffer is position r mod T of batch row r / T.
public protocol PerExampleNormObserver: AnyObject {
    /// A linear layer y = x·Wᵀ, W (out, in): inputs (R, in) and ∂L/∂y (R, out).
    func linear(inputs: ConstFloatPtr, outputGradients: ConstFloatPtr, inFeatures: Int, outFeatures: Int)
    /// An RMSNorm weight w (C) of y = x·rstd ⊙ w: inputs x (R, C), rstd (R), ∂L/∂y (R, C).
    func rmsNorm(inputs: ConstFloatPtr, rstd: ConstFloatPtr, outputGradients: ConstFloatPtr, channels: Int)
    /// The LM head at N selected positions: its inputs (N, C), ∂L/∂logits (N, V), the targets (their rows);
    /// when tied, the same table as the embedding, whose call follows.
    func lmHead(inputs: ConstFloatPtr, logitGradients: ConstFloatPtr, targets: TokenTargets, vocabulary: Int, channels: Int,
                tiedToEmbedding: Bool)
    /// The score head w (C): features (R, C), the flat row of each batch row's last token (B), ∂L/∂score (B).
    func scoreHead(features: ConstFloatPtr, lastRows: [Int], dScores: [Float], channels: Int)
    /// The value heads W (H, C) at N selected positions: features (R, C), each target's flat row (N), ∂L/∂V (N, H).
    func valueHeads(features: ConstFloatPtr, positions: [Int], dValues: [Float], heads: Int, channels: Int)
    /// The embedding table (V, C): token ids (R) and ∂L/∂(embedding output) (R, C).
    func embedding(tokens: [Int32], outputGradients: ConstFloatPtr, channels: Int, vocabulary: Int, tiedToHead: Bool)
}

/// The per-example work of the next backward passes.
public enum PerExampleBackward {
    /// Materialise every example's gradient of the adapters' slab (LoRA only).
    case gradients(PerExampleGradients)
    /// Report layers to the observer and compute no parameter gradient (full fine-tuning, then `clippedBackward`).
    case norms(PerExampleNormObserver)
}

/// What the second, clipped backward needs from a norm pass (the head's ∂L/∂logits stay in its buffer).
struct NormPassState {
    var targets: TokenTargets?
    var dScores: [Float]?
    /// The value heads' positions and ∂L/∂V of the pass.
    var values: (targets: TokenTargets, dValues: [Float])?
}

extension Transformer {
    /// The observer of a norm pass, if that is the mode.
    var perExampleNormObserver: PerExampleNormObserver? {
        if case .norms(let o) = perExample { return o }
        return nil
    }

    /// The per-example gradient buffer, if that is the mode.
    var perExampleGradientBuffer: PerExampleGradients? {
        if case .gradients(let g) = perExample { return g }
        return nil
    }

    /// The second backward of ghost clipping: the last `.norms` pass again, with batch row b's output
    /// gradients scaled by rowFactors[b] (its example's clip factor), accumulating Σ_b c_b ∇ℓ_b into the
    /// gradients. Reuses that pass's ∂L/∂logits in place (rows scaled), so no forward runs again; the model
    /// must not have run forward or `logProbs` in between. Set `perExample` to nil first.
    public func clippedBackward(rowFactors: [Float]) {
        guard let pass = normPass else { preconditionFailure("clippedBackward needs a backward pass in .norms mode before it") }
        precondition(perExample == nil, "clippedBackward computes the clipped sum: set perExample to nil first")
        normPass = nil
        let a = activations!, C = config.hiddenSize, V = config.vocabSize, R = a.batch * a.time
        precondition(rowFactors.count == a.batch, "clippedBackward: \(rowFactors.count) factors for \(a.batch) rows")
        a.dNorm.pointer.update(repeating: 0, count: R * C)
        if let targets = pass.targets {
            let h = head!
            for n in 0..<targets.count {
                let f = rowFactors[targets.sequence[n]], row = h.logits.pointer + n * V
                for v in 0..<V { row[v] *= f }
                // The norm pass overwrote `selected` with its input gradient: take the rows again.
                (h.selected.pointer + n * C).update(from: a.finalNorm.pointer + targets.positions[n] * C, count: C)
            }
            headBackward(targets, weightGradient: true)
        }
        if let d = pass.dScores { scoreBackward(d.enumerated().map { $1 * rowFactors[$0] }) }
        if let (targets, dValues) = pass.values {
            let H = config.valueHeads
            lastValueTargets = targets
            valueHeadBackward(dValues.enumerated().map { $1 * rowFactors[targets.sequence[$0 / H]] }, dNorm: a.dNorm.pointer)
        }
        trunkBackward()
    }
}
