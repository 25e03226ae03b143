// Discrete Fourier transforms in Double for the PRV accountant: an iterative radix-2 complex FFT on split
// real/imaginary arrays, the real-input transform through a half-length complex one, and a naive DFT
// reference. Convention: X[k] = Σ_j x[j] e^{−2πi jk/n}; the inverse divides by n.
// Legend: n transform length (a power of two), h = n/2.

import Foundation

/// A radix-2 complex FFT of one power-of-two length, with its twiddles and bit-reversal table.
/// The passes whose butterflies span at most `blockSize` points run block by block while the block is in
/// cache; only the last log₂(n/blockSize) passes stream over the whole array.
public struct ComplexFFT: Sendable {
    public let count: Int
    private let twiddleRe: [Double]         // (n − 1) pass with half-size h keeps cos(πk/h), k < h, at h − 1 + k
    private let twiddleIm: [Double]         // (n − 1) the matching −sin(πk/h)
    private let reversed: [Int32]           // (n) bit-reversed index
    /// Points per cache block (16 K complex Doubles = 256 KiB).
    private static let blockSize = 1 << 14

    /// - Precondition: `count` is a power of two ≥ 1.
    public init(count: Int) {
        precondition(count >= 1 && count & (count - 1) == 0, "ComplexFFT: length \(count) is not a power of two")
        self.count = count
        // The last pass's twiddles by sin/cos (n/2 of them); every earlier pass takes every (n/2h)-th of them.
        var re = [Double](repeating: 1, count: max(count - 1, 0)), im = [Double](repeating: 0, count: max(count - 1, 0))
        let top = count / 2
        for k in 0..<top {
            let angle = Double.pi * Double(k) / Double(top)
            re[top - 1 + k] = cos(angle)
            im[top - 1 + k] = -sin(angle)
        }
        var half = 1
        while half < top {
            let step = top / half
            for k in 0..<half {
                re[half - 1 + k] = re[top - 1 + k * step]
                im[half - 1 + k] = im[top - 1 + k * step]
            }
            half *= 2
        }
        twiddleRe = re
        twiddleIm = im
        var table = [Int32](repeating: 0, count: count)
        let bits = count.trailingZeroBitCount
        for i in 0..<count {
            var r = 0, x = i
            for _ in 0..<bits { r = (r << 1) | (x & 1); x >>= 1 }
            table[i] = Int32(r)
        }
        reversed = table
    }

    /// In-place transform of (re, im), each of length `count`: forward (e^{−2πi…}) or unscaled inverse (e^{+2πi…}).
    public func transform(re: inout [Double], im: inout [Double], inverse: Bool = false) {
        precondition(re.count == count && im.count == count, "ComplexFFT: arrays of \(re.count), \(im.count), expected \(count)")
        let n = count
        re.withUnsafeMutableBufferPointer { r in
            im.withUnsafeMutableBufferPointer { m in
                twiddleRe.withUnsafeBufferPointer { wr in
                    twiddleIm.withUnsafeBufferPointer { wi in
                        reversed.withUnsafeBufferPointer { rev in
                            let re = r.baseAddress!, im = m.baseAddress!
                            for i in 0..<n {
                                let j = Int(rev[i])
                                if j > i { swap(&re[i], &re[j]); swap(&im[i], &im[j]) }
                            }
                            let block = min(n, Self.blockSize)
                            for start in stride(from: 0, to: n, by: block) {
                                var half = 1
                                while half < block {
                                    Self.pass(re, im, from: start, to: start + block, half: half,
                                              wr: wr.baseAddress!, wi: wi.baseAddress!, sign: inverse ? -1 : 1)
                                    half *= 2
                                }
                            }
                            var half = block
                            while half < n {
                                Self.pass(re, im, from: 0, to: n, half: half, wr: wr.baseAddress!, wi: wi.baseAddress!,
                                          sign: inverse ? -1 : 1)
                                half *= 2
                            }
                        }
                    }
                }
            }
        }
    }

    /// One butterfly pass over [from, to): pairs (a, a + half) in groups of 2·half, twiddle e^{∓πik/half}.
    @inline(__always)
    private static func pass(_ re: UnsafeMutablePointer<Double>, _ im: UnsafeMutablePointer<Double>, from: Int, to: Int,
                             half: Int, wr: UnsafePointer<Double>, wi: UnsafePointer<Double>, sign: Double) {
        let tr0 = wr + (half - 1), ti0 = wi + (half - 1)
        var group = from
        while group < to {
            let ar = re + group, ai = im + group, br = re + group + half, bi = im + group + half
            for k in 0..<half {
                let cr = tr0[k], ci = sign * ti0[k]
                let xr = br[k] * cr - bi[k] * ci
                let xi = br[k] * ci + bi[k] * cr
                br[k] = ar[k] - xr; bi[k] = ai[k] - xi
                ar[k] += xr; ai[k] += xi
            }
            group += 2 * half
        }
    }
}

