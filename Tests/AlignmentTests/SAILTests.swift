// Tests of SAIL's routing, seeded draws, labels and loss against the oracles of algorithms.md §4.4, closed forms,
// finite differences and world-size invariance.

import Foundation
import XCTest
import Alignment

final class SAILTests: XCTestCase {
    // The §4.4 row: ℓ_θ(yw) = −10, ℓ_θ(yl) = −12, ℓ_ref(yw) = −11, ℓ_ref(yl) = −11.5, β = 0.1 ⇒ h = 1.5.
    private let oracleRow = (policyChosen: -10.0, policyRejected: -12.0, referenceChosen: -11.0, referenceRejected: -11.5)

    private func oracleLoss(_ route: SAILRoute, _ config: SAILConfig, globalRow: UInt64 = 0) throws -> SAILLossResult {
        try sailLoss(policyChosen: [oracleRow.policyChosen], policyRejected: [oracleRow.policyRejected],
                     referenceChosen: [oracleRow.referenceChosen], referenceRejected: [oracleRow.referenceRejected],
                     routes: [route], globalRows: [globalRow], config: config)
    }

    /// A global row whose SAIL-DP coin does (or does not) flip a pair with h = 1.5 under `config`.
    private func row(flipping: Bool, _ config: SAILConfig) -> UInt64 {
        (0..<1000).first { config.dataPolicyFlip(h: 1.5, globalRow: $0).flipped == flipping }!
    }

    // MARK: Oracles (§4.4)

    func testPlainDPORowMatchesOracleAndPreferenceLoss() throws {
        let result = try oracleLoss(.dpo, SAILConfig(beta: 0.1))
        assertClose(result.loss, 0.620957, tolerance: 5e-7, "DPO loss")
        assertClose(result.dPolicyChosen[0], -0.046257, tolerance: 5e-7, "DPO ∂L/∂ℓ_w")
        assertClose(result.dPolicyRejected[0], 0.046257, tolerance: 5e-7, "DPO ∂L/∂ℓ_l")
        let dpo = preferenceLoss(policyChosen: [-10], policyRejected: [-12], referenceChosen: [-11], referenceRejected: [-11.5],
                                 config: PreferenceLossConfig(beta: 0.1))
        assertClose(result.dPolicyChosen[0], dpo.dPolicyChosen[0], tolerance: 1e-15, "SAIL DPO row vs preferenceLoss")
        assertClose(result.metrics["rewards/margins"], 0.15, tolerance: 1e-12, "rewards/margins")
    }

    /// SAIL-DP (ρ = 0.2), coin not flipped: loss 0.582398, ∂L/∂ℓ_w = −0.0405123 (extra +0.00574472), flip
    /// probability 1 − σ(0.15) = 0.462570.
    func testDataPolicyRowMatchesOracle() throws {
        let config = SAILConfig.dataPolicy()
        let kept = try oracleLoss(.dataPolicy, config, globalRow: row(flipping: false, config))
        XCTAssertEqual(kept.flipped, [false])
        assertClose(kept.loss, 0.582398, tolerance: 5e-7, "SAIL-DP loss")
        assertClose(kept.dPolicyChosen[0], -0.0405123, tolerance: 5e-8, "SAIL-DP ∂L/∂ℓ_w")
        assertClose(kept.dPolicyRejected[0], 0.0405123, tolerance: 5e-8, "SAIL-DP ∂L/∂ℓ_l")
        assertClose(kept.dPolicyChosen[0] - (-0.046257), 0.00574472, tolerance: 5e-7, "SAIL-DP extra ∂L/∂ℓ_w")
        assertClose(kept.metrics["sail/ddp_flip_probability"], 0.462570, tolerance: 5e-7, "flip probability")
        assertClose(kept.metrics["sail/ddp_flips"], 0, tolerance: 0, "no flip")
        // Flipped: h' = −1.5, z = −0.15: L = −log σ(z) − 0.1·(log σ(z))², ∂L/∂z = −σ(−z)(1 + 0.2·log σ(z)), and the
        // gradient with respect to ℓ_w changes sign through h' = −h.
        let flipped = try oracleLoss(.dataPolicy, config, globalRow: row(flipping: true, config))
        XCTAssertEqual(flipped.flipped, [true])
        let logSig = -log1p(exp(0.15))
        assertClose(flipped.loss, -logSig - 0.1 * logSig * logSig, tolerance: 1e-15, "flipped SAIL-DP loss")
        let dz = -(1 / (1 + exp(-0.15))) * (1 + 0.2 * logSig)
        assertClose(flipped.dPolicyChosen[0], -0.1 * dz, tolerance: 1e-15, "flipped SAIL-DP ∂L/∂ℓ_w")
        assertClose(flipped.dPolicyChosen[0], 0.0454563, tolerance: 5e-8, "flipped SAIL-DP ∂L/∂ℓ_w (value)")
        assertClose(flipped.metrics["rewards/margins"], 0.15, tolerance: 1e-12, "metrics log the pair before the flip")
    }

