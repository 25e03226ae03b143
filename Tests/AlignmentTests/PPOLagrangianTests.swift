// Tests of the PPO-Lagrangian glue (episode-cost window, λ steps and history, advantage mix) against
// algorithms.md §5.5 and of its checkpoint round trip.

import Foundation
import XCTest
import Alignment

final class PPOLagrangianTests: XCTestCase {
    /// §5.5: λ0 = 1, J_C = 0.5, d = 0, lr = 0.1 ⇒ λ1 = e^0.05 = 1.05127, λ2 = 1.10801; at λ1, A_R = 0.6, A_C = 0.9 ⇒
    /// A = −0.168746.
    func testOracleThroughTheWindow() throws {
        var state = try PPOLagrangian(multiplier: try LagrangeMultiplierUpdate(), windowSize: 4)
        let first = try state.step(episodeCosts: [0.5, 0.5])
        assertClose(first.episodeCost, 0.5, tolerance: 0, "J_C at step 1")
        assertClose(first.lambda, 1.05127, tolerance: 5e-6, "λ1")
        let advantages = try state.advantages(reward: [0.6, 0.6], cost: [0.9, 0.9])
        assertClose(advantages[0], -0.168746, tolerance: 5e-7, "A = (A_R − λ1·A_C)/(1 + λ1)")
        let second = try state.step(episodeCosts: [0.5])
        assertClose(second.lambda, 1.10801, tolerance: 5e-6, "λ2")
        XCTAssertEqual(state.history.map(\.step), [1, 2], "one history record per step")
        XCTAssertEqual(state.history.last?.lambda, state.lambda)
    }

    /// J_C is the mean of the LAST `capacity` costs: older costs fall out in order.
    func testWindowKeepsTheLastCosts() throws {
        var window = try EpisodeCostWindow(capacity: 3)
        XCTAssertThrowsError(try window.mean(), "an empty window has no mean")
        try window.append(contentsOf: [10, 20])
        assertClose(try window.mean(), 15, tolerance: 0, "mean of two")
        try window.append(contentsOf: [30, 40, 50])
        XCTAssertEqual(window.costs, [30, 40, 50], "the three newest, oldest first")
        XCTAssertEqual(window.totalAppended, 5)
        assertClose(try window.mean(), 40, tolerance: 0, "mean of the last three")
        XCTAssertThrowsError(try window.append(contentsOf: [1, .nan])) { error in
            XCTAssertTrue("\(error)".contains("episode costs[1] is nan"), "error names the field and index: \(error)")
        }
        XCTAssertEqual(window.costs, [30, 40, 50], "a rejected append changes nothing")
        XCTAssertThrowsError(try EpisodeCostWindow(capacity: 0))
    }

    /// With a window, the λ update reacts to the recent costs only: a constraint met by the last `window`
    /// episodes lowers λ even though the earliest episodes violated it.
    func testLambdaFollowsTheWindowMean() throws {
        var state = try PPOLagrangian(multiplier: try LagrangeMultiplierUpdate(learningRate: 0.5, threshold: 0), windowSize: 2)
        try state.step(episodeCosts: [3, 3])
        let raised = state.lambda
        XCTAssertGreaterThan(raised, 1, "costs above d raise λ")
        let record = try state.step(episodeCosts: [-1, -1])
        assertClose(record.episodeCost, -1, tolerance: 0, "only the newest two costs count")
        assertClose(state.lambda, raised * exp(0.5 * -1 * raised), tolerance: 1e-12, "log λ ← log λ + lr·(J_C − d)·λ")
    }

    /// The whole state encodes and decodes; the decoded copy continues bit-identically.
    func testStateResumesExactly() throws {
        var running = try PPOLagrangian(multiplier: try LagrangeMultiplierUpdate(learningRate: 0.2, threshold: 0.1, delaySteps: 1),
                                        windowSize: 3)
        let batches: [[Double]] = [[0.9, 0.2], [0.4], [1.5, -0.3, 0.8], [0.0], [2.0, 2.0]]
        for costs in batches.prefix(2) { try running.step(episodeCosts: costs) }
        let saved = try JSONEncoder().encode(running)
        var resumed = try JSONDecoder().decode(PPOLagrangian.self, from: saved)
        XCTAssertEqual(resumed, running, "decoded state equals the saved one")
        for costs in batches.dropFirst(2) {
            try running.step(episodeCosts: costs)
            try resumed.step(episodeCosts: costs)
        }
        XCTAssertEqual(resumed.lambda, running.lambda, "λ after resume (bit-identical)")
        XCTAssertEqual(resumed.history, running.history, "λ history after resume")
        XCTAssertEqual(running.history[0].lambda, 1, "λ held during the one-step delay")
    }

    func testAdvantageMixRejectsBadInput() throws {
        let state = try PPOLagrangian(multiplier: try LagrangeMultiplierUpdate())
        XCTAssertThrowsError(try state.advantages(reward: [1, 2], cost: [1])) { error in
            XCTAssertEqual(error as? PolicyGradientError,
                           .lengthMismatch(function: "PPO-Lagrangian advantages", field: "cost advantages", count: 1, expected: 2))
        }
        XCTAssertThrowsError(try state.advantages(reward: [.nan], cost: [1]))
        // At λ = 1 the mix is (A_R − A_C)/2.
        XCTAssertEqual(try state.advantages(reward: [3, 1], cost: [1, 2]), [1, -0.5])
    }

    private func assertClose(_ actual: Double, _ expected: Double, tolerance: Double, _ name: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(abs(actual - expected) <= tolerance,
                      "\(name): got \(actual), expected \(expected), |diff| \(abs(actual - expected)) > tolerance \(tolerance)",
                      file: file, line: line)
    }
}
