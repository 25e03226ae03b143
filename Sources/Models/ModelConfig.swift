// The shape of a Llama-family transformer, validated before anything is allocated.

import Tensors

/// A configuration error a user can cause: names the field and says what to do.
public struct ModelConfigError: Error, CustomStringConvertible, Equatable {
    public let field: String
    public let message: String
    public var description: String { "invalid model config: \(field): \(message)" }
}

/// The hyper-parameters of a Llama-architecture causal LM (as SmolLM2 uses it).
public struct ModelConfig: Codable, Equatable, Sendable {
    /// V: tokens in the vocabulary.
    public var vocabSize: Int
    /// C: width of the residual stream.
    public var hiddenSize: Int
    /// F: hidden features of the SwiGLU MLP.
    public var intermediateSize: Int
    /// L: transformer blocks.
    public var numLayers: Int
    /// NH: query heads.
    public var numHeads: Int
    /// NKV: key/value heads (grouped-query attention when fewer than NH).
    public var numKVHeads: Int
    /// Rotary base frequency (θ).
    public var ropeTheta: Float
    /// RMSNorm epsilon.
    public var rmsNormEps: Float
    /// Longest sequence the rotary table covers.
    public var maxPositions: Int
    /// The LM head reuses the token embedding matrix.
    public var tieWordEmbeddings: Bool
    /// How the query/key weights pair channels for rotation (GGUF files: interleaved; HF files: halfSplit).
    public var ropeLayout: RotaryLayout
    /// Adds a scalar score head (`score.weight`, 1 × C) for reward and cost models.
    public var scoreHead: Bool
    /// H: value heads on the trunk (`v_head.weight`, H × C), read at every response position: PPO's critic
    /// (1) or PPO-Lagrangian's reward and cost critics (2); 0 for none.
    public var valueHeads: Int

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numLayers: Int, numHeads: Int,
                numKVHeads: Int, ropeTheta: Float = 10_000, rmsNormEps: Float = 1e-5, maxPositions: Int = 2048,
                tieWordEmbeddings: Bool = true, ropeLayout: RotaryLayout = .halfSplit, scoreHead: Bool = false,
                valueHeads: Int = 0) {
        self.vocabSize = vocabSize; self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize
        self.numLayers = numLayers; self.numHeads = numHeads; self.numKVHeads = numKVHeads
        self.ropeTheta = ropeTheta; self.rmsNormEps = rmsNormEps; self.maxPositions = maxPositions
        self.tieWordEmbeddings = tieWordEmbeddings; self.ropeLayout = ropeLayout; self.scoreHead = scoreHead
        self.valueHeads = valueHeads
    }

    /// HS: channels per head.
    public var headSize: Int { hiddenSize / numHeads }
    /// Channels of the fused q | k | v projection.
    public var qkvChannels: Int { (numHeads + 2 * numKVHeads) * headSize }
    /// Channels of the attention output (NH · HS).
    public var attentionChannels: Int { numHeads * headSize }

    /// Checks that the shape can exist; the error says which field to change and how.
    public func validate() throws {
        func fail(_ field: String, _ message: String) -> ModelConfigError { ModelConfigError(field: field, message: message) }
        for (name, value) in [("vocabSize", vocabSize), ("hiddenSize", hiddenSize), ("intermediateSize", intermediateSize),
                              ("numLayers", numLayers), ("numHeads", numHeads), ("numKVHeads", numKVHeads),
                              ("maxPositions", maxPositions)] where value <= 0 {
            throw fail(name, "must be a positive integer, got \(value)")
        }
        if hiddenSize % numHeads != 0 {
            throw fail("numHeads", "\(numHeads) heads do not divide hiddenSize \(hiddenSize); choose a divisor of \(hiddenSize)")
        }
        if numHeads % numKVHeads != 0 {
            throw fail("numKVHeads", "\(numKVHeads) key/value heads do not divide numHeads \(numHeads); choose a divisor of \(numHeads)")
        }
        if headSize % 2 != 0 {
            throw fail("numHeads", "head size \(headSize) (hiddenSize / numHeads) must be even for rotary embeddings")
        }
        if !(ropeTheta > 1) || !ropeTheta.isFinite { throw fail("ropeTheta", "must be a finite number above 1, got \(ropeTheta)") }
        if !(rmsNormEps > 0) || !rmsNormEps.isFinite { throw fail("rmsNormEps", "must be a small positive number such as 1e-5, got \(rmsNormEps)") }
        if valueHeads < 0 || valueHeads > 8 { throw fail("valueHeads", "must be in 0...8 (1 for PPO, 2 for PPO-Lagrangian), got \(valueHeads)") }
        if vocabSize > Int(Int32.max) { throw fail("vocabSize", "\(vocabSize) does not fit 32-bit token ids") }
    }

    /// The small benchmark and test model (5.0M parameters; matches the PyTorch peer's "tiny").
    public static let tiny = ModelConfig(vocabSize: 8192, hiddenSize: 256, intermediateSize: 688, numLayers: 4,
                                         numHeads: 4, numKVHeads: 2, ropeTheta: 10_000, maxPositions: 2048)
    /// SmolLM2-135M's shape (30 blocks, width 576, 9/3 heads, vocab 49152, tied embeddings).
    public static let smollm2_135m = ModelConfig(vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numLayers: 30,
                                                 numHeads: 9, numKVHeads: 3, ropeTheta: 100_000, maxPositions: 8192)

    /// Presets by name, as the command line takes them.
    public static let presets: [String: ModelConfig] = ["tiny": .tiny, "smollm2-135m": .smollm2_135m]
}
