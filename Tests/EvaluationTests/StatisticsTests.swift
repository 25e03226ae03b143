// The evaluation's intervals against closed forms: Wilson intervals against Newcombe's published
// values and the formula, the normal quantile, and the bootstrap of a 0/1 sample against the exact
// binomial distribution its resampled means follow.

import Foundation
import XCTest
@testable import Evaluation

final class StatisticsTests: XCTestCase {
    func testNormalQuantile() {
        // Φ⁻¹(0.975) = 1.959963984540054; Φ⁻¹(0.95) = 1.6448536269514722.
        XCTAssertEqual(Statistics.normalQuantile(confidence: 0.95), 1.959963984540054, accuracy: 1e-10, "z for 95 %")
        XCTAssertEqual(Statistics.normalQuantile(confidence: 0.90), 1.6448536269514722, accuracy: 1e-10, "z for 90 %")
    }

    /// Newcombe (1998), "Two-sided confidence intervals for the single proportion", Statistics in
    /// Medicine 17:857–872, Table I, method 3 (Wilson score without continuity correction), z = 1.96:
    /// the published values to 4 decimals.
    func testWilsonMatchesNewcombesTable() throws {
        let cases: [(x: Int, n: Int, lo: Double, hi: Double)] = [
            (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0000, 0.1611), (1, 29, 0.0061, 0.1718),
        ]
        for c in cases {
            let e = try XCTUnwrap(Statistics.wilson(successes: c.x, n: c.n))
            // Newcombe used z = 1.96 exactly; ours is 1.959964, which moves the 4th decimal by < 2e-5.
            XCTAssertEqual(e.lo, c.lo, accuracy: 6e-5, "Wilson lower end of \(c.x)/\(c.n): got \(e.lo), published \(c.lo)")
            XCTAssertEqual(e.hi, c.hi, accuracy: 6e-5, "Wilson upper end of \(c.x)/\(c.n): got \(e.hi), published \(c.hi)")
            XCTAssertEqual(e.value, Double(c.x) / Double(c.n), accuracy: 1e-15)
            XCTAssertEqual(e.n, c.n)
            XCTAssertEqual(e.successes, c.x)
            XCTAssertEqual(e.interval, "wilson")
        }
    }

    /// The interval's ends are the roots of (p̂ − p)² = z² p(1 − p)/n, for any counts.
    func testWilsonEndsSolveTheScoreEquation() throws {
        let z = Statistics.normalQuantile(confidence: 0.95)
        for (x, n) in [(3, 10), (7, 7), (50, 100), (1, 1000), (999, 1000)] {
            let e = try XCTUnwrap(Statistics.wilson(successes: x, n: n))
            let p = Double(x) / Double(n)
            for end in [e.lo, e.hi] where end > 0 && end < 1 {
                let residual = (p - end) * (p - end) - z * z * end * (1 - end) / Double(n)
                XCTAssertEqual(residual, 0, accuracy: 1e-12, "score equation at the end \(end) of \(x)/\(n)")
            }
            XCTAssertLessThanOrEqual(e.lo, p)
            XCTAssertGreaterThanOrEqual(e.hi, p)
        }
        XCTAssertEqual(Statistics.wilson(successes: 7, n: 7)?.hi, 1, "n successes: the interval ends at 1")
        XCTAssertNil(Statistics.wilson(successes: 0, n: 0), "no prompts: no estimate")
        XCTAssertEqual(Statistics.wilson([true, false, true, true])?.successes, 3)
    }

    func testQuantileInterpolates() {
        XCTAssertEqual(Statistics.quantile(sorted: [1, 2, 3, 4], 0.5), 2.5)
        XCTAssertEqual(Statistics.quantile(sorted: [1, 2, 3, 4], 0), 1)
        XCTAssertEqual(Statistics.quantile(sorted: [1, 2, 3, 4], 1), 4)
        XCTAssertEqual(Statistics.quantile(sorted: [0, 10], 0.25), 2.5)
    }

    /// The exact binomial quantile: the smallest k with P(K ≤ k) ≥ q, K ~ Binomial(n, p).
    func binomialQuantile(n: Int, p: Double, _ q: Double) -> Int {
        var cdf = 0.0
        for k in 0...n {
            // log C(n, k) + k log p + (n − k) log(1 − p)
            let logChoose: Double = lgamma(Double(n + 1)) - lgamma(Double(k + 1)) - lgamma(Double(n - k + 1))
            let logPMF: Double = logChoose + Double(k) * log(p) + Double(n - k) * log(1 - p)
            cdf += exp(logPMF)
            if cdf >= q { return k }
        }
        return n
    }

    /// Resampling a sample of k ones among n values gives means distributed exactly as Binomial(n, k/n)/n;
    /// with 20,000 resamples the percentile interval's ends must land on the exact binomial quantiles
    /// within one count (1/n), and the resampled means' standard deviation on √(p(1 − p)/n) within 3 %.
    func testBootstrapOfABernoulliSampleFollowsTheBinomial() throws {
        for (k, n) in [(30, 100), (12, 60), (95, 100)] {
            let values = (0..<n).map { $0 < k ? 1.0 : 0.0 }
            let bootstrap = Bootstrap(samples: 20_000, seed: 42)
            let e = try XCTUnwrap(bootstrap.mean(values))
            let p = Double(k) / Double(n)
            let lo = Double(binomialQuantile(n: n, p: p, 0.025)) / Double(n)
            let hi = Double(binomialQuantile(n: n, p: p, 0.975)) / Double(n)
            XCTAssertEqual(e.value, p, accuracy: 1e-15)
            XCTAssertEqual(e.lo, lo, accuracy: 1.0 / Double(n) + 1e-12, "bootstrap 2.5 % end of \(k)/\(n): got \(e.lo), binomial \(lo)")
            XCTAssertEqual(e.hi, hi, accuracy: 1.0 / Double(n) + 1e-12, "bootstrap 97.5 % end of \(k)/\(n): got \(e.hi), binomial \(hi)")
            let means = bootstrap.resampledMeans(values)
            let m = means.reduce(0, +) / Double(means.count)
            let sd = (means.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(means.count - 1)).squareRoot()
            let exact = (p * (1 - p) / Double(n)).squareRoot()
            XCTAssertEqual(sd / exact, 1, accuracy: 0.03, "bootstrap standard error of \(k)/\(n): got \(sd), exact \(exact)")
            XCTAssertEqual(e.interval, "bootstrap")
        }
    }

    func testBootstrapIsSeededAndDegenerateWhenConstant() throws {
        let values = (0..<50).map { Double(($0 * 37) % 11) - 5 }
        let a = try XCTUnwrap(Bootstrap(samples: 500, seed: 7).mean(values))
        let b = try XCTUnwrap(Bootstrap(samples: 500, seed: 7).mean(values))
        let c = try XCTUnwrap(Bootstrap(samples: 500, seed: 8).mean(values))
        XCTAssertEqual(a, b, "the same seed gives the same interval")
        XCTAssertNotEqual(a.lo, c.lo, "another seed resamples differently")
        let constant = try XCTUnwrap(Bootstrap(samples: 200).mean([0.5, 0.5, 0.5]))
        XCTAssertEqual(constant.lo, 0.5)
        XCTAssertEqual(constant.hi, 0.5)
        XCTAssertNil(Bootstrap().mean([]))
    }
}
