// The whole model against a PyTorch twin (Tests/fixtures/generate_model_fixtures.py): logits, loss,
// every parameter gradient, a DPO loss through the model, a reward head, and five AdamW steps,
// for both rotary layouts and for tied and untied LM heads.

import Foundation
import XCTest
import Formats
import Models
import Tensors
import Training
import Alignment
import TestSupport

/// Tolerances (fp32 against fp32 PyTorch), relative to each tensor's largest magnitude.
enum TwinTolerance {
    static let logits = 1e-5
    static let loss = 1e-5
    static let gradient = 1e-5
    /// Adam divides by √v, so an element whose gradient is near zero moves by up to lr (1e-2 here) whichever
    /// way fp32 rounding tips it: parameters after five steps agree to 3% of one step (3e-4); a wrong bias
    /// correction, decay or clipping shifts most elements by a whole step and fails.
    static let adamParameters = 3e-4
    /// Losses and gradient norms along the five steps.
    static let adamTrajectory = 1e-4
}

struct TwinFixture {
    let file: SafetensorsFile
    let name: String
    let config: ModelConfig

    init(_ name: String, scoreHead: Bool = false) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name).safetensors")
        file = try SafetensorsFile(contentsOf: url)
        self.name = name
        let meta = try JSONSerialization.jsonObject(with: Data(file.metadata["config"]!.utf8)) as! [String: Any]
        config = ModelConfig(vocabSize: meta["vocab_size"] as! Int, hiddenSize: meta["hidden_size"] as! Int,
                             intermediateSize: meta["intermediate_size"] as! Int, numLayers: meta["num_hidden_layers"] as! Int,
                             numHeads: meta["num_attention_heads"] as! Int, numKVHeads: meta["num_key_value_heads"] as! Int,
                             ropeTheta: Float(meta["rope_theta"] as! Double), rmsNormEps: Float(meta["rms_norm_eps"] as! Double),
                             maxPositions: meta["max_position_embeddings"] as! Int,
                             tieWordEmbeddings: file.metadata["tied"] == "true",
                             ropeLayout: file.metadata["rope_layout"] == "interleaved" ? .interleaved : .halfSplit,
                             scoreHead: scoreHead)
    }

    /// A model holding the fixture's parameters (names under `prefix`).
    func model(prefix: String = "") throws -> Transformer {
        let m = try Transformer(config: config)
        for v in m.layout.views {
            let values = try file.floats(prefix + v.name)
            XCTAssertEqual(values.count, v.count, "\(v.name) size")
            (m.parameters.pointer + v.offset).update(from: values, count: v.count)
        }
        return m
    }

    func batch(_ prefix: String) throws -> TokenBatch {
        let tokens = try file.floats(prefix + ".tokens").map { Int32($0) }
        let lengths = try file.floats(prefix + ".lengths").map { Int($0) }
        return TokenBatch(tokens: tokens, lengths: lengths, length: tokens.count / lengths.count)
    }

    func scalar(_ name: String) throws -> Double { Double(try file.floats(name)[0]) }

    /// Compares every parameter gradient of `model` with the fixture's `prefix.<name>`.
    func assertGradients(_ model: Transformer, prefix: String, file f: StaticString = #filePath, line: UInt = #line) throws {
        for v in model.layout.views {
            let got = Array(UnsafeBufferPointer(start: model.gradients!.pointer + v.offset, count: v.count))
            assertTensorClose(got, try file.floats(prefix + v.name), "\(name) \(prefix)\(v.name)",
                              relativeTolerance: TwinTolerance.gradient, file: f, line: line)
        }
    }
}

final class PyTorchTwinTests: MatmulTestCase {
    static let variants = ["llama_tied_halfsplit", "llama_untied_halfsplit", "llama_tied_interleaved", "llama_untied_interleaved"]

    /// Logits at every position (padding included), the LM loss and every parameter gradient.
    func testLogitsLossAndGradients() throws {
        for variant in Self.variants {
            let fx = try TwinFixture(variant)
            let model = try fx.model()
            let batch = try fx.batch("input")
            // Logits at all B·T positions (targets are irrelevant here).
            model.forward(batch)
            var all = TokenTargets()
            all.positions = Array(0..<(batch.batchSize * batch.length))
            all.targets = [Int32](repeating: 0, count: all.positions.count)
            all.sequence = all.positions.map { $0 / batch.length }
            _ = model.logProbs(all)
            assertTensorClose(Array(model.lastLogits), try fx.file.floats("output.logits"), "\(variant) logits",
                              relativeTolerance: TwinTolerance.logits)
            model.zeroGradients()
            let loss = model.languageModelLoss(batch, backward: true)
            assertScalarClose(loss, try fx.scalar("output.loss"), "\(variant) loss", relativeTolerance: TwinTolerance.loss)
            try fx.assertGradients(model, prefix: "grad.")
        }
    }

