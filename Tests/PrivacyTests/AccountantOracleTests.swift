// Opacus' own accountant test cases (opacus/tests/accountants_test.py; ppo-dp.md §3, algorithms.md §3.4),
// the RDP edge cases, and the noise-multiplier search.

import Foundation
import XCTest
import TestSupport
@testable import Privacy

/// Asserts |actual − expected| ≤ tolerance, naming the quantity.
func assertAbsolute(_ actual: Double, _ expected: Double, _ tolerance: Double, _ name: String,
                    file: StaticString = #filePath, line: UInt = #line) {
    let diff = abs(actual - expected)
    if !(diff <= tolerance) {
        XCTFail("\(name): got \(actual), expected \(expected), |diff| \(diff) exceeds \(tolerance)", file: file, line: line)
    }
}

final class AccountantOracleTests: XCTestCase {
    private let sigma = 1.5, q = 0.04, delta = 1e-5

    func testRDPOpacusCase() throws {
        var accountant = RDPAccountant()
        let steps = try NoiseMultiplierSearch.steps(epochs: 90, sampleRate: q)
        XCTAssertEqual(steps, 2250, "int(90 / 0.04)")
        for _ in 0..<steps { try accountant.step(noiseMultiplier: sigma, sampleRate: q) }
        XCTAssertEqual(accountant.history, [PrivacySegment(noiseMultiplier: sigma, sampleRate: q, steps: 2250)],
                       "equal consecutive steps extend one segment")
        let (epsilon, order) = try accountant.privacySpent(delta: delta)
        assertScalarClose(epsilon, 7.32911117143, "RDP ε (σ 1.5, q 0.04, 2250 steps)", relativeTolerance: 1e-6)
        XCTAssertEqual(order, 3.9, "best α")
    }

    func testRDPAfterRestoringHistoryAtStep1250() throws {
        var first = RDPAccountant()
        for _ in 0..<1250 { try first.step(noiseMultiplier: sigma, sampleRate: q) }
        let data = try JSONEncoder().encode(first)
        var resumed = try JSONDecoder().decode(RDPAccountant.self, from: data)
        XCTAssertEqual(resumed.history, first.history, "restored history")
        for _ in 1250..<2250 { try resumed.step(noiseMultiplier: sigma, sampleRate: q) }
        assertScalarClose(try resumed.epsilon(delta: delta), 7.32911117143, "RDP ε after resume at 1250",
                          relativeTolerance: 1e-6)
    }

    func testCompositeRDPDocstringCase() throws {
        let accountant = try RDPAccountant(history: [
            PrivacySegment(noiseMultiplier: 1.0, sampleRate: 1e-5, steps: 10),
            PrivacySegment(noiseMultiplier: 3.0, sampleRate: 1e-4, steps: 4),
        ], orders: (2...32).map(Double.init))
        let (epsilon, order) = try accountant.privacySpent(delta: 1e-5)
        assertScalarClose(epsilon, 0.336344, "composite RDP ε (docstring 0.336; Opacus run 0.336344)", relativeTolerance: 2e-6)
        XCTAssertEqual(order, 23, "best α of the composite history")
    }

    func testPRVOpacusCase() throws {
        let accountant = try PRVAccountant(history: [PrivacySegment(noiseMultiplier: sigma, sampleRate: q, steps: 2249)])
        let bounds = try accountant.epsilonBounds(delta: delta)
        // Opacus asserts 7 places against 6.777395712150674; its stated error is eps_error = 0.01.
        assertAbsolute(bounds.upper, 6.777395712150674, 1e-7, "PRV ε (σ 1.5, q 0.04, 2249 steps)")
        // upper = ε(δ − δ_err) + eps_error ≥ estimate + eps_error, lower = ε(δ + δ_err) − eps_error ≤ estimate − eps_error.
        XCTAssertGreaterThanOrEqual(bounds.upper - bounds.estimate, 0.01, "upper bound − estimate ≥ eps_error")
        XCTAssertGreaterThanOrEqual(bounds.estimate - bounds.lower, 0.01, "estimate − lower bound ≥ eps_error")
        XCTAssertLessThan(bounds.upper - bounds.lower, 0.05, "bounds within a few eps_error of each other")
    }

    func testGDPOpacusCase() throws {
        let accountant = try GDPAccountant(history: [PrivacySegment(noiseMultiplier: sigma, sampleRate: q, steps: 2249)])
        let epsilon = try accountant.epsilon(delta: delta)
        XCTAssert(epsilon > 6.59 && epsilon < 6.6, "GDP ε = \(epsilon), expected in (6.59, 6.6)")
        // ε solves the duality: δ(ε; μ) = δ with μ = q·√(T(e^{1/σ²} − 1)).
        let mu = q * (2249 * (exp(1 / (sigma * sigma)) - 1)).squareRoot()
        assertScalarClose(accountant.mu, mu, "μ", relativeTolerance: 1e-14)
        assertScalarClose(GDPAccountant.delta(epsilon: epsilon, mu: mu), delta, "δ(ε)", relativeTolerance: 1e-9)
    }

    func testGDPSegmentsComposeAsMuGDP() throws {
        let a = PrivacySegment(noiseMultiplier: 1.0, sampleRate: 0.01, steps: 1000)
        let b = PrivacySegment(noiseMultiplier: 2.0, sampleRate: 0.05, steps: 300)
        let both = try GDPAccountant(history: [a, b])
        let mu = (pow(GDPAccountant.mu(a), 2) + pow(GDPAccountant.mu(b), 2)).squareRoot()
        assertScalarClose(both.mu, mu, "μ of two segments = √(μ₁² + μ₂²)", relativeTolerance: 1e-14)
        // One segment split in two at the same σ, q is the same mechanism.
        let split = try GDPAccountant(history: [a, PrivacySegment(noiseMultiplier: 2.0, sampleRate: 0.01, steps: 0), a])
        let whole = try GDPAccountant(history: [PrivacySegment(noiseMultiplier: 1.0, sampleRate: 0.01, steps: 2000)])
        assertScalarClose(try split.epsilon(delta: 1e-5), try whole.epsilon(delta: 1e-5), "GDP ε, split vs whole",
                          relativeTolerance: 1e-12)
    }