    /// SAIL-PR (γ = 0.3): code hook extra −0.0186287 / −0.0155239; textbook +0.186287 on both; no loss term.
    func testPolicyRewardRowMatchesOracle() throws {
        let code = try oracleLoss(.policyReward, .policyReward(scoreTerm: .codeFaithful))
        assertClose(code.dPolicyChosen[0] - (-0.046257), -0.0186287, tolerance: 5e-7, "SAIL-PR code hook extra ∂L/∂ℓ_w")
        assertClose(code.dPolicyRejected[0] - 0.046257, -0.0155239, tolerance: 5e-7, "SAIL-PR code hook extra ∂L/∂ℓ_l")
        assertClose(code.loss, 0.620957, tolerance: 5e-7, "SAIL-PR reported loss is plain DPO's")
        let textbook = try oracleLoss(.policyReward, .policyReward(scoreTerm: .scoreFunction))
        assertClose(textbook.dPolicyChosen[0] - (-0.046257), 0.186287, tolerance: 5e-7, "SAIL-PR textbook extra ∂L/∂ℓ_w")
        assertClose(textbook.dPolicyRejected[0] - 0.046257, 0.186287, tolerance: 5e-7, "SAIL-PR textbook extra ∂L/∂ℓ_l")
    }

    /// SAIL-PP (π = 0.2), code form: totals ∂L/∂ℓ_w = −0.0529314, ∂L/∂ℓ_l = +0.0301630.
    func testPolicyPolicyRowMatchesOracle() throws {
        let result = try oracleLoss(.policyPolicy, .policyPolicy(scoreTerm: .codeFaithful))
        assertClose(result.dPolicyChosen[0], -0.0529314, tolerance: 5e-8, "SAIL-PP ∂L/∂ℓ_w")
        assertClose(result.dPolicyRejected[0], 0.0301630, tolerance: 5e-8, "SAIL-PP ∂L/∂ℓ_l")
        assertClose(result.loss, 0.582398, tolerance: 5e-7, "SAIL-PP loss (same square term as SAIL-DP with π = ρ)")
        XCTAssertEqual(result.flipped, [false], "SAIL-PP rows are never flipped in the loss")
    }

    // MARK: Gradients and batches

