// Confidence intervals for the evaluation's numbers: Wilson score intervals for proportions (with K
// sampled answers per prompt, at the design-effect effective sample size) and a seeded percentile
// bootstrap for means, mean differences and win rates over prompts.

import Foundation
import Tensors

/// A number with its confidence interval and the number of prompts it rests on.
public struct Estimate: Codable, Equatable, Sendable {
    /// The point estimate (a proportion, a mean, a win rate or a mean difference).
    public var value: Double
    /// Lower end of the confidence interval.
    public var lo: Double
    /// Upper end of the confidence interval.
    public var hi: Double
    /// Prompts (or rows) it is computed from.
    public var n: Int
    /// How the interval was computed: `wilson` or `bootstrap`.
    public var interval: String
    /// For a proportion, the number of successes (`value` = successes / n).
    public var successes: Int?
    /// With several sampled answers per prompt, the answers behind the `n` prompts (each prompt's
    /// value is the mean over its answers; nil with one answer per prompt).
    public var answers: Int?
    /// For a proportion over clustered answers (`wilson-clustered`), the effective number of
    /// independent answers the Wilson interval was computed at, in [n, answers].
    public var effectiveN: Double?

    public init(value: Double, lo: Double, hi: Double, n: Int, interval: String, successes: Int? = nil, answers: Int? = nil,
                effectiveN: Double? = nil) {
        self.value = value; self.lo = lo; self.hi = hi; self.n = n; self.interval = interval; self.successes = successes
        self.answers = answers; self.effectiveN = effectiveN
    }

    /// Whether `x` lies in [lo, hi].
    public func contains(_ x: Double) -> Bool { x >= lo && x <= hi }
}

