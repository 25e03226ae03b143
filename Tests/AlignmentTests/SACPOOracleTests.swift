// SACPO (algorithms.md §2.4): realigning the reward-optimal policy π_r with reference π_r and
// coefficient β/λ* reaches the joint constrained optimum π* of CAN Oracle A; P-SACPO's weight merge.

import XCTest
import Foundation

final class SACPOOracleTests: XCTestCase {
    // Oracle A (§1.7): one prompt, three responses.
    let piRef = [0.5, 0.3, 0.2]
    let r = [1.0, 2.0, 0.5]
    let g = [0.5, -1.0, 1.5]
    let beta = 0.5
    let lambdaStar = 0.794176

    /// The KL-regularised optimum π ∝ reference · exp(u / coefficient), normalised.
    func tilt(_ reference: [Double], _ u: [Double], coefficient: Double) -> [Double] {
        let logits = zip(reference, u).map { log($0) + $1 / coefficient }
        let m = logits.max()!
        let e = logits.map { exp($0 - m) }
        let z = e.reduce(0, +)
        return e.map { $0 / z }
    }

    func assertClose(_ a: [Double], _ b: [Double], _ tol: Double, _ message: String, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, line: line)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: tol, message, line: line) }
    }

    func testStepwiseRealignmentEqualsJointOptimum() {
        // Step 1: reward-only alignment from π_ref with β.
        let piR = tilt(piRef, r, coefficient: beta)
        assertClose(piR, [0.179193, 0.794439, 0.0263685], 5e-7, "π_r")
        // Step 2: safety realignment with reference π_r and coefficient β/λ.
        XCTAssertEqual(beta / lambdaStar, 0.629584, accuracy: 1e-6)   // λ* is given to 6 s.f.
        let stepwise = tilt(piR, g, coefficient: beta / lambdaStar)
        let expected = [0.469552, 0.192179, 0.338269]
        assertClose(stepwise, expected, 5e-7, "π_r · exp(λ g / β)")
        // Theorem 1: equal to the joint optimum π_ref · exp((r + λ g)/β), for any λ.
        for lambda in [0.0, 0.3, lambdaStar, 2.5] {
            let joint = tilt(piRef, zip(r, g).map { $0 + lambda * $1 }, coefficient: beta)
            let twoStep = lambda == 0 ? piR : tilt(piR, g, coefficient: beta / lambda)
            assertClose(twoStep, joint, 1e-12, "λ = \(lambda)")
        }
        assertClose(tilt(piRef, zip(r, g).map { $0 + lambdaStar * $1 }, coefficient: beta), expected, 5e-7, "joint π*")
        // Any constant shift of g (a threshold) cancels; the order of the two steps does not matter (Remark 2).
        assertClose(tilt(piR, g.map { $0 - 0.55 }, coefficient: beta / lambdaStar), stepwise, 1e-12, "shifted g")
        let safetyFirst = tilt(tilt(piRef, g, coefficient: beta / lambdaStar), r, coefficient: beta)
        assertClose(safetyFirst, stepwise, 1e-12, "safety first")
        // π* satisfies the constraint of Oracle A with equality: E*[g] = E_ref[g] + b = 0.55.
        XCTAssertEqual(zip(stepwise, g).map(*).reduce(0, +), 0.55, accuracy: 1e-5)
    }

    func testPSACPOMergeOracle() {
        let thetaR: [Float] = [1, -2, 0.5], thetaS: [Float] = [0, 1, 1.5], q: Float = 0.25
        let merged = zip(thetaR, thetaS).map { (1 - q) * $0 + q * $1 }
        XCTAssertEqual(merged, [0.75, -1.25, 0.75])
    }
}
