// Rényi DP of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar & Zhang 2019, §3.3) and its
// conversion to (ε, δ)-DP (Balle et al. 2020, Thm 21), as Opacus' `analysis/rdp.py` computes them.

import Foundation

/// Per-step RDP of the subsampled Gaussian and the RDP → (ε, δ) conversion.
public enum RDPAnalysis {
    /// Opacus' default orders: 1.1, 1.2, …, 10.9, then 12, 13, …, 63 (151 orders).
    public static let defaultOrders: [Double] = (1...99).map { 1 + Double($0) / 10 } + (12...63).map(Double.init)

    /// The RDP of one step at order α: 0 when q = 0, ∞ when σ = 0, α/(2σ²) when q = 1, else log A_α/(α − 1).
    /// Sensitivity 1 (the noise std is σ in units of the clipping norm).
    public static func rdp(sampleRate q: Double, noiseMultiplier sigma: Double, order alpha: Double) -> Double {
        if q == 0 { return 0 }
        if sigma == 0 { return .infinity }
        if q == 1 { return alpha / (2 * sigma * sigma) }
        if alpha.isInfinite { return .infinity }
        return logA(q: q, sigma: sigma, alpha: alpha) / (alpha - 1)
    }

    /// The RDP of `steps` steps at each order (composition adds).
    public static func rdp(sampleRate q: Double, noiseMultiplier sigma: Double, steps: Int, orders: [Double]) -> [Double] {
        orders.map { rdp(sampleRate: q, noiseMultiplier: sigma, order: $0) * Double(steps) }
    }

    /// The RDP of a whole history at each order: the sum over segments of steps × per-step RDP.
    public static func rdp(history: [PrivacySegment], orders: [Double]) -> [Double] {
        var total = [Double](repeating: 0, count: orders.count)
        for segment in history {
            let part = rdp(sampleRate: segment.sampleRate, noiseMultiplier: segment.noiseMultiplier,
                           steps: segment.steps, orders: orders)
            for i in total.indices { total[i] += part[i] }
        }
        return total
    }

    /// ε = min_α [RDP(α) − (log δ + log α)/(α − 1) + log((α − 1)/α)] and the minimising order; NaN orders
    /// are skipped; (∞, NaN) when every order is NaN.
    public static func epsilon(orders: [Double], rdp: [Double], delta: Double) -> (epsilon: Double, order: Double) {
        precondition(orders.count == rdp.count, "RDPAnalysis.epsilon: \(orders.count) orders but \(rdp.count) RDP values")
        var best = Double.nan, bestOrder = Double.nan
        for (alpha, r) in zip(orders, rdp) {
            let eps = r - (log(delta) + log(alpha)) / (alpha - 1) + log((alpha - 1) / alpha)
            if eps.isNaN { continue }
            if best.isNaN || eps < best { best = eps; bestOrder = alpha }
        }
        return best.isNaN ? (.infinity, .nan) : (best, bestOrder)
    }

    // MARK: log A_α

    /// log A_α for 0 < q < 1: the binomial sum for integer α, the two-sided erfc series otherwise.
    static func logA(q: Double, sigma: Double, alpha: Double) -> Double {
        if alpha == alpha.rounded(), alpha < Double(Int.max) {
            return logAIntegerOrder(q: q, sigma: sigma, alpha: Int(alpha))
        }
        return logAFractionalOrder(q: q, sigma: sigma, alpha: alpha)
    }

    /// A_α = Σ_{i=0}^{α} C(α, i) qⁱ (1−q)^{α−i} exp((i² − i)/(2σ²)), summed in log space.
    static func logAIntegerOrder(q: Double, sigma: Double, alpha: Int) -> Double {
        var logSum = -Double.infinity
        let logQ = log(q), log1mQ = log(1 - q), twoVar = 2 * sigma * sigma
        for i in 0...alpha {
            let coefficient = log(SpecialFunctions.binomial(Double(alpha), i)) + Double(i) * logQ + Double(alpha - i) * log1mQ
            let term = coefficient + Double(i * i - i) / twoVar
            logSum = SpecialFunctions.logAdd(logSum, term)
        }
        return logSum
    }

    /// The fractional-order series: with z0 = σ² log(1/q − 1) + ½, two sums over i (terms on either side
    /// of z0, each weighted by an erfc), with signed generalised binomial coefficients, stopped once both
    /// terms fall below e^−30.
    static func logAFractionalOrder(q: Double, sigma: Double, alpha: Double) -> Double {
        var logA0 = -Double.infinity, logA1 = -Double.infinity
        let z0 = sigma * sigma * log(1 / q - 1) + 0.5
        let logQ = log(q), log1mQ = log(1 - q), twoVar = 2 * sigma * sigma
        let scale = SpecialFunctions.sqrt2 * sigma
        var coefficient = 1.0                                   // C(α, i), updated incrementally
        var i = 0
        while true {
            let di = Double(i), j = alpha - di
            let logCoefficient = log(abs(coefficient))
            let logT0 = logCoefficient + di * logQ + j * log1mQ
            let logT1 = logCoefficient + j * logQ + di * log1mQ
            let logE0 = log(0.5) + SpecialFunctions.logErfc((di - z0) / scale)
            let logE1 = log(0.5) + SpecialFunctions.logErfc((z0 - j) / scale)
            let logS0 = logT0 + (di * di - di) / twoVar + logE0
            let logS1 = logT1 + (j * j - j) / twoVar + logE1
            if coefficient > 0 {
                logA0 = SpecialFunctions.logAdd(logA0, logS0)
                logA1 = SpecialFunctions.logAdd(logA1, logS1)
            } else {
                logA0 = SpecialFunctions.logSub(logA0, logS0)
                logA1 = SpecialFunctions.logSub(logA1, logS1)
            }
            if max(logS0, logS1) < -30 || logA0.isNaN || logA1.isNaN { break }
            coefficient = coefficient * (alpha - di) / (di + 1)
            i += 1
            if i > 100_000 { return .nan }                      // no convergence: this order gives no bound
        }
        return SpecialFunctions.logAdd(logA0, logA1)
    }
}
