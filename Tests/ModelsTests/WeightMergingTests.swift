// Linear weight merging: the elementwise formula, identity merges, rotary-layout conversion, and
// errors that name the mismatched tensor.

import XCTest
import Foundation
import Models
import Tensors

final class WeightMergingTests: XCTestCase {
    func config(intermediate: Int = 32, layout: RotaryLayout = .halfSplit, scoreHead: Bool = false, tied: Bool = false) -> ModelConfig {
        ModelConfig(vocabSize: 64, hiddenSize: 16, intermediateSize: intermediate, numLayers: 2, numHeads: 4, numKVHeads: 2,
                    maxPositions: 32, tieWordEmbeddings: tied, ropeLayout: layout, scoreHead: scoreHead)
    }

    func randomModel(seed: UInt64, _ c: ModelConfig? = nil) throws -> Transformer {
        let m = try Transformer(config: c ?? config(), trainable: false)
        m.initializeRandomly(seed: seed, std: 0.2)
        // Norm weights start at 1 in every model; make them differ too.
        var rng = SplitMix64(seed: seed &+ 99)
        for v in m.layout.views where v.shape.count == 1 {
            for i in 0..<v.count { m.parameters.pointer[v.offset + i] = 1 + 0.1 * rng.nextGaussian() }
        }
        return m
    }

    func slab(_ m: Transformer) -> [Float] { Array(UnsafeBufferPointer(start: m.parameters.pointer, count: m.layout.count)) }

    /// Every logit of every position of a fixed batch.
    func logits(_ m: Transformer) -> [Float] {
        let batch = TokenBatch(sequences: [[1, 5, 9, 33, 2, 60, 7], [3, 4, 44]])
        m.forward(batch)
        var all = TokenTargets()
        all.positions = Array(0..<(batch.batchSize * batch.length))
        all.targets = [Int32](repeating: 0, count: all.positions.count)
        all.sequence = all.positions.map { $0 / batch.length }
        _ = m.logProbs(all)
        return Array(m.lastLogits)
    }

    func testMergeOfTwoModelsIsTheElementwiseFormulaExactly() throws {
        let a = try randomModel(seed: 1), b = try randomModel(seed: 2)
        for w in [[Float(0.75), 0.25], [0.5, 0.5], [0.1, 0.9]] {
            let m = try WeightMerging.merge([a, b], weights: w)
            let (pa, pb) = (slab(a), slab(b))
            let expected = (0..<pa.count).map { w[0] * pa[$0] + w[1] * pb[$0] }
            XCTAssertEqual(slab(m), expected, "weights \(w)")
            XCTAssertEqual(m.config, a.config)
        }
        // Three models, unnormalised weights (task arithmetic style) when allowed.
        let c = try randomModel(seed: 3)
        let m = try WeightMerging.merge([a, b, c], weights: [1, -0.5, 0.75], allowUnnormalized: true)
        let (pa, pb, pc) = (slab(a), slab(b), slab(c))
        XCTAssertEqual(slab(m), (0..<pa.count).map { 1 * pa[$0] + -0.5 * pb[$0] + 0.75 * pc[$0] })
    }

    func testMergingAModelWithItselfReturnsIt() throws {
        let a = try randomModel(seed: 7, config(scoreHead: true))
        XCTAssertEqual(slab(try WeightMerging.merge([a, a], weights: [0.5, 0.5])), slab(a))
        XCTAssertEqual(slab(try WeightMerging.merge([a, a], weights: [1, 0])), slab(a))
        let pa = slab(a)
        let m = slab(try WeightMerging.merge([a, a, a], weights: [0.75, 0.125, 0.125]))
        for i in pa.indices { XCTAssertEqual(m[i], pa[i], accuracy: 2 * pa[i].ulp, "element \(i)") }
    }

    func testMergeWithRotaryConvertedTwinKeepsLogits() throws {
        let original = try randomModel(seed: 11, config(layout: .interleaved))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("merge-twin-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try original.saveHuggingFace(to: dir)
        let twin = try Transformer.load(huggingFaceDirectory: dir, trainable: false)
        XCTAssertEqual(twin.config.ropeLayout, .halfSplit)
        XCTAssertNotEqual(slab(twin), slab(original), "the twin's q/k rows should be permuted")
        let reference = logits(original)

        let merged = try WeightMerging.merge([original, twin], weights: [0.5, 0.5])
        XCTAssertEqual(merged.config.ropeLayout, .interleaved)
        XCTAssertEqual(slab(merged), slab(original))
        XCTAssertEqual(logits(merged), reference)

        // In the twin's layout: same function, rotary applied in the other channel order.
        let other = try WeightMerging.merge([twin, original], weights: [0.25, 0.75])
        XCTAssertEqual(other.config.ropeLayout, .halfSplit)
        for (x, y) in zip(logits(other), reference) { XCTAssertEqual(x, y, accuracy: 1e-5) }
    }

    func testMismatchedShapesNameTheTensor() throws {
        let a = try randomModel(seed: 1), wide = try randomModel(seed: 2, config(intermediate: 48))
        XCTAssertThrowsError(try WeightMerging.merge([a, wide], weights: [0.5, 0.5], names: ["a.gguf", "wide.gguf"])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("model.layers.0.mlp.gate_proj.weight"), text)
            XCTAssertTrue(text.contains("wide.gguf") && text.contains("[48, 16]") && text.contains("[32, 16]"), text)
        }
        let scored = try randomModel(seed: 3, config(scoreHead: true))
        XCTAssertThrowsError(try WeightMerging.merge([a, scored], weights: [0.5, 0.5])) { error in
            XCTAssertTrue("\(error)".contains("score.weight"), "\(error)")
        }
        let tied = try randomModel(seed: 4, config(tied: true))
        XCTAssertThrowsError(try WeightMerging.merge([a, tied], weights: [0.5, 0.5])) { error in
            XCTAssertTrue("\(error)".contains("lm_head.weight"), "\(error)")
        }
    }

    func testWeightsMustMatchAndSumToOne() throws {
        let a = try randomModel(seed: 1), b = try randomModel(seed: 2)
        XCTAssertThrowsError(try WeightMerging.merge([a, b], weights: [0.75, 0.5])) { error in
            XCTAssertTrue("\(error)".contains("--allow-unnormalized"), "\(error)")
        }
        XCTAssertThrowsError(try WeightMerging.merge([a, b], weights: [1])) { error in
            XCTAssertTrue("\(error)".contains("2 models but 1 weights"), "\(error)")
        }
        XCTAssertThrowsError(try WeightMerging.merge([a, b], weights: [.nan, 1]))
        XCTAssertNoThrow(try WeightMerging.merge([a, b], weights: [0.75, 0.5], allowUnnormalized: true))
    }
}