    /// On a mixed random batch, the gradient minus the score-function term equals central finite differences of the
    /// reported loss, and the score term matches its closed form, for both forms; gradients carry 1/B.
    func testGradientsMatchFiniteDifferencesOnAMixedBatch() throws {
        let b = 24
        var policyChosen = [Double](), policyRejected = [Double](), referenceChosen = [Double](), referenceRejected = [Double]()
        for i in 0..<b {
            let x = Double(i)
            policyChosen.append(-20 - 10 * abs(sin(x * 1.7)))
            policyRejected.append(-20 - 10 * abs(cos(x * 0.9)))
            referenceChosen.append(policyChosen[i] + 8 * sin(x * 2.3))
            referenceRejected.append(policyRejected[i] + 8 * cos(x * 1.1))
        }
        for scoreTerm in SAILScoreTerm.allCases {
            let config = SAILConfig(beta: 0.3, dataPolicyProbability: 0.3, dataPolicyCoefficient: 0.25,
                                    policyPolicyProbability: 0.25, policyPolicyCoefficient: 0.2,
                                    policyRewardProbability: 0.25, policyRewardCoefficient: 0.3, scoreTerm: scoreTerm, seed: 11)
            let globalRows = (0..<b).map { UInt64(1000 + $0) }
            let routes = globalRows.map { config.route(globalRow: $0) }
            for route in SAILRoute.allCases { XCTAssertTrue(routes.contains(route), "the batch contains a \(route) row") }
            func run(_ chosen: [Double], _ rejected: [Double]) throws -> SAILLossResult {
                try sailLoss(policyChosen: chosen, policyRejected: rejected, referenceChosen: referenceChosen,
                             referenceRejected: referenceRejected, routes: routes, globalRows: globalRows, config: config)
            }
            let analytic = try run(policyChosen, policyRejected)
            XCTAssertTrue(analytic.flipped.contains(true), "\(scoreTerm): some SAIL-DP row is flipped")
            let delta = 1e-6, tolerance = 1e-9
            for i in 0..<b {
                let h = (analytic.flipped[i] ? -1.0 : 1.0)
                    * ((policyChosen[i] - referenceChosen[i]) - (policyRejected[i] - referenceRejected[i]))
                let z = config.beta * h
                let logSig = min(z, 0) - log1p(exp(-abs(z)))
                let coefficient = routes[i] == .policyPolicy ? config.policyPolicyCoefficient
                    : routes[i] == .policyReward ? config.policyRewardCoefficient : 0
                let scoreW = scoreTerm == .codeFaithful ? -coefficient * logSig / policyChosen[i] : -coefficient * logSig
                let scoreL = scoreTerm == .codeFaithful ? -coefficient * logSig / policyRejected[i] : -coefficient * logSig

                var up = policyChosen, down = policyChosen
                up[i] += delta
                down[i] -= delta
                let (resultUp, resultDown) = (try run(up, policyRejected), try run(down, policyRejected))
                XCTAssertEqual(resultUp.flipped, analytic.flipped, "the coin does not move under a tiny perturbation")
                XCTAssertEqual(resultDown.flipped, analytic.flipped)
                let numericW = (resultUp.loss - resultDown.loss) / (2 * delta)
                assertClose(analytic.dPolicyChosen[i] - scoreW / Double(b), numericW, tolerance: tolerance,
                            "\(scoreTerm) row \(i) (\(routes[i])) ∂L/∂ℓ_w minus score term vs finite difference")

                var upL = policyRejected, downL = policyRejected
                upL[i] += delta
                downL[i] -= delta
                let numericL = (try run(policyChosen, upL).loss - (try run(policyChosen, downL).loss)) / (2 * delta)
                assertClose(analytic.dPolicyRejected[i] - scoreL / Double(b), numericL, tolerance: tolerance,
                            "\(scoreTerm) row \(i) (\(routes[i])) ∂L/∂ℓ_l minus score term vs finite difference")
            }
        }
    }

    /// The same global rows give the same routes, flips, summed loss and gradients whether the batch is on one rank
    /// or split over 2 or 3 (each shard divides by the global row count).
    func testEveryWorldSizeRoutesFlipsAndDifferentiatesTheSameRows() throws {
        let config = SAILConfig(beta: 0.1, dataPolicyProbability: 0.4, dataPolicyCoefficient: 0.2,
                                policyPolicyProbability: 0.2, policyPolicyCoefficient: 0.2,
                                policyRewardProbability: 0.2, policyRewardCoefficient: 0.3, seed: 99)
        let b = 12
        let globalRows = (0..<b).map { UInt64(36 + $0) }   // step 3 of a run with global batch 12
        let routes = globalRows.map { config.route(globalRow: $0) }
        let chosen = (0..<b).map { -15 - Double($0) }, rejected = (0..<b).map { -14 - 0.5 * Double($0) }
        let refChosen = chosen.map { $0 + 1 }, refRejected = rejected.map { $0 - 2 }
        let whole = try sailLoss(policyChosen: chosen, policyRejected: rejected, referenceChosen: refChosen,
                                 referenceRejected: refRejected, routes: routes, globalRows: globalRows, config: config)
        for ranks in [2, 3] {
            var loss = 0.0, dChosen = [Double](repeating: 0, count: b), flipped = [Bool](repeating: false, count: b)
            for rank in 0..<ranks {
                let mine = Array(stride(from: rank, to: b, by: ranks))
                let part = try sailLoss(policyChosen: mine.map { chosen[$0] }, policyRejected: mine.map { rejected[$0] },
                                        referenceChosen: mine.map { refChosen[$0] }, referenceRejected: mine.map { refRejected[$0] },
                                        routes: mine.map { config.route(globalRow: globalRows[$0]) },
                                        globalRows: mine.map { globalRows[$0] }, config: config, normalizer: Double(b))
                loss += part.loss
                for (k, i) in mine.enumerated() {
                    dChosen[i] = part.dPolicyChosen[k]
                    flipped[i] = part.flipped[k]
                }
            }
            assertClose(loss, whole.loss, tolerance: 1e-14, "\(ranks)-rank summed loss vs one rank")
            XCTAssertEqual(flipped, whole.flipped, "\(ranks)-rank flips vs one rank")
            for i in 0..<b { assertClose(dChosen[i], whole.dPolicyChosen[i], tolerance: 1e-16, "\(ranks)-rank ∂L/∂ℓ_w[\(i)]") }
        }
    }

