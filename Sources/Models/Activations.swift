// Activation and scratch buffers of one forward/backward, sized for a (B, T) batch.
// Legend: B batch, T time, C width, F MLP features, QKV fused projection, A = NH·HS, NH heads.

import Tensors

/// Buffers saved by the forward pass for the backward pass, one set per block when training;
/// an inference-only model keeps one set and two alternating residual buffers.
final class Activations {
    /// The shape of the current batch; buffers are sized for `rowCapacity` rows and `attentionCapacity`
    /// probabilities, and reused by any batch that fits (no page faults per micro-step).
    var batch: Int, time: Int
    let storedBlocks: Int, rowCapacity: Int, attentionCapacity: Int
    var rows: Int { batch * time }

    /// Whether a (B, T) batch fits these buffers.
    func fits(batch B: Int, time T: Int, heads: Int) -> Bool { B * T <= rowCapacity && B * heads * T * T <= attentionCapacity }

    /// Per stored block.
    struct Block {
        let attentionNorm: FloatBuffer      // (B, T, C)
        let attentionRstd: FloatBuffer      // (B, T)
        let qkv: FloatBuffer                // (B, T, QKV) after rotary
        let probabilities: FloatBuffer      // (B, NH, T, T)
        let attention: FloatBuffer          // (B, T, A)
        let middle: FloatBuffer             // (B, T, C) residual after attention
        let mlpNorm: FloatBuffer            // (B, T, C)
        let mlpRstd: FloatBuffer            // (B, T)
        let gateUp: FloatBuffer             // (B, T, 2F)
        let hidden: FloatBuffer             // (B, T, F)
    }

    let blocks: [Block]
    /// Residual stream entering each block (index l), and after the last block (index L) when training.
    let residuals: [FloatBuffer]            // each (B, T, C)
    let finalNorm: FloatBuffer              // (B, T, C)
    let finalRstd: FloatBuffer              // (B, T)
    var tokens: [Int32]                     // (B, T)
    var lengths: [Int]                      // (B)

    // Backward scratch, shared by all blocks.
    let dResidual: FloatBuffer              // (B, T, C)
    let dNorm: FloatBuffer                  // (B, T, C)
    let dQKV: FloatBuffer                   // (B, T, QKV)
    let dAttention: FloatBuffer             // (B, T, A)
    let dGateUp: FloatBuffer                // (B, T, 2F)
    let dHidden: FloatBuffer                // (B, T, F)

    init(config c: ModelConfig, batch B: Int, time T: Int, training: Bool) {
        batch = B; time = T
        let R = B * T, C = c.hiddenSize, F = c.intermediateSize
        rowCapacity = R
        attentionCapacity = B * c.numHeads * T * T
        storedBlocks = training ? c.numLayers : 1
        blocks = (0..<storedBlocks).map { _ in
            Block(attentionNorm: FloatBuffer(count: R * C), attentionRstd: FloatBuffer(count: R),
                  qkv: FloatBuffer(count: R * c.qkvChannels), probabilities: FloatBuffer(count: B * c.numHeads * T * T),
                  attention: FloatBuffer(count: R * c.attentionChannels), middle: FloatBuffer(count: R * C),
                  mlpNorm: FloatBuffer(count: R * C), mlpRstd: FloatBuffer(count: R),
                  gateUp: FloatBuffer(count: R * 2 * F), hidden: FloatBuffer(count: R * F))
        }
        residuals = (0..<(training ? c.numLayers + 1 : 2)).map { _ in FloatBuffer(count: R * C) }
        finalNorm = FloatBuffer(count: R * C)
        finalRstd = FloatBuffer(count: R)
        tokens = [Int32](repeating: 0, count: R)
        lengths = [Int](repeating: 1, count: B)
        let scratch = training ? R : 0
        dResidual = FloatBuffer(count: scratch * C)
        dNorm = FloatBuffer(count: scratch * C)
        dQKV = FloatBuffer(count: scratch * c.qkvChannels)
        dAttention = FloatBuffer(count: scratch * c.attentionChannels)
        dGateUp = FloatBuffer(count: scratch * 2 * F)
        dHidden = FloatBuffer(count: scratch * F)
    }

    /// Saved buffers of block l.
    func block(_ l: Int) -> Block { blocks[l % storedBlocks] }
    /// Residual stream entering block l (l = L: leaving the last block).
    func residual(_ l: Int) -> FloatBuffer { residuals[l % residuals.count] }
}

/// Buffers of the LM head at N selected positions.
final class HeadBuffers {
    let capacity: Int
    let selected: FloatBuffer               // (N, C) final-normed hidden rows
    let logits: FloatBuffer                 // (N, V), becomes ∂L/∂logits in backward
    let lse: FloatBuffer                    // (N)
    init(positions N: Int, config c: ModelConfig) {
        capacity = N
        selected = FloatBuffer(count: N * c.hiddenSize)
        logits = FloatBuffer(count: N * c.vocabSize)
        lse = FloatBuffer(count: N)
    }
}