    /// A DPO loss on sequence log-probs, backpropagated through the whole model.
    func testDPOThroughTheModel() throws {
        for variant in Self.variants {
            let fx = try TwinFixture(variant)
            let model = try fx.model()
            let batch = try fx.batch("dpo")
            let starts = try fx.file.floats("dpo.prompt_lengths").map { Int($0) }
            let ref = try fx.file.floats("dpo.ref_logps").map(Double.init)
            let beta = try fx.scalar("dpo.beta")
            let meanLogps = model.sequenceLogProbs(batch, responseStarts: starts, reduction: .mean)
            assertTensorClose(meanLogps.map(Float.init), try fx.file.floats("dpo.policy_logps_mean"), "\(variant) mean logps",
                              relativeTolerance: TwinTolerance.loss)
            let logps = model.sequenceLogProbs(batch, responseStarts: starts)
            assertTensorClose(logps.map(Float.init), try fx.file.floats("dpo.policy_logps"), "\(variant) sequence logps",
                              relativeTolerance: TwinTolerance.loss)
            let result = preferenceLoss(policyChosen: Array(logps[0..<2]), policyRejected: Array(logps[2..<4]),
                                        referenceChosen: Array(ref[0..<2]), referenceRejected: Array(ref[2..<4]),
                                        config: PreferenceLossConfig(beta: beta, type: .sigmoid))
            assertScalarClose(result.loss, try fx.scalar("dpo.loss"), "\(variant) dpo loss", relativeTolerance: TwinTolerance.loss)
            model.zeroGradients()
            model.backwardSequenceLogProbs(result.dPolicyChosen + result.dPolicyRejected)
            try fx.assertGradients(model, prefix: "dpo_grad.")
        }
    }

    /// The scalar score head (value at the last real token) and a Bradley–Terry loss through the model.
    func testScoreHead() throws {
        let fx = try TwinFixture("llama_tied_halfsplit", scoreHead: true)
        let model = try fx.model()
        let batch = try fx.batch("dpo")
        model.forward(batch)
        let scores = model.scores()
        assertTensorClose(scores, try fx.file.floats("rm.scores"), "rm scores", relativeTolerance: TwinTolerance.logits)
        let s = scores.map(Double.init)
        let rm = rewardModelLoss(better: Array(s[0..<2]), worse: Array(s[2..<4]), regularization: 0)
        assertScalarClose(rm.loss, try fx.scalar("rm.loss"), "rm loss", relativeTolerance: TwinTolerance.loss)
        model.zeroGradients()
        model.backward(dScores: (rm.dBetter + rm.dWorse).map(Float.init))
        try fx.assertGradients(model, prefix: "rm_grad.")
    }

    /// Five AdamW steps with gradient clipping and decoupled weight decay on matrices only.
    func testFiveAdamWSteps() throws {
        for variant in Self.variants {
            let fx = try TwinFixture(variant)
            let model = try fx.model()
            let batch = try fx.batch("input")
            let hp = try JSONSerialization.jsonObject(with: Data(fx.file.metadata["adamw"]!.utf8)) as! [String: Any]
            let lr = Float(hp["lr"] as! Double)
            let betas = hp["betas"] as! [Double]
            let adam = AdamW(parameterCount: model.layout.count,
                             config: AdamWConfig(learningRate: lr, beta1: Float(betas[0]), beta2: Float(betas[1]),
                                                 epsilon: Float(hp["eps"] as! Double), weightDecay: Float(hp["weight_decay_2d"] as! Double)))
            let expectedLosses = try fx.file.floats("adamw.losses"), expectedNorms = try fx.file.floats("adamw.grad_norms")
            for step in 0..<5 {
                model.zeroGradients()
                let loss = model.languageModelLoss(batch, backward: true)
                assertScalarClose(loss, Double(expectedLosses[step]), "\(variant) adamw loss before step \(step)",
                                  relativeTolerance: TwinTolerance.adamTrajectory)
                let norm = clipGradientNorm(model.gradients!.pointer, count: model.layout.count, maxNorm: hp["clip_grad_norm"] as! Double)
                assertScalarClose(norm, Double(expectedNorms[step]), "\(variant) grad norm at step \(step)",
                                  relativeTolerance: TwinTolerance.adamTrajectory)
                adam.update(parameters: model.parameters.pointer, gradients: model.gradients!.pointer, count: model.layout.count,
                            learningRate: lr, decayRanges: model.layout.decayRanges)
            }
            for v in model.layout.views {
                let got = Array(UnsafeBufferPointer(start: model.parameters.pointer + v.offset, count: v.count))
                assertTensorClose(got, try fx.file.floats("adamw.final." + v.name), "\(variant) params after 5 steps: \(v.name)",
                                  relativeTolerance: TwinTolerance.adamParameters)
            }
        }
    }
}
