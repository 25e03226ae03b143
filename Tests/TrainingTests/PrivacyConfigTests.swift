// The `dp` section through the loader: a partial section fills its defaults, a typo is refused with the right
// key suggested, a bad value names its key, and σ and q resolve as documented (δ = 1/N, q = expected/N,
// steps = int(epochs / q), σ from the accountant's search).

import XCTest
import Privacy
@testable import Training

final class PrivacyConfigTests: XCTestCase {
    let dataset: [String: Any] = ["schema": "hh-rlhf", "paths": ["data.jsonl.gz"], "evalFraction": 0.1]

    func testPartialSectionAndDefaults() throws {
        let doc: [String: Any] = ["data": ["datasets": [dataset]], "dp": ["epsilon": 4, "accountant": "rdp"]]
        let c = try RunConfigLoader.resolve(document: doc)
        XCTAssertTrue(c.dp.isEnabled)
        XCTAssertEqual(c.dp.epsilon, 4)
        XCTAssertEqual(c.dp.clipNorm, 1, "C defaults to 1")
        XCTAssertEqual(c.dp.noiseMode, .secure, "noise defaults to secure")
        XCTAssertEqual(c.dp.mechanism, .rdp)
        XCTAssertFalse(try RunConfigLoader.resolve(document: ["data": ["datasets": [dataset]]]).dp.isEnabled, "no dp section: not private")
    }

    func testTypoAndBadValuesNameTheKey() {
        func key(_ dp: [String: Any]) -> String? {
            do { _ = try RunConfigLoader.resolve(document: ["data": ["datasets": [dataset]], "dp": dp]); return nil } catch {
                return (error as? RunConfigError)?.key
            }
        }
        XCTAssertEqual(key(["epsilonn": 4]), "dp.epsilonn")
        XCTAssertEqual(key(["epsilon": 4, "noise": "loud"]), "dp.noise")
        XCTAssertEqual(key(["epsilon": 4, "accountant": "moments"]), "dp.accountant")
        XCTAssertEqual(key(["epsilon": 4, "delta": 1.5]), "dp.delta")
        XCTAssertEqual(key(["epsilon": 4, "clip": 0]), "dp.clip")
        XCTAssertEqual(key(["epsilon": 4, "physicalBatchSize": 0]), "dp.physicalBatchSize")
        XCTAssertEqual(key(["epsilon": 4, "sampleRate": 1.5]), "dp.sampleRate")
        XCTAssertEqual(key(["clip": 1]), "dp.epsilon", "a dp key without ε or σ")
        do {
            _ = try RunConfigLoader.resolve(document: ["data": ["datasets": [dataset]], "dp": ["epsilonn": 4]])
        } catch {
            XCTAssertTrue("\(error)".contains("did you mean dp.epsilon"), "\(error)")
        }
    }

    func testPlanResolvesAsDocumented() throws {
        var c = RunConfig()
        c.optimizer.maxSteps = 0
        c.optimizer.epochs = 3
        c.dp.epsilon = 8
        c.dp.accountant = .rdp
        c.dp.expectedBatchSize = 40
        let plan = try PrivacyPlan.resolve(c, datasetSize: 1000)
        XCTAssertEqual(plan.sampleRate, 0.04)
        XCTAssertEqual(plan.delta, 1e-3, "δ = 1/N")
        XCTAssertEqual(plan.steps, 75, "int(3 / 0.04)")
        XCTAssertTrue(plan.derivedNoiseMultiplier)
        let sigma = try NoiseMultiplierSearch.noiseMultiplier(targetEpsilon: 8, delta: 1e-3, sampleRate: 0.04, steps: 75, mechanism: .rdp)
        XCTAssertEqual(plan.noiseMultiplier, sigma, "σ is the accountant's search")
        XCTAssertLessThanOrEqual(plan.plannedEpsilon, 8)
        XCTAssertGreaterThan(plan.plannedEpsilon, 8 - 0.011, "within the search's tolerance of the target")
        // The expected batch defaults to optimizer.globalBatchSize.
        c.dp.expectedBatchSize = nil
        c.optimizer.globalBatchSize = 10
        XCTAssertEqual(try PrivacyPlan.resolve(c, datasetSize: 1000).sampleRate, 0.01)
    }
}
