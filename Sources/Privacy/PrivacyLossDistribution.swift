// The privacy-loss random variable (PRV) of one Poisson-subsampled Gaussian step, its truncation to a
// domain, and its discretisation on a uniform mesh with the mean corrected (Gopi, Lee & Wutschitz 2021,
// Prop. B4 and §5; Opacus `analysis/prv/{prvs,domain}.py`).

import Foundation
import Tensors

/// The PRV of one step of the Poisson-subsampled Gaussian with rate q and noise multiplier σ.
struct SubsampledGaussianPRV {
    let sampleRate: Double
    let noiseMultiplier: Double

    /// P(Y ≤ t) with z = log((eᵗ + q − 1)/q): 1 − q·erfc((2zσ² − 1)/(2√2σ))/2 − (1 − q)·erfc((2zσ² + 1)/(2√2σ))/2
    /// for t > log(1 − q), else 0.
    func cdf(_ t: Double) -> Double {
        let q = sampleRate, s = noiseMultiplier
        guard t > log(1 - q) else { return 0 }
        let z = log((exp(t) + q - 1) / q)
        let k = 2 * SpecialFunctions.sqrt2 * s
        return -q * erfc((2 * z * s * s - 1) / k) / 2 - (1 - q) * erfc((2 * z * s * s + 1) / k) / 2 + 1
    }
}

/// A PRV truncated to [tMin, tMax] and renormalised.
struct TruncatedPRV {
    let prv: SubsampledGaussianPRV
    let tMin: Double
    let tMax: Double
    private let cdfAtMin: Double
    private let remainingMass: Double

    init(_ prv: SubsampledGaussianPRV, tMin: Double, tMax: Double) {
        self.prv = prv
        self.tMin = tMin
        self.tMax = tMax
        cdfAtMin = prv.cdf(tMin)
        remainingMass = prv.cdf(tMax) - cdfAtMin
    }

    func cdf(_ t: Double) -> Double {
        if t < tMin { return 0 }
        if t >= tMax { return 1 }
        return (prv.cdf(t) - cdfAtMin) / remainingMass
    }

    /// E[Y] = ∫ t dF = Σ over pieces [t·F(t)]_a^b − ∫_a^b F, each integral by adaptive Gauss–Kronrod. The
    /// break points are Opacus' (1.6): 10 log-spaced points from −10^⌊log₁₀|tMin|⌋ to −10⁻⁵, zero, 10 from
    /// 10⁻⁵ to 10^⌊log₁₀ tMax⌋, so the near-step of F just above log(1 − q) at small σ is not missed.
    func mean() -> Double {
        func logspace(_ start: Double, _ stop: Double) -> [Double] {
            (0..<10).map { pow(10, $0 == 9 ? stop : start + Double($0) * (stop - start) / 9) }
        }
        let lower = Double(Int(log10(abs(tMin)))), upper = Double(Int(log10(tMax)))
        let points = [tMin] + logspace(lower, -5).map { -$0 } + [0] + logspace(-5, upper) + [tMax]
        var mean = 0.0
        for (left, right) in zip(points.dropLast(), points.dropFirst()) {
            let integral = Quadrature.integrate({ cdf($0) }, from: left, to: right)
            mean += right * cdf(right) - left * cdf(left) - integral
        }
        return mean
    }
}

/// A uniform mesh t_i = tMin + i·dt, i = 0 ..< size (even), plus the shift its PMF's mean correction
/// has accumulated.
struct PRVDomain: Equatable {
    var tMin: Double
    var tMax: Double
    var size: Int
    var shifts: Double = 0

    /// The mesh from tMin to tMax aligned to multiples of dt (zero is a mesh point), grown by one point
    /// when its size would be odd.
    static func aligned(tMin: Double, tMax: Double, dt: Double) throws -> PRVDomain {
        let lo = floor(tMin / dt) * dt
        var hi = ceil(tMax / dt) * dt
        var size = Int(((hi - lo) / dt).rounded()) + 1
        if size % 2 == 1 { size += 1; hi += dt }
        let domain = PRVDomain(tMin: lo, tMax: hi, size: size)
        guard abs(domain.dt - dt) / dt < 1e-8 else {
            throw PrivacyError(.numericalFailure, field: "prv domain",
                               "the mesh of [\(lo), \(hi)] with \(size) points does not reproduce dt = \(dt); "
                               + "use a larger eps_error or the rdp accountant.")
        }
        return domain
    }

    var dt: Double { (tMax - tMin) / Double(size - 1) }

    /// Point i of the mesh as numpy's linspace computes it (i·step + start, the last point exactly tMax).
    func point(_ i: Int) -> Double { i == size - 1 ? tMax : Double(i) * dt + tMin }