/// The interval methods.
public enum Statistics {
    /// The two-sided standard-normal quantile for a confidence level (0.95 → 1.959964…), by
    /// bisection on `erfc` (accurate to 1e-12).
    public static func normalQuantile(confidence: Double) -> Double {
        precondition(confidence > 0 && confidence < 1, "confidence must be in (0, 1)")
        let tail = (1 - confidence) / 2            // P(Z > z) = erfc(z / √2) / 2
        var lo = 0.0, hi = 40.0
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if erfc(mid / 2.0.squareRoot()) / 2 > tail { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// The Wilson score interval of `successes` out of `n` (nil when n = 0):
    /// centre (p̂ + z²/2n) / (1 + z²/n), half-width z·√(p̂(1−p̂)/n + z²/4n²) / (1 + z²/n).
    ///
    /// Unlike the normal (Wald) interval it stays inside [0, 1] and is not empty at 0 or n successes.
    public static func wilson(successes: Int, n: Int, confidence: Double = 0.95) -> Estimate? {
        guard n > 0 else { return nil }
        precondition(successes >= 0 && successes <= n, "successes must be in 0...n")
        let p = Double(successes) / Double(n)
        let (centre, half) = wilsonScore(p: p, n: Double(n), z: normalQuantile(confidence: confidence))
        // Clamp rounding at the ends (the exact interval starts at 0 for 0 successes, ends at 1 for n).
        let lo = successes == 0 ? 0 : max(0, centre - half)
        let hi = successes == n ? 1 : min(1, centre + half)
        return Estimate(value: p, lo: lo, hi: hi, n: n, interval: "wilson", successes: successes)
    }

    /// Centre and half-width of the Wilson score interval of a proportion p̂ estimated from n (possibly
    /// effective, non-integer) independent trials.
    static func wilsonScore(p: Double, n nn: Double, z: Double) -> (centre: Double, half: Double) {
        let denominator = 1 + z * z / nn
        let centre = (p + z * z / (2 * nn)) / denominator
        let half = z * (p * (1 - p) / nn + z * z / (4 * nn * nn)).squareRoot() / denominator
        return (centre, half)
    }

    /// A proportion over clustered answers — prompt i has `answers[i]` answers, a fraction `fractions[i]`
    /// of them successes — as the mean of the per-prompt fractions, with the Wilson interval at the
    /// design-effect effective sample size (Korn & Graubard 1998 with Clopper–Pearson; Franco, Little,
    /// Louis & Slud 2019 recommend Wilson): n_eff = p̂(1 − p̂) / v̂, v̂ = s²/n the variance of the mean over
    /// the n prompts (s² with n − 1), kept within [n, Σ answers]. The bounds are those of the true
    /// effective size: a [0, 1]-valued per-prompt fraction has variance at most p(1 − p) (n_eff ≥ n, the
    /// answers of a prompt all alike), and K answers drawn independently given the prompt have at least
    /// p(1 − p)/K (n_eff ≤ nK, no dependence). When v̂ cannot say (p̂ = 0 or 1, or one prompt), n_eff = n,
    /// the conservative end: the interval is then the Wilson interval of n single answers. nil when empty.
    public static func clusteredWilson(fractions: [Double], answers: [Int], confidence: Double = 0.95) -> Estimate? {
        precondition(fractions.count == answers.count, "one answer count per fraction")
        let n = fractions.count
        guard n > 0 else { return nil }
        let total = answers.reduce(0, +), nn = Double(n)
        let p = fractions.reduce(0, +) / nn
        var effective = nn
        if n > 1 && p > 0 && p < 1 {
            let s2 = fractions.reduce(0) { $0 + ($1 - p) * ($1 - p) } / (nn - 1)
            effective = s2 > 0 ? min(max(p * (1 - p) / (s2 / nn), nn), Double(total)) : Double(total)
        }
        let (centre, half) = wilsonScore(p: p, n: effective, z: normalQuantile(confidence: confidence))
        let lo = p == 0 ? 0 : max(0, centre - half)
        let hi = p == 1 ? 1 : min(1, centre + half)
        return Estimate(value: p, lo: lo, hi: hi, n: n, interval: "wilson-clustered", answers: total, effectiveN: effective)
    }

    /// The Wilson interval of the true values in `flags`.
    public static func wilson(_ flags: [Bool], confidence: Double = 0.95) -> Estimate? {
        wilson(successes: flags.reduce(0) { $0 + ($1 ? 1 : 0) }, n: flags.count, confidence: confidence)
    }

    /// The type-7 quantile (linear interpolation between order statistics) of sorted values.
    public static func quantile(sorted: [Double], _ q: Double) -> Double {
        precondition(!sorted.isEmpty, "quantile of no values")
        let h = Double(sorted.count - 1) * q
        let i = Int(h.rounded(.down)), f = h - Double(i)
        return i + 1 < sorted.count ? sorted[i] + f * (sorted[i + 1] - sorted[i]) : sorted[i]
    }
}

/// A seeded percentile bootstrap over prompts.
///
/// Every interval is the mean of per-prompt values (a win score in {0, ½, 1}, a difference of two
/// models' scores on the same prompt, or a score), resampled `samples` times by drawing n prompt
/// indices with replacement; the interval is the (α/2, 1 − α/2) type-7 quantiles of the resampled
/// means. The index draws depend only on (seed, n), so every quantity over the same prompts is
/// resampled with the same draws (paired across models) and the results do not depend on the order
/// in which quantities are computed or on the number of ranks.
public final class Bootstrap {
    public let samples: Int
    public let seed: UInt64
    public let confidence: Double
    /// Resample indices per prompt count n: `samples` rows of n indices.   // (samples, n)
    private var draws: [Int: [Int32]] = [:]

    public init(samples: Int = 2000, seed: UInt64 = 0, confidence: Double = 0.95) {
        precondition(samples >= 1, "the bootstrap needs at least one resample")
        precondition(confidence > 0 && confidence < 1, "confidence must be in (0, 1)")
        self.samples = samples; self.seed = seed; self.confidence = confidence
    }

    /// The resample indices for n prompts.   // (samples, n)
    func indices(n: Int) -> [Int32] {
        if let d = draws[n] { return d }
        var rng = SplitMix64(seed: SplitMix64.mix(seed ^ (UInt64(n) &* 0x9E37_79B9_7F4A_7C15)))
        var d = [Int32](repeating: 0, count: samples * n)
        for k in d.indices { d[k] = Int32(truncatingIfNeeded: rng.next() % UInt64(n)) }
        draws[n] = d
        return d
    }

    /// The resampled means of `values`, sorted.
    public func resampledMeans(_ values: [Double]) -> [Double] {
        let n = values.count
        precondition(n > 0, "bootstrap of no values")
        let idx = indices(n: n)
        var means = [Double](repeating: 0, count: samples)
        for b in 0..<samples {
            var s = 0.0
            for k in 0..<n { s += values[Int(idx[b * n + k])] }
            means[b] = s / Double(n)
        }
        return means.sorted()
    }

    /// The mean of `values` with its percentile interval (nil when empty).
    public func mean(_ values: [Double]) -> Estimate? {
        guard !values.isEmpty else { return nil }
        let means = resampledMeans(values)
        let alpha = 1 - confidence
        return Estimate(value: values.reduce(0, +) / Double(values.count),
                        lo: Statistics.quantile(sorted: means, alpha / 2),
                        hi: Statistics.quantile(sorted: means, 1 - alpha / 2),
                        n: values.count, interval: "bootstrap")
    }
}
