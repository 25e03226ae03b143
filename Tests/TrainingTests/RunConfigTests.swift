// Run configs: defaults fill what is left out, overrides apply by dotted path, typos and impossible
// values are errors naming the key.

import XCTest
import Training

final class RunConfigTests: XCTestCase {
    let dataset: [String: Any] = ["schema": "hh-rlhf", "paths": ["data.jsonl.gz"], "evalFraction": 0.1]

    func testDefaultsAndOverrides() throws {
        let doc: [String: Any] = ["model": "m.gguf", "data": ["datasets": [dataset], "maxLength": 128, "maxPromptLength": 64], "optimizer": ["maxSteps": 5]]
        let c = try RunConfigLoader.resolve(document: doc, overrides: [("optimizer.learningRate", 1e-4), ("dpo.beta", 0.2)])
        XCTAssertEqual(c.model, "m.gguf")
        XCTAssertEqual(c.data.maxLength, 128)
        XCTAssertEqual(c.data.maxPromptLength, 64)
        XCTAssertEqual(c.optimizer.maxSteps, 5)
        XCTAssertEqual(c.optimizer.learningRate, 1e-4)
        XCTAssertEqual(c.dpo.beta, 0.2)
        XCTAssertEqual(c.optimizer.globalBatchSize, 8, "a default the document left out")
        XCTAssertEqual(c.data.datasets.first?.evalFraction, 0.1)
    }

    func testUnknownKeySuggestsTheRightOne() {
        let doc: [String: Any] = ["data": ["datasets": [dataset]], "optimizer": ["learnigRate": 1e-4]]
        XCTAssertThrowsError(try RunConfigLoader.resolve(document: doc, source: "run.yaml")) { error in
            let e = error as! RunConfigError
            XCTAssertEqual(e.key, "optimizer.learnigRate")
            XCTAssertTrue(e.description.contains("did you mean optimizer.learningRate"), e.description)
            XCTAssertTrue(e.description.contains("run.yaml"), e.description)
        }
    }

    func testImpossibleValuesNameTheKey() {
        func key(_ doc: [String: Any], _ overrides: [(path: String, value: Any)] = []) -> String? {
            do { _ = try RunConfigLoader.resolve(document: doc, overrides: overrides); return nil } catch { return (error as? RunConfigError)?.key }
        }
        let base: [String: Any] = ["data": ["datasets": [dataset]]]
        XCTAssertEqual(key([:]), "data.datasets", "no dataset")
        XCTAssertEqual(key(base, [("optimizer.learningRate", -1.0)]), "optimizer.learningRate")
        XCTAssertEqual(key(base, [("data.maxPromptLength", 600)]), "data.maxPromptLength", "prompt longer than the sequence")
        XCTAssertEqual(key(base, [("data.template", "alpaca")]), "data.template")
        XCTAssertEqual(key(base, [("dpo.beta", 0.0)]), "dpo")
        XCTAssertEqual(key(base, [("optimizer.maxSteps", "many")]), "optimizer.maxSteps", "a string where a number belongs")
        XCTAssertEqual(key(base, [("distributed.oobKeepaliveProbes", 0)]), "distributed.oobKeepalive*")
        XCTAssertEqual(key(base, [("distributed.matmulBackend", "mkl")]), "distributed.matmulBackend", "an unknown matrix backend")
    }

    /// The matrix backend is a known key, accepted by name or "auto", and (like threads) outside the
    /// training hash: a resumed run may change it.
    func testMatmulBackendKey() throws {
        let doc: [String: Any] = ["data": ["datasets": [dataset]]]
        let a = try RunConfigLoader.resolve(document: doc)
        XCTAssertNil(a.distributed.matmulBackend, "default: chosen from the processor")
        for name in ["openblas", "onednn", "blis", "auto"] {
            let c = try RunConfigLoader.resolve(document: doc, overrides: [("distributed.matmulBackend", name)])
            XCTAssertEqual(c.distributed.matmulBackend, name)
            XCTAssertEqual(c.trainingHash, a.trainingHash, "distributed.matmulBackend = \(name) must not change the training hash")
        }
    }

    func testTrainingHashIgnoresOutputAndCheckpointSettings() throws {
        let doc: [String: Any] = ["data": ["datasets": [dataset]]]
        let a = try RunConfigLoader.resolve(document: doc)
        let b = try RunConfigLoader.resolve(document: doc, overrides: [("outputDir", "elsewhere"), ("checkpoint.every", 7)])
        let c = try RunConfigLoader.resolve(document: doc, overrides: [("optimizer.learningRate", 3e-6)])
        XCTAssertEqual(a.trainingHash, b.trainingHash)
        XCTAssertNotEqual(a.trainingHash, c.trainingHash)
    }
}
