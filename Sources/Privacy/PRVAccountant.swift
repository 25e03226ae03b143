// The PRV accountant (Opacus' `PRVAccountant`, after Gopi et al. 2021): discretise each segment's
// privacy-loss distribution on one mesh, compose a segment's steps by an FFT power and segments by
// convolution, and read ε(δ) from the composed distribution's tails.

import Foundation

/// Numerical-composition accountant. ε is the upper bound ε(δ − δ_err) + eps_error, with Opacus' defaults
/// eps_error = 0.01 and δ_err = δ/1000.
///
/// Composition within a segment uses a zero-padded power-of-two real FFT (Opacus transforms at the mesh
/// size itself, a circular convolution of that length); the two differ only in where the mass that leaves
/// the domain wraps (which the domain is chosen to make negligible) and in rounding: Opacus' own code run both
/// ways moves ε by ≤ 6e-8 at δ = 1e-5 and ≤ 1.5e-6 at δ = 1e-7 (docs/privacy.md).
public struct PRVAccountant: PrivacyAccountant, Equatable {
    public static let mechanism = AccountantMechanism.prv
    public private(set) var history: [PrivacySegment]
    /// The ε error the mesh is sized for and that the upper bound adds.
    public var epsError = 0.01
    /// The δ error; nil means δ/1000.
    public var deltaError: Double? = nil

    public init(history: [PrivacySegment]) throws { self.history = try validatedHistory(history) }

    public mutating func step(noiseMultiplier: Double, sampleRate: Double, steps: Int) throws {
        try appendSteps(&history, noiseMultiplier: noiseMultiplier, sampleRate: sampleRate, steps: steps)
    }

    public func epsilon(delta: Double) throws -> Double { try epsilonBounds(delta: delta).upper }

    /// (lower, estimate, upper) ε at δ; the accountant's ε is the upper bound. 0 for an empty history.
    public func epsilonBounds(delta: Double) throws -> (lower: Double, estimate: Double, upper: Double) {
        try PrivacyError.checkDelta(delta)
        guard epsError > 0, epsError.isFinite else {
            throw PrivacyError(.invalidParameter, field: "epsError", "eps_error = \(epsError) must be a finite number > 0 (Opacus: 0.01).")
        }
        let deltaError = self.deltaError ?? delta / 1000
        guard deltaError > 0, deltaError < delta else {
            throw PrivacyError(.invalidParameter, field: "deltaError", "δ_err = \(deltaError) must lie in (0, δ) (default δ/1000).")
        }
        let segments = history.filter { $0.steps > 0 && $0.sampleRate > 0 }   // q = 0 steps lose nothing
        if segments.isEmpty { return (0, 0, 0) }
        if segments.contains(where: { $0.noiseMultiplier == 0 && $0.sampleRate > 0 }) {
            return (.infinity, .infinity, .infinity)           // a step without noise: no finite ε
        }
        let composed = try composedDistribution(segments: segments, epsError: epsError, deltaError: deltaError)
        return try composed.epsilon(delta: delta, deltaError: deltaError, epsError: epsError)
    }

    /// The discretised, composed privacy-loss distribution of the segments.
    func composedDistribution(segments: [PrivacySegment], epsError: Double, deltaError: Double) throws -> DiscretePRV {
        let totalSteps = segments.reduce(0) { $0 + $1.steps }
        let halfWidth = Self.safeDomainHalfWidth(segments: segments, epsError: epsError, deltaError: deltaError)
        let mesh = epsError / (Double(totalSteps) * log(12 / deltaError) / 2).squareRoot()
        let domain = try PRVDomain.aligned(tMin: -halfWidth, tMax: halfWidth, dt: mesh)
        var parts: [DiscretePRV] = []
        for segment in segments {
            let prv = SubsampledGaussianPRV(sampleRate: segment.sampleRate, noiseMultiplier: segment.noiseMultiplier)
            let truncated = TruncatedPRV(prv, tMin: domain.tMin, tMax: domain.tMax)
            let discrete = try DiscretePRV.discretize(truncated, on: domain)
            parts.append(PRVComposition.selfCompose(discrete, times: segment.steps))
        }
        return PRVComposition.composeTree(parts)
    }

