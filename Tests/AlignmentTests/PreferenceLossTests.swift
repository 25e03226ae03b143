// Tests of the DPO-family preference losses against the closed-form oracles of algorithms.md §5.1–§5.2.

import Foundation
import XCTest
import Alignment

final class PreferenceLossTests: XCTestCase {
    // MARK: Oracles

    /// §5.1: ℓ_θ(yw)=−10, ℓ_θ(yl)=−12, ℓ_ref(yw)=−11, ℓ_ref(yl)=−11.5, β=0.1 ⇒ h = 1.5.
    func testDPOMatchesOracle() throws {
        let config = PreferenceLossConfig(beta: 0.1, type: .sigmoid)
        try config.validate()
        let result = preferenceLoss(policyChosen: [-10], policyRejected: [-12],
                                    referenceChosen: [-11], referenceRejected: [-11.5], config: config)
        assertClose(result.loss, 0.620957, tolerance: 5e-7, "DPO loss")
        assertClose(result.dPolicyChosen[0], -0.0462570, tolerance: 5e-8, "DPO dL/dpolicyChosen")
        assertClose(result.dPolicyRejected[0], 0.0462570, tolerance: 5e-8, "DPO dL/dpolicyRejected")
        assertClose(result.metrics["rewards/chosen"], 0.1, tolerance: 1e-12, "rewards/chosen")
        assertClose(result.metrics["rewards/rejected"], -0.05, tolerance: 1e-12, "rewards/rejected")
        assertClose(result.metrics["rewards/margins"], 0.15, tolerance: 1e-12, "rewards/margins")
        assertClose(result.metrics["rewards/accuracies"], 1, tolerance: 0, "rewards/accuracies")
        assertClose(result.metrics["logps/chosen"], -10, tolerance: 0, "logps/chosen")
        assertClose(result.metrics["logps/rejected"], -12, tolerance: 0, "logps/rejected")
    }

    /// §5.1: conservative DPO with ε = 0.1 on the same pair ⇒ 0.635957.
    func testConservativeDPOMatchesOracle() throws {
        let config = PreferenceLossConfig(beta: 0.1, type: .sigmoid, labelSmoothing: 0.1)
        try config.validate()
        let result = preferenceLoss(policyChosen: [-10], policyRejected: [-12],
                                    referenceChosen: [-11], referenceRejected: [-11.5], config: config)
        assertClose(result.loss, 0.635957, tolerance: 5e-7, "cDPO loss")
        // dL/dh = β(−(1−ε)σ(−βh) + εσ(βh)) with βh = 0.15.
        let z = 0.15
        let expected = 0.1 * (-0.9 / (1 + exp(z)) + 0.1 / (1 + exp(-z)))
        assertClose(result.dPolicyChosen[0], expected, tolerance: 1e-15, "cDPO dL/dpolicyChosen")
        assertClose(result.dPolicyRejected[0], -expected, tolerance: 1e-15, "cDPO dL/dpolicyRejected")
    }

    /// §5.2: ℓ_w=−1.0, ℓ_l=−1.5, ℓ_ref,w=−1.1, ℓ_ref,l=−1.2, β=0.1 ⇒ h = 0.4, L = 21.16, dL/dh = −9.2.
    func testIPOMatchesOracle() throws {
        let config = PreferenceLossConfig(beta: 0.1, type: .ipo)
        try config.validate()
        let result = preferenceLoss(policyChosen: [-1.0], policyRejected: [-1.5],
                                    referenceChosen: [-1.1], referenceRejected: [-1.2], config: config)
        assertClose(result.loss, 21.16, tolerance: 1e-12, "IPO loss")
        assertClose(result.dPolicyChosen[0], -9.2, tolerance: 1e-12, "IPO dL/dpolicyChosen (= dL/dh)")
        assertClose(result.dPolicyRejected[0], 9.2, tolerance: 1e-12, "IPO dL/dpolicyRejected (= −dL/dh)")
    }

