// LoRA adapters against PEFT (Tests/fixtures/generate_trainer_fixtures.py, lora_peft.safetensors): the
// logits of a tiny Llama with adapters on every projection, the gradient of every adapter, PEFT's saved
// adapter file (key names, shapes, values, config) reproduced by `saveAdapters`, the merged copy equal to
// the adapted model, adapters off equal to the base, and a frozen base that gets no gradient slab.

import Foundation
import XCTest
import Formats
import Models
import Tensors

final class LoRATests: XCTestCase {
    /// Relative to each tensor's largest magnitude (fp32 against fp32 PyTorch).
    static let tolerance = 1e-5

    struct Fixture {
        let file: SafetensorsFile
        let config: ModelConfig
        let batch: TokenBatch
        let promptLengths: [Int]

        init() throws {
            let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/lora_peft.safetensors")
            file = try SafetensorsFile(contentsOf: url)
            let meta = try JSONSerialization.jsonObject(with: Data(file.metadata["config"]!.utf8)) as! [String: Any]
            config = ModelConfig(vocabSize: meta["vocab_size"] as! Int, hiddenSize: meta["hidden_size"] as! Int,
                                 intermediateSize: meta["intermediate_size"] as! Int, numLayers: meta["num_hidden_layers"] as! Int,
                                 numHeads: meta["num_attention_heads"] as! Int, numKVHeads: meta["num_key_value_heads"] as! Int,
                                 ropeTheta: Float(meta["rope_theta"] as! Double), rmsNormEps: Float(meta["rms_norm_eps"] as! Double),
                                 maxPositions: meta["max_position_embeddings"] as! Int, tieWordEmbeddings: true, ropeLayout: .halfSplit)
            let lengths = try file.floats("input.lengths").map { Int($0) }
            let tokens = try file.floats("input.tokens").map { Int32($0) }
            batch = TokenBatch(tokens: tokens, lengths: lengths, length: tokens.count / lengths.count)
            promptLengths = try file.floats("input.prompt_lengths").map { Int($0) }
        }

        /// The base model with adapters attached and set to the fixture's values.
        func adaptedModel() throws -> Transformer {
            let m = try Transformer(config: config, trainable: true)
            for v in m.layout.views { (m.parameters.pointer + v.offset).update(from: try file.floats(v.name), count: v.count) }
            try m.attachAdapters(LoRASettings(rank: 4, alpha: 8))
            let slab = m.adapters!.slab
            for v in slab.views { (slab.values.pointer + v.offset).update(from: try file.floats("lora." + v.name), count: v.count) }
            return m
        }
    }