    func testRDPEdgeCases() {
        XCTAssertEqual(RDPAnalysis.rdp(sampleRate: 0, noiseMultiplier: 1, order: 3.5), 0, "q = 0 → 0")
        XCTAssertEqual(RDPAnalysis.rdp(sampleRate: 0.1, noiseMultiplier: 0, order: 3.5), .infinity, "σ = 0 → ∞")
        assertScalarClose(RDPAnalysis.rdp(sampleRate: 1, noiseMultiplier: 2, order: 3.5), 3.5 / 8, "q = 1 → α/(2σ²)",
                          relativeTolerance: 1e-15)
        // For q → 1 both series approach the Gaussian mechanism's α/(2σ²).
        assertScalarClose(RDPAnalysis.rdp(sampleRate: 1 - 1e-9, noiseMultiplier: 2, order: 5), 5.0 / 8,
                          "integer α, q → 1", relativeTolerance: 1e-6)
        assertScalarClose(RDPAnalysis.rdp(sampleRate: 1 - 1e-9, noiseMultiplier: 2, order: 4.5), 4.5 / 8,
                          "fractional α, q → 1", relativeTolerance: 1e-6)
        // α = 2 has the closed form log(1 + q²(e^{1/σ²} − 1)).
        let closed = log(1 + 0.01 * 0.01 * (exp(1.0) - 1))
        assertScalarClose(RDPAnalysis.rdp(sampleRate: 0.01, noiseMultiplier: 1, order: 2), closed, "α = 2 closed form",
                          relativeTolerance: 1e-12)
        // The fractional series is continuous with the integer sum.
        assertScalarClose(RDPAnalysis.rdp(sampleRate: 0.04, noiseMultiplier: 1.5, order: 4 + 1e-9),
                          RDPAnalysis.rdp(sampleRate: 0.04, noiseMultiplier: 1.5, order: 4), "fractional α → 4",
                          relativeTolerance: 1e-6)
        XCTAssertEqual(RDPAnalysis.defaultOrders.count, 151, "Opacus' default orders")
        XCTAssertEqual(RDPAnalysis.defaultOrders.first, 1.1)
        XCTAssertEqual(RDPAnalysis.defaultOrders.last, 63)
    }

    func testEmptyAndNoiselessHistories() throws {
        XCTAssertEqual(try RDPAccountant().epsilon(delta: 1e-5), 0, "RDP, no steps")
        XCTAssertEqual(try PRVAccountant().epsilon(delta: 1e-5), 0, "PRV, no steps")
        XCTAssertEqual(try GDPAccountant().epsilon(delta: 1e-5), 0, "GDP, no steps")
        let noiseless = [PrivacySegment(noiseMultiplier: 0, sampleRate: 0.1, steps: 3)]
        for mechanism in AccountantMechanism.allCases {
            XCTAssertEqual(try makeAccountant(mechanism, history: noiseless).epsilon(delta: 1e-5), .infinity,
                           "\(mechanism): σ = 0 gives ε = ∞")
        }
    }

    func testNoiseMultiplierSearchOpacusCases() throws {
        let epochSteps = try NoiseMultiplierSearch.steps(epochs: 90, sampleRate: q)
        let cases: [(AccountantMechanism, Int, Double, Double)] = [
            (.rdp, epochSteps, 1.416, 1e-4), (.rdp, 2000, 1.3562, 1e-4),
            (.prv, epochSteps, 1.34765625, 1e-4), (.prv, 2000, 1.2915, 1e-4),
            (.gdp, epochSteps, 1.3232421875, 1e-7),
        ]
        for (mechanism, steps, expected, tolerance) in cases {
            let found = try NoiseMultiplierSearch.noiseMultiplier(targetEpsilon: 8, delta: delta, sampleRate: q,
                                                                  steps: steps, mechanism: mechanism)
            assertAbsolute(found, expected, tolerance, "σ for ε = 8 (\(mechanism), \(steps) steps)")
            let reached = try makeAccountant(mechanism, history: [
                PrivacySegment(noiseMultiplier: found, sampleRate: q, steps: steps)]).epsilon(delta: delta)
            XCTAssert(reached <= 8 && reached >= 8 - 0.01, "\(mechanism): ε(σ) = \(reached) must lie in [7.99, 8]")
        }
    }

    func testUnreachableBudgetIsATypedError() {
        XCTAssertThrowsError(try NoiseMultiplierSearch.noiseMultiplier(targetEpsilon: 1e-3, delta: 1e-5, sampleRate: 1,
                                                                      steps: 1_000_000, mechanism: .rdp)) { error in
            XCTAssertEqual((error as? PrivacyError)?.kind, .budgetUnreachable, "error kind: \(error)")
            XCTAssert("\(error)".contains("raise ε or δ"), "the message says what to change: \(error)")
        }
        XCTAssertThrowsError(try RDPAccountant().epsilon(delta: 1.5)) { error in
            XCTAssertEqual((error as? PrivacyError)?.kind, .invalidParameter, "δ = 1.5: \(error)")
        }
        XCTAssertThrowsError(try NoiseMultiplierSearch.steps(epochs: 0, sampleRate: 0.1))
    }
}
