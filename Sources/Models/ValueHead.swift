// Value heads: H linear critics on the trunk, read at every response position (PPO's value function;
// PPO-Lagrangian's reward and cost critics). Like TRL's value head and Safe-RLHF's critics, a head reads the
// final-normed hidden state at the position whose logits emit a response token, so V_t is the value of the
// state before token t. No bias, as the score layer of TRL's current value model.
// Legend: N selected positions (response-token targets), H heads, C width.
//
// forward:   V[n, h] = Σ_c x[p_n, c] · W[h, c]          (x = final-normed hidden states)
// backward:  dx[p_n, :] += Σ_h dV[n, h] · W[h, :];  dW[h, :] += Σ_n dV[n, h] · x[p_n, :]

import Tensors

extension Transformer {
    /// The value heads' weights (H, C): in the adapters' slab when adapters are attached.
    var valueWeight: FloatPtr? {
        if let a = adapters, let o = a.valueOffset { return a.slab.values.pointer + o }
        return layout.valueHead.map { w($0) }
    }

    /// The value heads' gradient (H, C), nil when they are not trained.
    var valueGradient: FloatPtr? {
        if let a = adapters, let o = a.valueOffset { return a.slab.gradients.pointer + o }
        return layout.valueHead.flatMap { g($0) }
    }

    /// The value heads at the positions of `targets` after a `forward`: V[n·H + h] for target n, head h.  // (N, H)
    public func values(_ targets: TokenTargets) -> [Float] {
        guard let weight = valueWeight else { preconditionFailure("values() needs a model with valueHeads ≥ 1") }
        let a = activations!, C = config.hiddenSize, H = config.valueHeads
        var out = [Float](repeating: 0, count: targets.count * H)
        for (n, p) in targets.positions.enumerated() {
            let row = a.finalNorm.pointer + p * C
            for h in 0..<H { out[n * H + h] = VectorMath.dot(row, weight + h * C, count: C) }
        }
        lastValueTargets = targets
        return out
    }

    /// Backward of `values`: adds ∂L/∂x into `dNorm` (B·T, C) and ∂L/∂W into the heads' gradient — or, in a
    /// per-example pass, into each target's example's row of the per-example buffer (LoRA), or reports the heads
    /// to the norm observer and takes no weight gradient (full fine-tuning).
    func valueHeadBackward(_ dValues: [Float], dNorm: FloatPtr) {
        guard let weight = valueWeight, let targets = lastValueTargets else { preconditionFailure("value-head backward without values()") }
        let a = activations!, C = config.hiddenSize, H = config.valueHeads
        precondition(dValues.count == targets.count * H, "dValues has \(dValues.count) values for \(targets.count) positions × \(H) heads")
        let observer = perExampleNormObserver, perExampleBuffer = perExampleGradientBuffer
        let gradient = observer == nil && perExampleBuffer == nil ? valueGradient : nil
        for (n, p) in targets.positions.enumerated() {
            let row = a.finalNorm.pointer + p * C, d = dNorm + p * C
            // (H, C) of this target's example in the per-example buffer.
            let exampleGradient = perExampleBuffer.map { $0.row($0.rowExample[targets.sequence[n]]) + adapters!.valueOffset! }
            for h in 0..<H {
                let dv = dValues[n * H + h]
                guard dv != 0 else { continue }
                let wh = weight + h * C
                for c in 0..<C { d[c] += dv * wh[c] }
                if let gh = gradient.map({ $0 + h * C }) { for c in 0..<C { gh[c] += dv * row[c] } }
                if let eh = exampleGradient.map({ $0 + h * C }) { for c in 0..<C { eh[c] += dv * row[c] } }
            }
        }
        observer?.valueHeads(features: a.finalNorm.pointer, positions: targets.positions, dValues: dValues, heads: H, channels: C)
        lastValueTargets = nil
    }

    /// Fills value heads that a file does not provide with zeros: a fresh critic predicts 0 and sends no
    /// gradient into the trunk until its head has learned something.
    func initializeValueHeads() {
        guard let v = layout.valueHead else { return }
        (parameters.pointer + v).update(repeating: 0, count: config.valueHeads * config.hiddenSize)
    }
}