    func assertClose(_ got: [Float], _ want: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, "\(what): sizes", file: file, line: line)
        let scale = Double(want.map { abs($0) }.max() ?? 1)
        let worst = zip(got, want).map { Double(abs($0 - $1)) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, Self.tolerance * max(scale, 1e-12),
                                 "\(what): max difference \(worst), tolerance \(Self.tolerance) × \(scale)", file: file, line: line)
    }

    /// Logits of the PEFT model at every response position, selected from the fixture's (B, T, V) logits.
    func peftLogits(_ f: Fixture, _ targets: TokenTargets) throws -> [Float] {
        let all = try f.file.floats("output.logits"), V = f.config.vocabSize
        return targets.positions.flatMap { Array(all[($0 * V)..<(($0 + 1) * V)]) }
    }

    func testAdaptedLogitsAndAdapterGradientsMatchPEFT() throws {
        let f = try Fixture()
        let m = try f.adaptedModel()
        XCTAssertNil(m.gradients, "the frozen base has no gradient slab")
        m.forward(f.batch)
        let targets = TokenTargets(responsesOf: f.batch, responseStarts: f.promptLengths)
        let logp = m.logProbs(targets)
        assertClose(Array(m.lastLogits), try peftLogits(f, targets), "logits")
        let loss = -logp.reduce(0.0) { $0 + Double($1) } / Double(logp.count)
        XCTAssertEqual(loss, Double(try f.file.floats("loss")[0]), accuracy: Self.tolerance * abs(loss), "loss")
        m.zeroGradients()
        m.backward(dLogProbs: [Float](repeating: -1 / Float(logp.count), count: logp.count))
        let slab = m.adapters!.slab
        XCTAssertEqual(slab.views.count, 2 * 7 * f.config.numLayers, "A and B of seven projections per block")
        for v in slab.views {
            assertClose(Array(UnsafeBufferPointer(start: slab.gradients.pointer + v.offset, count: v.count)),
                        try f.file.floats("grad." + v.name), "d loss / d \(v.name)")
        }
    }

    func testAdaptersOffIsTheBaseAndMergedCopyIsTheAdaptedModel() throws {
        let f = try Fixture()
        let m = try f.adaptedModel()
        let targets = TokenTargets(responsesOf: f.batch, responseStarts: f.promptLengths)
        m.forward(f.batch)
        let adapted = m.logProbs(targets)
        let base = try Transformer(config: f.config, trainable: false)
        for v in base.layout.views { (base.parameters.pointer + v.offset).update(from: try f.file.floats(v.name), count: v.count) }
        base.forward(f.batch)
        let baseLogp = base.logProbs(targets)
        let off = m.withAdaptersDisabled { () -> [Float] in m.forward(f.batch); return m.logProbs(targets) }
        XCTAssertEqual(off, baseLogp, "adapters off: exactly the base model")
        XCTAssertNotEqual(adapted, baseLogp, "the fixture's adapters change the model")
        let merged = try m.mergedCopy()
        merged.forward(f.batch)
        assertClose(merged.logProbs(targets), adapted, "merged W + s·B·A against the adapted model")
    }

    /// Sampling with the KV cache sees the adapters: the adapted model's sampled tokens and their
    /// log-probs equal those of its merged copy, and differ from the base's (adapters off).
    func testDecodingWithAdaptersIsTheMergedModel() throws {
        let f = try Fixture()
        let m = try f.adaptedModel()
        let merged = try m.mergedCopy()
        let T = f.batch.length
        let prompts = (0..<f.batch.lengths.count).map { b in Array(f.batch.tokens[(b * T)..<(b * T + f.promptLengths[b])]) }
        let options = SamplingOptions(temperature: 1, maxNewTokens: 6, seed: 5)
        let adapted = m.generate(prompts: prompts, options: options, stopTokens: [])
        let reference = merged.generate(prompts: prompts, options: options, stopTokens: [])
        let base = m.withAdaptersDisabled { m.generate(prompts: prompts, options: options, stopTokens: []) }
        XCTAssertEqual(adapted.map(\.tokens), reference.map(\.tokens), "sampled tokens: adapted vs merged copy")
        for (a, r) in zip(adapted, reference) {
            assertClose(a.logProbs, r.logProbs, "sampled tokens' log-probs: adapted vs merged copy")
        }
        XCTAssertNotEqual(adapted.flatMap(\.logProbs), base.flatMap(\.logProbs), "the adapters change what the cache decodes")
    }

    /// `saveAdapters` writes what PEFT's save_pretrained wrote for the same adapters: key names, shapes, values, config.
    func testSavedAdapterDirectoryIsPEFTs() throws {
        let f = try Fixture()
        let m = try f.adaptedModel()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-peft-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try m.saveAdapters(to: dir, baseModel: "tiny")
        let ours = try SafetensorsFile(contentsOf: dir.appendingPathComponent("adapter_model.safetensors"))
        let peftKeys = Set(f.file.entries.keys.filter { $0.hasPrefix("peft.") }.map { String($0.dropFirst(5)) })
        XCTAssertEqual(Set(ours.entries.keys), peftKeys, "PEFT's key names")
        for key in peftKeys.sorted() {
            XCTAssertEqual(ours.entries[key]!.shape, f.file.entries["peft." + key]!.shape, "\(key) shape")
            assertClose(try ours.floats(key), try f.file.floats("peft." + key), key)
        }
        let theirs = try JSONSerialization.jsonObject(with: Data(f.file.metadata["adapter_config"]!.utf8)) as! [String: Any]
        let mine = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        for key in ["peft_type", "task_type", "bias"] { XCTAssertEqual(mine[key] as? String, theirs[key] as? String, key) }
        for key in ["r", "lora_alpha"] { XCTAssertEqual((mine[key] as? NSNumber)?.doubleValue, (theirs[key] as? NSNumber)?.doubleValue, key) }
        XCTAssertEqual(Set(mine["target_modules"] as! [String]), Set(theirs["target_modules"] as! [String]), "target_modules")
    }

    func testPEFTInitialisation() throws {
        let c = ModelConfig(vocabSize: 32, hiddenSize: 64, intermediateSize: 96, numLayers: 1, numHeads: 4, numKVHeads: 2)
        let m = try Transformer(config: c, trainable: true)
        try m.attachAdapters(LoRASettings(rank: 8, alpha: 16, targets: [.q, .down], seed: 42))
        let slab = m.adapters!.slab
        for v in slab.views {
            let values = Array(UnsafeBufferPointer(start: slab.values.pointer + v.offset, count: v.count))
            if v.name.hasSuffix("lora_B.weight") {
                XCTAssertTrue(values.allSatisfy { $0 == 0 }, "\(v.name) starts at zero")
            } else {
                let bound = 1 / Float(v.shape[1]).squareRoot()
                XCTAssertTrue(values.allSatisfy { abs($0) <= bound }, "\(v.name) within ±1/√in")
                XCTAssertGreaterThan(values.map { abs($0) }.max()!, 0.9 * bound, "\(v.name) spans its bound")
            }
        }
        XCTAssertThrowsError(try Transformer(config: c, trainable: true).attachAdapters(LoRASettings(rank: 0, alpha: 16)))
    }
}