    // MARK: Draws and labels

    /// Route frequencies match (r, p, g, 1 − r − p − g) within 4 standard errors over 200,000 rows; the routes
    /// are a pure function of (seed, row).
    func testRouteFrequenciesMatchProbabilities() throws {
        let config = SAILConfig(dataPolicyProbability: 0.4, policyPolicyProbability: 0.3, policyRewardProbability: 0.2, seed: 5)
        try config.validate()
        let n = 200_000
        var counts = [SAILRoute: Int]()
        for row in 0..<n { counts[config.route(globalRow: UInt64(row)), default: 0] += 1 }
        for (route, p) in [(SAILRoute.dataPolicy, 0.4), (.policyPolicy, 0.3), (.policyReward, 0.2), (.dpo, 0.1)] {
            let fraction = Double(counts[route] ?? 0) / Double(n)
            let bound = 4 * (p * (1 - p) / Double(n)).squareRoot()
            assertClose(fraction, p, tolerance: bound, "fraction of \(route) rows")
        }
        XCTAssertEqual((0..<50).map { config.route(globalRow: UInt64(49 - $0)) }.reversed(),
                       (0..<50).map { config.route(globalRow: UInt64($0)) }, "routes do not depend on evaluation order")
        var other = config
        other.seed = 6
        XCTAssertNotEqual((0..<50).map { other.route(globalRow: UInt64($0)) }, (0..<50).map { config.route(globalRow: UInt64($0)) },
                          "another seed routes differently")
        assertClose(SAILDraw.route.uniform(seed: 5, index: 0), SAILDraw.route.uniform(seed: 5, index: 0), tolerance: 0, "pure draw")
        XCTAssertNotEqual(SAILDraw.route.uniform(seed: 5, index: 3), SAILDraw.dataPolicyFlip.uniform(seed: 5, index: 3),
                          "purposes draw from independent streams")
    }

    /// SAIL-DP flips with frequency 1 − σ(βh) and SAIL-PP chooses y1 with frequency σ(βh), within 4 standard errors.
    func testFlipAndPolicyLabelFrequencies() throws {
        let config = SAILConfig(beta: 0.1, seed: 17)
        let n = 100_000
        let flips = (0..<n).filter { config.dataPolicyFlip(h: 1.5, globalRow: UInt64($0)).flipped }.count
        let bound = 4 * (0.46257 * 0.53743 / Double(n)).squareRoot()
        assertClose(Double(flips) / Double(n), 0.462570, tolerance: bound, "SAIL-DP flip frequency at h = 1.5")
        // h = (−10 + 11) − (−12 + 11.5) = 1.5 ⇒ P(y1 chosen) = σ(0.15) = 0.537430.
        var firstChosen = 0
        for pair in 0..<n {
            let label = try config.policyLabel(firstPolicy: -10, firstReference: -11, secondPolicy: -12, secondReference: -11.5,
                                               pairIndex: UInt64(pair))
            assertClose(label.probability, 0.537430, tolerance: 5e-7, "P(y1 ≻ y2)")
            if label.firstIsChosen { firstChosen += 1 }
        }
        assertClose(Double(firstChosen) / Double(n), 0.537430, tolerance: bound, "SAIL-PP frequency of y1 chosen")
        XCTAssertThrowsError(try config.policyLabel(firstPolicy: .nan, firstReference: 0, secondPolicy: 0, secondReference: 0, pairIndex: 0))
    }