    /// Hinge: max(0, 1 − βh) with slope −β while active and 0 once βh ≥ 1.
    func testHingeMatchesClosedForm() throws {
        let config = PreferenceLossConfig(beta: 0.1, type: .hinge)
        try config.validate()
        // Pair 0: h = 1.5 (active, loss 0.85); pair 1: h = 12 (βh = 1.2, inactive).
        let result = preferenceLoss(policyChosen: [-10, -1], policyRejected: [-12, -13],
                                    referenceChosen: [-11, 0], referenceRejected: [-11.5, 0], config: config)
        assertClose(result.loss, (0.85 + 0) / 2, tolerance: 1e-12, "hinge mean loss")
        assertClose(result.dPolicyChosen[0], -0.1 / 2, tolerance: 1e-15, "hinge dL/dpolicyChosen (active pair)")
        assertClose(result.dPolicyRejected[0], 0.1 / 2, tolerance: 1e-15, "hinge dL/dpolicyRejected (active pair)")
        assertClose(result.dPolicyChosen[1], 0, tolerance: 0, "hinge dL/dpolicyChosen (inactive pair)")
        assertClose(result.dPolicyRejected[1], 0, tolerance: 0, "hinge dL/dpolicyRejected (inactive pair)")
    }

    /// Reference-free: the reference terms are 0 (and the reference arrays may be empty).
    func testReferenceFreeIgnoresReference() {
        let config = PreferenceLossConfig(beta: 0.1, type: .sigmoid, referenceFree: true)
        let result = preferenceLoss(policyChosen: [-10], policyRejected: [-12],
                                    referenceChosen: [], referenceRejected: [], config: config)
        // h = 2, βh = 0.2: L = log(1 + e^{−0.2}), dL/dh = −β σ(−0.2).
        assertClose(result.loss, log(1 + exp(-0.2)), tolerance: 1e-15, "reference-free loss")
        assertClose(result.dPolicyChosen[0], -0.1 / (1 + exp(0.2)), tolerance: 1e-15, "reference-free dL/dpolicyChosen")
        assertClose(result.metrics["rewards/chosen"], -1.0, tolerance: 1e-15, "reference-free rewards/chosen = β·ℓ_θ(yw)")
        assertClose(result.metrics["rewards/rejected"], -1.2, tolerance: 1e-15, "reference-free rewards/rejected = β·ℓ_θ(yl)")

        let withIgnoredReference = preferenceLoss(policyChosen: [-10], policyRejected: [-12],
                                                  referenceChosen: [-3], referenceRejected: [-7], config: config)
        assertClose(withIgnoredReference.loss, result.loss, tolerance: 0, "reference-free loss with reference values passed")
    }

    /// The loss is the mean over pairs and each pair's gradient is its single-pair gradient divided by the pair count.
    func testBatchIsMeanOverPairs() {
        let policyChosen = [-10.0, -20.0, -5.5]
        let policyRejected = [-12.0, -18.0, -6.0]
        let referenceChosen = [-11.0, -19.0, -5.0]
        let referenceRejected = [-11.5, -18.5, -7.0]
        for type in PreferenceLossType.allCases {
            let config = PreferenceLossConfig(beta: 0.1, type: type)
            let batch = preferenceLoss(policyChosen: policyChosen, policyRejected: policyRejected,
                                       referenceChosen: referenceChosen, referenceRejected: referenceRejected, config: config)
            var lossSum = 0.0
            for i in 0..<3 {
                let single = preferenceLoss(policyChosen: [policyChosen[i]], policyRejected: [policyRejected[i]],
                                            referenceChosen: [referenceChosen[i]], referenceRejected: [referenceRejected[i]],
                                            config: config)
                lossSum += single.loss
                assertClose(batch.dPolicyChosen[i], single.dPolicyChosen[0] / 3, tolerance: 1e-15,
                            "\(type) batch dL/dpolicyChosen[\(i)] vs single-pair gradient / 3")
                assertClose(batch.dPolicyRejected[i], single.dPolicyRejected[0] / 3, tolerance: 1e-15,
                            "\(type) batch dL/dpolicyRejected[\(i)] vs single-pair gradient / 3")
            }
            assertClose(batch.loss, lossSum / 3, tolerance: 1e-14, "\(type) batch loss vs mean of single-pair losses")
        }
        // Rewards (chosen, rejected) per pair: (0.1, −0.05), (−0.1, 0.05), (−0.05, 0.1), so accuracy is 1/3.
        let metrics = preferenceLoss(policyChosen: policyChosen, policyRejected: policyRejected,
                                     referenceChosen: referenceChosen, referenceRejected: referenceRejected,
                                     config: PreferenceLossConfig(beta: 0.1)).metrics
        assertClose(metrics["rewards/accuracies"], 1.0 / 3, tolerance: 1e-15, "batch rewards/accuracies")
        assertClose(metrics["rewards/chosen"], 0.1 * (1 - 1 - 0.5) / 3, tolerance: 1e-15, "batch rewards/chosen")
        assertClose(metrics["rewards/rejected"], 0.1 * (-0.5 + 0.5 + 1) / 3, tolerance: 1e-15, "batch rewards/rejected")
        assertClose(metrics["logps/chosen"], -35.5 / 3, tolerance: 1e-13, "batch logps/chosen")
        assertClose(metrics["logps/rejected"], -36.0 / 3, tolerance: 1e-13, "batch logps/rejected")
    }

