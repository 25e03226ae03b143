// Dualign's accountants against Opacus on a grid (Fixtures/opacus_accountants.json, written by
// Tests/fixtures/generate_privacy_fixtures.py): RDP to 1e-6 relative, GDP to 1e-6 relative, PRV within 1e-4
// (its stated error is eps_error = 0.01; the residual, ≤ 6e-6, is of the size of Opacus' own numerical noise:
// its mean integral's tolerance and FFT rounding at small δ, see docs/privacy.md).

import Foundation
import XCTest
import TestSupport
@testable import Privacy

/// The fixture file's contents.
private struct OpacusFixture: Decodable {
    struct Case: Decodable {
        let history: [[Double]]
        let delta: Double
        let epsilon: Double?
        let order: Double?
        let error: String?

        var segments: [PrivacySegment] {
            history.map { PrivacySegment(noiseMultiplier: $0[0], sampleRate: $0[1], steps: Int($0[2])) }
        }
    }
    struct PerStep: Decodable {
        let sigma: Double
        let q: Double
        let rdp: [Double?]
    }
    struct SigmaCase: Decodable {
        let epsilon: Double
        let delta: Double
        let q: Double
        let epochs: Double?
        let steps: Int?
        let accountant: String
        let sigma: Double?
        let error: String?
    }
    let versions: [String: String]
    let default_orders: [Double]
    let rdp_per_step: [PerStep]
    let rdp: [Case]
    let prv: [Case]
    let gdp: [Case]
    let sigma: [SigmaCase]

    static func load() throws -> OpacusFixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/opacus_accountants.json")
        return try JSONDecoder().decode(OpacusFixture.self, from: Data(contentsOf: url))
    }
}

final class OpacusFixtureTests: XCTestCase {
    private func describe(_ c: OpacusFixture.Case) -> String { "history \(c.history), δ \(c.delta)" }

    func testDefaultOrdersMatch() throws {
        let fixture = try OpacusFixture.load()
        XCTAssertEqual(RDPAnalysis.defaultOrders, fixture.default_orders, "DEFAULT_ALPHAS")
    }

    func testPerStepRDPAtEveryDefaultOrder() throws {
        let fixture = try OpacusFixture.load()
        for row in fixture.rdp_per_step {
            for (alpha, expected) in zip(fixture.default_orders, row.rdp) {
                let got = RDPAnalysis.rdp(sampleRate: row.q, noiseMultiplier: row.sigma, order: alpha)
                guard let expected else { XCTAssertEqual(got, .infinity, "RDP(α \(alpha)) σ \(row.sigma) q \(row.q)"); continue }
                assertScalarClose(got, expected, "RDP(α \(alpha)) σ \(row.sigma) q \(row.q)", relativeTolerance: 1e-6)
            }
        }
    }

    func testRDPEpsilonGrid() throws {
        let fixture = try OpacusFixture.load()
        XCTAssertGreaterThan(fixture.rdp.count, 150, "grid size")
        var worst = 0.0
        for c in fixture.rdp {
            let (epsilon, order) = try RDPAccountant(history: c.segments).privacySpent(delta: c.delta)
            guard let expected = c.epsilon else { XCTAssertEqual(epsilon, .infinity, describe(c)); continue }
            assertScalarClose(epsilon, expected, "RDP ε, \(describe(c))", relativeTolerance: 1e-6)
            XCTAssertEqual(order, c.order, "best α, \(describe(c))")
            worst = max(worst, abs(epsilon - expected) / abs(expected))
        }
        print("RDP vs Opacus: \(fixture.rdp.count) cases, worst relative difference \(worst)")
    }

    func testPRVEpsilonGrid() throws {
        let fixture = try OpacusFixture.load()
        var worst = 0.0
        for c in fixture.prv {
            let accountant = try PRVAccountant(history: c.segments)
            if c.error != nil {
                XCTAssertThrowsError(try accountant.epsilon(delta: c.delta), "Opacus raised for \(describe(c))")
                continue
            }
            let epsilon = try accountant.epsilon(delta: c.delta)
            guard let expected = c.epsilon else { XCTAssertEqual(epsilon, .infinity, describe(c)); continue }
            assertAbsolute(epsilon, expected, 1e-4, "PRV ε, \(describe(c))")
            worst = max(worst, abs(epsilon - expected))
        }
        print("PRV vs Opacus: \(fixture.prv.count) cases, worst absolute difference \(worst)")
    }

    func testGDPEpsilonGrid() throws {
        let fixture = try OpacusFixture.load()
        var worst = 0.0
        for c in fixture.gdp {
            let accountant = try GDPAccountant(history: c.segments)
            let epsilon = try accountant.epsilon(delta: c.delta)
            if c.error != nil {
                // Opacus' bracket [0, 500] holds no root: ε is beyond 500 and still solves δ(ε) = δ.
                XCTAssertGreaterThan(epsilon, 500, "GDP ε beyond Opacus' bracket, \(describe(c))")
                assertScalarClose(GDPAccountant.delta(epsilon: epsilon, mu: accountant.mu), c.delta,
                                  "δ(ε), \(describe(c))", relativeTolerance: 1e-6)
                continue
            }
            guard let expected = c.epsilon else { XCTFail("no ε in fixture, \(describe(c))"); continue }
            if expected == 0 { XCTAssertEqual(epsilon, 0, describe(c)); continue }
            assertScalarClose(epsilon, expected, "GDP ε, \(describe(c))", relativeTolerance: 1e-6)
            worst = max(worst, abs(epsilon - expected) / expected)
        }
        print("GDP vs Opacus: \(fixture.gdp.count) cases, worst relative difference \(worst)")
    }

    func testNoiseMultiplierSearchGrid() throws {
        let fixture = try OpacusFixture.load()
        for c in fixture.sigma {
            let mechanism = try XCTUnwrap(AccountantMechanism(rawValue: c.accountant))
            let steps = try c.steps ?? NoiseMultiplierSearch.steps(epochs: XCTUnwrap(c.epochs), sampleRate: c.q)
            let name = "σ for ε \(c.epsilon), δ \(c.delta), q \(c.q), \(steps) steps, \(mechanism)"
            if c.error != nil {
                XCTAssertThrowsError(try NoiseMultiplierSearch.noiseMultiplier(
                    targetEpsilon: c.epsilon, delta: c.delta, sampleRate: c.q, steps: steps, mechanism: mechanism), name)
                continue
            }
            let sigma = try NoiseMultiplierSearch.noiseMultiplier(targetEpsilon: c.epsilon, delta: c.delta,
                                                                  sampleRate: c.q, steps: steps, mechanism: mechanism)
            // The bisection visits the same dyadic σ values, so the answer is identical unless an ε(σ) lands
            // within the accountants' difference of the target.
            assertAbsolute(sigma, try XCTUnwrap(c.sigma), 1e-12, name)
        }
    }
}