    func shiftedRight(by delta: Double) -> PRVDomain {
        PRVDomain(tMin: tMin + delta, tMax: tMax + delta, size: size, shifts: shifts + delta)
    }
}

/// A PMF on a domain: the discretised (and later composed) privacy-loss distribution.
struct DiscretePRV {
    var pmf: [Double]                       // (size)
    var domain: PRVDomain

    /// Discretises `prv` on `domain`: each point gets the mass of its cell [t − dt/2, t + dt/2), then the
    /// domain shifts by (continuous mean − discrete mean) so the PMF has the PRV's mean.
    /// - Throws: `.numericalFailure` when the shift reaches half a cell (the mesh cannot represent the PRV).
    static func discretize(_ prv: TruncatedPRV, on domain: PRVDomain) throws -> DiscretePRV {
        let n = domain.size, dt = domain.dt
        var edges = [Double](repeating: 0, count: n + 1)            // (n+1) cdf at cell edges
        let chunk = 1 << 15
        edges.withUnsafeMutableBufferPointer { out in
            let out = out.baseAddress!
            parallelFor((n + chunk) / chunk) { c in
                for i in c * chunk..<min(n + 1, (c + 1) * chunk) {
                    out[i] = prv.cdf(i < n ? domain.point(i) - dt / 2 : domain.point(n - 1) + dt / 2)
                }
            }
        }
        var pmf = [Double](repeating: 0, count: n)
        var discreteMean = 0.0
        for i in 0..<n {
            pmf[i] = edges[i + 1] - edges[i]
            discreteMean += domain.point(i) * pmf[i]
        }
        let shift = prv.mean() - discreteMean
        guard abs(shift) < dt / 2 else {
            throw PrivacyError(.numericalFailure, field: "prv discretisation",
                               "the discrete mean differs from the continuous one by \(shift) (≥ half the mesh \(dt / 2)) for "
                               + "σ = \(prv.prv.noiseMultiplier), q = \(prv.prv.sampleRate) (this happens at very large ε); "
                               + "use the rdp accountant, or more noise.")
        }
        return DiscretePRV(pmf: pmf, domain: domain.shiftedRight(by: shift))
    }

    /// (ε lower, ε estimate, ε upper) at δ: the ε solving δ = Σ_{t_i ≥ ε} p_i (1 − e^{ε − t_i}) at δ + δ_err,
    /// δ and δ − δ_err, the bounds widened by eps_error.
    func epsilon(delta: Double, deltaError: Double, epsError: Double) throws -> (lower: Double, estimate: Double, upper: Double) {
        let n = pmf.count
        // Opacus refuses when the extended-precision sums could not resolve δ − δ_err.
        guard 1.0842021724855044e-19 * Double(n) <= delta - deltaError else {
            throw PrivacyError(.numericalFailure, field: "delta",
                               "δ = \(delta) is too small for a PRV mesh of \(n) points; increase δ or eps_error.")
        }
        var tail = [Double](repeating: 0, count: n)                 // (n) Σ_{j ≥ i} p_j
        var weightedTail = [Double](repeating: 0, count: n)         // (n) Σ_{j ≥ i} p_j e^{−t_j}
        var negativeDelta = [Double](repeating: 0, count: n)        // (n) −δ(t_i), nondecreasing in i
        var s1 = 0.0, s2 = 0.0
        for i in stride(from: n - 1, through: 0, by: -1) {
            s1 += pmf[i]
            s2 += pmf[i] * exp(-domain.point(i))
            tail[i] = s1
            weightedTail[i] = s2
        }
        for i in 0..<n { negativeDelta[i] = exp(domain.point(i)) * weightedTail[i] - tail[i] }

        func solve(_ target: Double) throws -> Double {
            // The first i with −δ(t_i) ≥ −target (binary search as numpy's searchsorted, side "left").
            var lo = 0, hi = n
            while lo < hi {
                let mid = lo + (hi - lo) / 2
                if negativeDelta[mid] < -target { lo = mid + 1 } else { hi = mid }
            }
            guard lo > 0, lo < n else {
                throw PrivacyError(.numericalFailure, field: "prv epsilon",
                                   "δ = \(target) lies outside the composed distribution's range; "
                                   + "the PRV accountant cannot compute ε here: use the rdp accountant.")
            }
            return log((tail[lo] - target) / weightedTail[lo])
        }
        let upper = try solve(delta - deltaError) + epsError
        let lower = try solve(delta + deltaError) - epsError
        return (lower, try solve(delta), upper)
    }
}