    /// Central finite differences of the mean loss match every analytic gradient, for every loss type.
    func testGradientsMatchFiniteDifferences() {
        let policyChosen = [-10.0, -20.0, -5.5]
        let policyRejected = [-12.0, -18.0, -6.0]
        let referenceChosen = [-11.0, -19.0, -5.0]
        let referenceRejected = [-11.5, -18.5, -7.0]
        let configs = [
            PreferenceLossConfig(beta: 0.1, type: .sigmoid),
            PreferenceLossConfig(beta: 0.3, type: .sigmoid, labelSmoothing: 0.2),
            PreferenceLossConfig(beta: 0.1, type: .ipo),
            PreferenceLossConfig(beta: 0.1, type: .hinge),  // every pair away from the kink βh = 1
            PreferenceLossConfig(beta: 0.1, type: .sigmoid, referenceFree: true),
        ]
        let delta = 1e-5
        let tolerance = 1e-6
        for config in configs {
            let name = "\(config.type) (ε \(config.labelSmoothing), reference-free \(config.referenceFree))"
            func loss(_ chosen: [Double], _ rejected: [Double]) -> Double {
                preferenceLoss(policyChosen: chosen, policyRejected: rejected, referenceChosen: referenceChosen,
                               referenceRejected: referenceRejected, config: config).loss
            }
            let analytic = preferenceLoss(policyChosen: policyChosen, policyRejected: policyRejected,
                                          referenceChosen: referenceChosen, referenceRejected: referenceRejected, config: config)
            for i in 0..<policyChosen.count {
                var up = policyChosen, down = policyChosen
                up[i] += delta
                down[i] -= delta
                let numericChosen = (loss(up, policyRejected) - loss(down, policyRejected)) / (2 * delta)
                assertRelativelyClose(analytic.dPolicyChosen[i], numericChosen, tolerance: tolerance,
                                      "\(name) dL/dpolicyChosen[\(i)] vs finite difference")

                var upRejected = policyRejected, downRejected = policyRejected
                upRejected[i] += delta
                downRejected[i] -= delta
                let numericRejected = (loss(policyChosen, upRejected) - loss(policyChosen, downRejected)) / (2 * delta)
                assertRelativelyClose(analytic.dPolicyRejected[i], numericRejected, tolerance: tolerance,
                                      "\(name) dL/dpolicyRejected[\(i)] vs finite difference")
            }
        }
    }

    /// h = ±1e4 (βh = ±1e3) keeps every loss and gradient finite, with the right asymptotes.
    func testExtremeMarginsStayFinite() {
        for type in PreferenceLossType.allCases {
            for h in [1e4, -1e4] {
                let config = PreferenceLossConfig(beta: 0.1, type: type, labelSmoothing: type == .sigmoid ? 0.1 : 0)
                let result = preferenceLoss(policyChosen: [h], policyRejected: [0],
                                            referenceChosen: [0], referenceRejected: [0], config: config)
                XCTAssertTrue(result.loss.isFinite, "\(type) loss at h = \(h) is \(result.loss); expected finite")
                XCTAssertTrue(result.dPolicyChosen[0].isFinite && result.dPolicyRejected[0].isFinite,
                              "\(type) gradients at h = \(h) are \(result.dPolicyChosen[0]), \(result.dPolicyRejected[0]); expected finite")
            }
        }
        let dpo = PreferenceLossConfig(beta: 0.1, type: .sigmoid)
        let far = preferenceLoss(policyChosen: [1e4], policyRejected: [0], referenceChosen: [0], referenceRejected: [0], config: dpo)
        assertClose(far.loss, 0, tolerance: 1e-300, "DPO loss at βh = 1000")
        let wrong = preferenceLoss(policyChosen: [-1e4], policyRejected: [0], referenceChosen: [0], referenceRejected: [0], config: dpo)
        assertClose(wrong.loss, 1000, tolerance: 1e-12, "DPO loss at βh = −1000 (≈ −βh)")
        assertClose(wrong.dPolicyChosen[0], -0.1, tolerance: 1e-15, "DPO dL/dpolicyChosen at βh = −1000 (≈ −β)")
    }

