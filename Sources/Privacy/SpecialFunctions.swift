// Special functions of privacy accounting in Double: the normal CDF and its log, log-space sums,
// binomial coefficients. Written for accuracy in the far tails, where accountants live.

import Foundation

enum SpecialFunctions {
    static let sqrt2 = 2.0.squareRoot()

    /// Φ(x), the standard normal CDF.
    static func normalCDF(_ x: Double) -> Double { 0.5 * erfc(-x / sqrt2) }

    /// log Φ(x), accurate for large |x| (as scipy.special.log_ndtr): log1p on the right, the
    /// asymptotic series on the far left where Φ underflows.
    static func logNormalCDF(_ x: Double) -> Double {
        if x > 6 { return log1p(-0.5 * erfc(x / sqrt2)) }
        if x > -30 { return log(0.5 * erfc(-x / sqrt2)) }
        // log Φ(x) = −x²/2 − log(−x) − ½ log 2π + log(1 − 1/x² + 3/x⁴ − 15/x⁶ + …)
        let x2 = x * x
        var term = 1.0, sum = 1.0
        for k in 1...12 {
            term *= -Double(2 * k - 1) / x2
            sum += term
        }
        return -0.5 * x2 - log(-x) - 0.5 * log(2 * Double.pi) + log(sum)
    }

    /// log erfc(x), accurate for large x: log 2 + log Φ(−√2·x).
    static func logErfc(_ x: Double) -> Double { log(2.0) + logNormalCDF(-x * sqrt2) }

    /// log(eˣ + eʸ) without overflow; −∞ stands for 0.
    static func logAdd(_ x: Double, _ y: Double) -> Double {
        let a = min(x, y), b = max(x, y)
        if a == -.infinity { return b }
        return log1p(exp(a - b)) + b
    }

    /// log(eˣ − eʸ) for x ≥ y; NaN when the difference would be negative (the caller's order then
    /// yields no bound and the ε search skips it, as NaN orders are skipped in Opacus' conversion).
    static func logSub(_ x: Double, _ y: Double) -> Double {
        if x < y { return .nan }
        if y == -.infinity { return x }
        if x == y { return -.infinity }
        let d = x - y
        if d > 700 { return x }                        // expm1 would overflow; e^y is negligible
        return log(expm1(d)) + y
    }

    /// The generalised binomial coefficient C(α, i) = α(α−1)…(α−i+1)/i! for real α (may be negative).
    static func binomial(_ alpha: Double, _ i: Int) -> Double {
        var c = 1.0
        if i == 0 { return c }
        for k in 0..<i { c = c * (alpha - Double(k)) / Double(k + 1) }
        return c
    }
}