    /// The half-width L of the mesh (Gopi et al. Remark 5.6, as Opacus): the RDP ε of the whole history at
    /// δ_err/4 and of one step of each segment at δ_err/(8·steps), at least eps_error, plus 3.
    static func safeDomainHalfWidth(segments: [PrivacySegment], epsError: Double, deltaError: Double) -> Double {
        let orders = RDPAnalysis.defaultOrders
        let totalSteps = segments.reduce(0) { $0 + $1.steps }
        var width = RDPAnalysis.epsilon(orders: orders, rdp: RDPAnalysis.rdp(history: segments, orders: orders),
                                        delta: deltaError / 4).epsilon
        for segment in segments {
            var single = segment
            single.steps = 1
            let eps = RDPAnalysis.epsilon(orders: orders, rdp: RDPAnalysis.rdp(history: [single], orders: orders),
                                          delta: deltaError / (8 * Double(totalSteps))).epsilon
            width = max(width, eps)
        }
        return max(width, epsError) + 3
    }

    public init(from decoder: Decoder) throws { try self.init(state: try AccountantState(from: decoder)) }

    public func encode(to encoder: Encoder) throws { try state.encode(to: encoder) }
}

/// Composition of discretised PRVs on one mesh whose zero is point size/2 − 1.
enum PRVComposition {
    /// The n-fold self-convolution of a PMF, re-centred on the same mesh: a zero-padded real FFT raised to
    /// the n-th power; the mean shift is multiplied by n.
    static func selfCompose(_ prv: DiscretePRV, times n: Int) -> DiscretePRV {
        let size = prv.pmf.count
        let domain = prv.domain.shiftedRight(by: prv.domain.shifts * Double(n - 1))
        if n == 1 { return DiscretePRV(pmf: prv.pmf, domain: domain) }
        let fftSize = max(2, nextPowerOfTwo(size))
        let fft = FFTPlans.real(count: fftSize)
        var padded = prv.pmf
        padded.append(contentsOf: repeatElement(0, count: fftSize - size))
        var (re, im) = fft.forward(padded)
        for k in re.indices { (re[k], im[k]) = complexPower(re[k], im[k], n) }
        let composed = fft.inverse(re: re, im: im)                  // (fftSize) circular n-fold convolution
        // Mesh point r (value (r − k)·dt, k = size/2 − 1) sums indices adding up to r + (n − 1)·k.
        let zero = size / 2 - 1
        let offset = Int((UInt64(n - 1) &* UInt64(zero)) % UInt64(fftSize))
        var pmf = [Double](repeating: 0, count: size)
        for r in 0..<size { pmf[r] = composed[(r + offset) & (fftSize - 1)] }
        return DiscretePRV(pmf: pmf, domain: domain)
    }

    /// The convolution of two PMFs on the same mesh, cut to the mesh ("same" mode), by FFT; the domain
    /// takes the right operand's shift.
    static func composeTwo(_ left: DiscretePRV, _ right: DiscretePRV) -> DiscretePRV {
        let size = left.pmf.count
        let fftSize = nextPowerOfTwo(2 * size - 1)
        let fft = FFTPlans.real(count: fftSize)
        var a = left.pmf, b = right.pmf
        a.append(contentsOf: repeatElement(0, count: fftSize - size))
        b.append(contentsOf: repeatElement(0, count: fftSize - size))
        var (ar, ai) = fft.forward(a)
        let (br, bi) = fft.forward(b)
        for k in ar.indices { (ar[k], ai[k]) = (ar[k] * br[k] - ai[k] * bi[k], ar[k] * bi[k] + ai[k] * br[k]) }
        let full = fft.inverse(re: ar, im: ai)                      // (fftSize) linear convolution, 2·size − 1 used
        let start = (size - 1) / 2
        return DiscretePRV(pmf: Array(full[start..<start + size]), domain: left.domain.shiftedRight(by: right.domain.shifts))
    }

    /// Pairwise convolution of neighbours until one PMF is left (Opacus' tree; an odd last one waits a round).
    static func composeTree(_ prvs: [DiscretePRV]) -> DiscretePRV {
        var level = prvs
        while level.count > 1 {
            var next: [DiscretePRV] = []
            if level.count % 2 == 1 { next.append(level.removeLast()) }
            for i in stride(from: 0, to: level.count, by: 2) { next.append(composeTwo(level[i], level[i + 1])) }
            level = next
        }
        return level[0]
    }

    /// zⁿ by repeated squaring.
    static func complexPower(_ re: Double, _ im: Double, _ n: Int) -> (Double, Double) {
        var (rr, ri) = (1.0, 0.0), (br, bi) = (re, im), e = n
        while e > 0 {
            if e & 1 == 1 { (rr, ri) = (rr * br - ri * bi, rr * bi + ri * br) }
            e >>= 1
            if e > 0 { (br, bi) = (br * br - bi * bi, 2 * br * bi) }
        }
        return (rr, ri)
    }

    static func nextPowerOfTwo(_ n: Int) -> Int {
        var p = 1
        while p < n { p <<= 1 }
        return p
    }
}