    // MARK: Validation

    func testValidationRejectsBadConfigurations() {
        assertValidationError(PreferenceLossConfig(beta: 0), .nonPositiveBeta(0), mentions: "beta")
        assertValidationError(PreferenceLossConfig(beta: -0.1), .nonPositiveBeta(-0.1), mentions: "beta")
        XCTAssertThrowsError(try PreferenceLossConfig(beta: .nan).validate(), "beta NaN must be rejected")
        XCTAssertThrowsError(try PreferenceLossConfig(beta: .infinity).validate(), "beta ∞ must be rejected")
        assertValidationError(PreferenceLossConfig(beta: 0.1, labelSmoothing: -0.1), .labelSmoothingOutOfRange(-0.1),
                              mentions: "label smoothing")
        assertValidationError(PreferenceLossConfig(beta: 0.1, labelSmoothing: 0.5), .labelSmoothingOutOfRange(0.5),
                              mentions: "[0, 0.5)")
        assertValidationError(PreferenceLossConfig(beta: 0.1, type: .ipo, labelSmoothing: 0.1),
                              .labelSmoothingRequiresSigmoid(.ipo), mentions: "sigmoid")
        assertValidationError(PreferenceLossConfig(beta: 0.1, type: .hinge, labelSmoothing: 0.1),
                              .labelSmoothingRequiresSigmoid(.hinge), mentions: "sigmoid")
        for type in PreferenceLossType.allCases {
            XCTAssertNoThrow(try PreferenceLossConfig(beta: 0.1, type: type).validate(), "\(type) with β 0.1 is valid")
        }
        XCTAssertNoThrow(try PreferenceLossConfig(beta: 0.5, labelSmoothing: 0.49).validate(), "cDPO ε 0.49 is valid")
    }

    // MARK: Helpers

    private func assertValidationError(_ config: PreferenceLossConfig, _ expected: PreferenceLossConfigError,
                                       mentions phrase: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try config.validate(), "expected \(expected) for \(config)", file: file, line: line) { error in
            XCTAssertEqual(error as? PreferenceLossConfigError, expected, "error for \(config)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(phrase),
                          "message '\(error)' should mention '\(phrase)'", file: file, line: line)
        }
    }

    /// Asserts |actual − expected| ≤ tolerance, naming the quantity, the difference and the tolerance.
    private func assertClose(_ actual: Double?, _ expected: Double, tolerance: Double, _ name: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        guard let actual else {
            XCTFail("\(name): missing (expected \(expected))", file: file, line: line)
            return
        }
        let difference = abs(actual - expected)
        XCTAssertTrue(difference <= tolerance,
                      "\(name): got \(actual), expected \(expected); |difference| \(difference) > absolute tolerance \(tolerance)",
                      file: file, line: line)
    }

    /// Asserts |actual − expected| ≤ tolerance · max(|expected|, 1e-12), naming the quantity and the relative difference.
    private func assertRelativelyClose(_ actual: Double, _ expected: Double, tolerance: Double, _ name: String,
                                       file: StaticString = #filePath, line: UInt = #line) {
        let relative = abs(actual - expected) / max(abs(expected), 1e-12)
        XCTAssertTrue(relative <= tolerance,
                      "\(name): got \(actual), expected \(expected); relative difference \(relative) > relative tolerance \(tolerance)",
                      file: file, line: line)
    }
}