/// The FFT of a real sequence of power-of-two length n ≥ 2 through a complex FFT of length n/2:
/// the spectrum's bins 0…n/2 (the rest are conjugates).
public struct RealFFT: Sendable {
    public let count: Int
    private let inner: ComplexFFT
    private let cosTable: [Double]          // (n/2) cos(2πk/n)
    private let sinTable: [Double]          // (n/2) sin(2πk/n)

    public init(count: Int) {
        precondition(count >= 2 && count & (count - 1) == 0, "RealFFT: length \(count) is not a power of two ≥ 2")
        self.count = count
        inner = ComplexFFT(count: count / 2)
        cosTable = (0..<count / 2).map { cos(2 * Double.pi * Double($0) / Double(count)) }
        sinTable = (0..<count / 2).map { sin(2 * Double.pi * Double($0) / Double(count)) }
    }

    /// The spectrum X[0…n/2] of the real x (n values): (re, im) of n/2 + 1 bins each.
    public func forward(_ x: [Double]) -> (re: [Double], im: [Double]) {
        precondition(x.count == count, "RealFFT.forward: \(x.count) values, expected \(count)")
        let h = count / 2
        var zr = [Double](repeating: 0, count: h), zi = [Double](repeating: 0, count: h)   // (h) z[j] = x[2j] + i·x[2j+1]
        for j in 0..<h { zr[j] = x[2 * j]; zi[j] = x[2 * j + 1] }
        inner.transform(re: &zr, im: &zi)
        var xr = [Double](repeating: 0, count: h + 1), xi = [Double](repeating: 0, count: h + 1)
        xr[0] = zr[0] + zi[0]; xi[0] = 0
        xr[h] = zr[0] - zi[0]; xi[h] = 0
        for k in 1..<max(h, 1) {
            // E = (Z[k] + conj Z[h−k])/2 (even samples), O = (Z[k] − conj Z[h−k])/(2i) (odd samples)
            let ar = zr[k], ai = zi[k], br = zr[h - k], bi = -zi[h - k]
            let er = 0.5 * (ar + br), ei = 0.5 * (ai + bi)
            let or = 0.5 * (ai - bi), oi = -0.5 * (ar - br)
            let wr = cosTable[k], wi = -sinTable[k]              // e^{−2πik/n}
            xr[k] = er + (or * wr - oi * wi)
            xi[k] = ei + (or * wi + oi * wr)
        }
        return (xr, xi)
    }

    /// The real sequence (n values) whose spectrum bins 0…n/2 are (re, im), including the 1/n.
    public func inverse(re xr: [Double], im xi: [Double]) -> [Double] {
        let h = count / 2
        precondition(xr.count == h + 1 && xi.count == h + 1, "RealFFT.inverse: \(xr.count) bins, expected \(h + 1)")
        var zr = [Double](repeating: 0, count: h), zi = [Double](repeating: 0, count: h)
        for k in 0..<h {
            // E = (X[k] + conj X[h−k])/2, O = (X[k] − conj X[h−k])·e^{+2πik/n}/2, Z[k] = E + i·O
            let ar = xr[k], ai = xi[k], br = xr[h - k], bi = -xi[h - k]
            let er = 0.5 * (ar + br), ei = 0.5 * (ai + bi)
            let dr = 0.5 * (ar - br), di = 0.5 * (ai - bi)
            let wr = cosTable[k], wi = sinTable[k]
            let or = dr * wr - di * wi, oi = dr * wi + di * wr
            zr[k] = er - oi
            zi[k] = ei + or
        }
        inner.transform(re: &zr, im: &zi, inverse: true)
        var x = [Double](repeating: 0, count: count)
        let scale = 1 / Double(h)
        for j in 0..<h { x[2 * j] = zr[j] * scale; x[2 * j + 1] = zi[j] * scale }
        return x
    }
}

/// Real-FFT plans by length, so repeated accountant calls (a σ search) reuse twiddle tables.
enum FFTPlans {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var plans: [Int: RealFFT] = [:]

    /// The plan of this length, built once; only the few most recent lengths are kept.
    static func real(count: Int) -> RealFFT {
        lock.lock()
        defer { lock.unlock() }
        if let plan = plans[count] { return plan }
        if plans.count >= 4 { plans.removeAll() }
        let plan = RealFFT(count: count)
        plans[count] = plan
        return plan
    }
}

/// The naive O(n²) DFT of any length: the reference the FFTs are tested against.
public func naiveDFT(re: [Double], im: [Double], inverse: Bool = false) -> (re: [Double], im: [Double]) {
    let n = re.count
    var outR = [Double](repeating: 0, count: n), outI = [Double](repeating: 0, count: n)
    let sign: Double = inverse ? 1 : -1
    for k in 0..<n {
        var sr = 0.0, si = 0.0
        for j in 0..<n {
            let angle = sign * 2 * Double.pi * Double((j * k) % n) / Double(n)
            let c = cos(angle), s = sin(angle)
            sr += re[j] * c - im[j] * s
            si += re[j] * s + im[j] * c
        }
        outR[k] = sr; outI[k] = si
    }
    return (outR, outI)
}