    func testRewardLabels() throws {
        XCTAssertTrue(try SAILConfig.rewardLabel(firstScore: 2, secondScore: 1, reversed: false), "higher reward chosen")
        XCTAssertFalse(try SAILConfig.rewardLabel(firstScore: 1, secondScore: 2, reversed: false), "lower reward rejected")
        XCTAssertTrue(try SAILConfig.rewardLabel(firstScore: 1, secondScore: 2, reversed: true), "lower cost chosen")
        XCTAssertFalse(try SAILConfig.rewardLabel(firstScore: 2, secondScore: 1, reversed: true), "higher cost rejected")
        XCTAssertTrue(try SAILConfig.rewardLabel(firstScore: 1, secondScore: 1, reversed: false), "a tie keeps y1 (reward)")
        XCTAssertTrue(try SAILConfig.rewardLabel(firstScore: 1, secondScore: 1, reversed: true), "a tie keeps y1 (cost)")
        XCTAssertThrowsError(try SAILConfig.rewardLabel(firstScore: .infinity, secondScore: 1, reversed: false))
    }

    // MARK: Validation

    func testConfigValidationAndEpochScale() throws {
        assertClose(try SAILConfig.dataPolicy().offlineEpochScale(), 1 / 0.6, tolerance: 1e-15, "SAIL-DP epochs / (1 − r)")
        assertClose(try SAILConfig(beta: 0.1).offlineEpochScale(), 1, tolerance: 0, "plain DPO keeps its epochs")
        XCTAssertThrowsError(try SAILConfig(dataPolicyProbability: 0.4, policyPolicyProbability: 0.3, policyRewardProbability: 0.3)
            .offlineEpochScale()) { error in
            XCTAssertEqual(error as? SAILError, .noOfflineDPORows)
        }
        XCTAssertThrowsError(try SAILConfig(dataPolicyProbability: 0.6, policyPolicyProbability: 0.5).validate()) { error in
            XCTAssertEqual(error as? SAILError, .probabilitiesExceedOne(sum: 1.1))
        }
        XCTAssertThrowsError(try SAILConfig(beta: 0).validate())
        XCTAssertThrowsError(try SAILConfig(policyRewardCoefficient: -0.1).validate())
        XCTAssertThrowsError(try SAILConfig(dataPolicyProbability: .nan).validate())
    }

    func testLossRejectsBadInput() throws {
        let config = SAILConfig.policyReward()
        XCTAssertThrowsError(try sailLoss(policyChosen: [0], policyRejected: [-3], referenceChosen: [-1], referenceRejected: [-2],
                                          routes: [.policyReward], globalRows: [0], config: config)) { error in
            XCTAssertEqual(error as? SAILError, .zeroSequenceLogProb(field: "policyChosen", index: 0))
        }
        var textbook = config
        textbook.scoreTerm = .scoreFunction
        XCTAssertNoThrow(try sailLoss(policyChosen: [0], policyRejected: [-3], referenceChosen: [-1], referenceRejected: [-2],
                                      routes: [.policyReward], globalRows: [0], config: textbook), "the textbook form does not divide")
        XCTAssertThrowsError(try sailLoss(policyChosen: [-1, -2], policyRejected: [-3], referenceChosen: [-1, -2],
                                          referenceRejected: [-2, -1], routes: [.dpo, .dpo], globalRows: [0, 1], config: config)) { error in
            XCTAssertEqual(error as? SAILError, .lengthMismatch(field: "policyRejected", count: 1, expected: 2))
        }
        XCTAssertThrowsError(try sailLoss(policyChosen: [-1], policyRejected: [-3], referenceChosen: [-1], referenceRejected: [-2],
                                          routes: [], globalRows: [0], config: config))
        XCTAssertThrowsError(try sailLoss(policyChosen: [], policyRejected: [], referenceChosen: [], referenceRejected: [],
                                          routes: [], globalRows: [], config: config)) { error in
            XCTAssertEqual(error as? SAILError, .emptyBatch)
        }
        XCTAssertThrowsError(try sailLoss(policyChosen: [-1], policyRejected: [-.infinity], referenceChosen: [-1], referenceRejected: [-2],
                                          routes: [.dpo], globalRows: [0], config: config)) { error in
            XCTAssertTrue("\(error)".contains("policyRejected[0]"), "error names the field: \(error)")
        }
    }

    // MARK: Helpers

    private func assertClose(_ actual: Double?, _ expected: Double, tolerance: Double, _ name: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        guard let actual else { return XCTFail("\(name): missing", file: file, line: line) }
        XCTAssertTrue(abs(actual - expected) <= tolerance,
                      "\(name): got \(actual), expected \(expected), |diff| \(abs(actual - expected)) > tolerance \(tolerance)",
                      file: file, line: line)
    }
}
