// The secure noise's SIMD Box–Muller: ln, √, sin 2π· and cos 2π· against Foundation's double-precision
// functions on every input the noise uses (the stated error bound, 4e-7 relative), the four-normal sum
// against its Double reference on the same keystream words, and 4 194 304 draws against N(0, 1): mean,
// variance and kurtosis within 5 standard errors, and a binned χ² whose threshold the same draws scaled to
// a 1 % larger variance exceed. `addNoise` is tested with every kernel this processor runs (the Swift
// fallback and the AVX2 / AVX-512 C kernels, `FastGaussian.Kernel`), under fixed keys so the tests are
// deterministic: the statistics on the dispatched kernel's draws, which every other kernel must reproduce
// bit for bit.

import Foundation
import XCTest
@testable import Privacy

final class FastGaussianTests: XCTestCase {
    /// Relative error bound of ln, √, sin and cos (measured ≤ 2.1e-7; see FastGaussian.swift).
    let bound = 4e-7

    /// Checks |fast − reference| ≤ bound·|reference| + 1e-15 (the floor covers the zeros of sin and cos, where
    /// Foundation's sin π is 1.2e-16 and the polynomial gives 0) and returns the largest relative error.
    private func check(_ fast: Float, _ reference: Double, _ name: String, _ input: Double, worst: inout Double) -> Bool {
        let diff = abs(Double(fast) - reference)
        if reference != 0 { worst = max(worst, max(0, diff - 1e-15) / abs(reference)) }
        guard diff <= bound * abs(reference) + 1e-15 else {
            XCTFail("\(name)(\(input)) = \(fast), Foundation \(reference): |diff| \(diff) exceeds \(bound) relative")
            return false
        }
        return true
    }

    func testLogSquareRootSinCosOnEveryUniformWithinBound() {
        var worstLog = 0.0, worstRoot = 0.0, worstSin = 0.0, worstCos = 0.0
        let lanes = FastGaussian.Floats.scalarCount
        // Radii: u = k·2⁻²⁴ for k = 1 … 2²⁴; angles: u = k·2⁻²⁴ for k = 0 … 2²⁴ − 1.
        for start in stride(from: 0, to: 1 << 24, by: lanes) {
            var radius = FastGaussian.Floats(), angle = FastGaussian.Floats()
            for j in 0..<lanes { radius[j] = Float(start + j + 1) * 0x1p-24; angle[j] = Float(start + j) * 0x1p-24 }
            let l = FastGaussian.log(radius), y = -2 * l, r = FastGaussian.squareRoot(y)
            let (s, c) = FastGaussian.sinCosTwoPi(angle)
            for j in 0..<lanes {
                let u = Double(radius[j]), v = Double(angle[j])
                guard check(l[j], log(u), "ln", u, worst: &worstLog),
                      check(r[j], Double(y[j]).squareRoot(), "√", Double(y[j]), worst: &worstRoot),
                      check(s[j], sin(2 * .pi * v), "sin 2π·", v, worst: &worstSin),
                      check(c[j], cos(2 * .pi * v), "cos 2π·", v, worst: &worstCos) else { return }
            }
        }
        XCTAssertEqual(FastGaussian.log(FastGaussian.Floats(repeating: 1))[0], 0, "ln 1 is exactly 0")
        XCTAssertEqual(FastGaussian.squareRoot(FastGaussian.Floats(repeating: 0))[0], 0, "√0 is 0, not NaN")
        print("FastGaussian max relative error over 2^24 inputs: ln \(worstLog), √ \(worstRoot), sin \(worstSin), cos \(worstCos)")
    }

    func testOpacusNormalsMatchTheDoubleReference() {
        var cipher = ChaCha20(key: [1, 2, 3, 4, 5, 6, 7, 8])
        let groups = 1 << 13, words = UnsafeMutablePointer<FastGaussian.Words>.allocate(capacity: 16 * groups)
        defer { words.deallocate() }
        cipher.nextBlocks(groups: groups, into: words)                    // 3 · 43 690 sets of 8 values
        var worst = 0.0
        for g in 0..<(16 * groups / 3) {
            let a = words[3 * g], b = words[3 * g + 1], c = words[3 * g + 2]
            let fast = FastGaussian.opacusNormals(a, b, c), reference = FastGaussian.referenceNormals(a, b, c)
            for j in 0..<8 {
                let scale = reference[j].z.reduce(0) { $0 + abs($1) } / 2, diff = abs(Double(fast[j]) - reference[j].sum)
                worst = max(worst, diff / scale)
                guard diff <= 6e-7 * scale + 1e-12 else {
                    return XCTFail("(z₁+z₂+z₃+z₄)/2 = \(fast[j]), Double reference \(reference[j].sum): |diff| \(diff) exceeds 6e-7 · Σ|zᵢ|/2 = \(6e-7 * scale)")
                }
            }
        }
        print("FastGaussian max |fast − reference| / (Σ|zᵢ|/2): \(worst)")
    }

    func testPairSumIsCosinePlusSineBitForBit() {
        let lanes = FastGaussian.Floats.scalarCount
        for start in stride(from: 0, to: 1 << 24, by: 4099 * lanes) {     // angles across all quadrants
            var angle = FastGaussian.Floats(), radius = FastGaussian.Floats()
            for j in 0..<lanes { angle[j] = Float(start + 511 * j) * 0x1p-24; radius[j] = 0.5 + Float(j) }
            let (s, c) = FastGaussian.sinCosTwoPi(angle), sum = FastGaussian.pairSum(radius: radius, angle: angle)
            for j in 0..<lanes where sum[j] != radius[j] * c[j] + radius[j] * s[j] {
                return XCTFail("pairSum at u = \(angle[j]): \(sum[j]), r·cos + r·sin = \(radius[j] * c[j] + radius[j] * s[j])")
            }
        }
    }

    /// Runs `body` once per kernel this processor runs, with `FastGaussian.kernel` set to it.
    private func forEachKernel(_ body: (FastGaussian.Kernel) -> Void) {
        let saved = FastGaussian.kernel
        defer { FastGaussian.kernel = saved }
        for kernel in FastGaussian.Kernel.available {
            FastGaussian.kernel = kernel
            body(kernel)
        }
    }

    func testAddNoiseAddsToEveryValueIncludingTheTail() {
        let count = 1003, scale: Float = 1e-3                             // 7 refills of 128 values, then 107 (the last 3 in a partial group)
        forEachKernel { kernel in
            // Zeros, so every value is the noise itself: a value left unchanged stays exactly 0. (Added to 5, noise
            // below half of 5's float spacing, |z| < 2.4e-4 at this scale, rounds away: a 17 % chance over 1,003 values.)
            var values = [Float](repeating: 0, count: count)
            let generator = ChaCha20Random(key: [11, 12, 13, 14, 15, 16, 17, 18])
            values.withUnsafeMutableBufferPointer { FastGaussian.addNoise(to: $0.baseAddress!, count: count, scale: scale, generator: generator) }
            for (i, v) in values.enumerated() {
                XCTAssert(v != 0 && abs(v) <= 11.6 * scale, "\(kernel): value \(i): \(v) is not noise with 0 < |noise| ≤ 11.6 · \(scale)")
            }
        }
    }

    /// The χ² statistic of `values` in 20 bins of probability 1/20 each under N(0, 1).
    private func binnedChiSquare(_ values: [Float], scale: Double = 1) -> Double {
        let bins = 20
        var counts = [Int](repeating: 0, count: bins)
        for v in values {
            let cdf = 0.5 * erfc(-Double(v) * scale / 2.0.squareRoot())
            counts[min(bins - 1, Int(cdf * Double(bins)))] += 1
        }
        let expected = Double(values.count) / Double(bins)
        return counts.reduce(0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
    }

    /// `n` draws from a generator under a fixed key, by `FastGaussian.kernel`.
    private func draws(_ n: Int) -> [Float] {
        var values = [Float](repeating: 0, count: n)
        let generator = ChaCha20Random(key: [21, 22, 23, 24, 25, 26, 27, 28])
        values.withUnsafeMutableBufferPointer { FastGaussian.addNoise(to: $0.baseAddress!, count: n, scale: 1, generator: generator) }
        return values
    }

    func testFourMillionDrawsAreStandardNormal() {
        // The statistics on the dispatched kernel's draws; every other kernel gives the same draws bit for bit
        // (same key), so they hold for it too without computing them again (slow in a debug build).
        let n = 1 << 22, kernel = FastGaussian.kernel, values = draws(n)
        forEachKernel { other in
            guard other != kernel else { return }
            let same = draws(n)
            XCTAssert(zip(values, same).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(other) draws differ from \(kernel)'s under the same key")
        }
        var s1 = 0.0, s2 = 0.0, s4 = 0.0
        for v in values { let x = Double(v); s1 += x; s2 += x * x; s4 += x * x * x * x }
        let count = Double(n), mean = s1 / count, variance = s2 / count, kurtosis = s4 / count / (variance * variance)
        // Standard errors under N(0, 1): 1/√n, √(2/n), √(24/n); bounds 5 of them.
        XCTAssertLessThan(abs(mean), 5 / count.squareRoot(), "\(kernel): mean \(mean); bound 5/√n = \(5 / count.squareRoot())")
        XCTAssertLessThan(abs(variance - 1), 5 * (2 / count).squareRoot(), "\(kernel): variance \(variance); bound 1 ± \(5 * (2 / count).squareRoot())")
        XCTAssertLessThan(abs(kurtosis - 3), 5 * (24 / count).squareRoot(), "\(kernel): kurtosis \(kurtosis); bound 3 ± \(5 * (24 / count).squareRoot())")
        // χ² with 19 degrees of freedom exceeds 63.7 with probability 1e-6. A variance 1 % off moves the
        // statistic to ≈ 19 + 175 (its noncentrality at this n), so the same draws scaled by √1.01 must fail.
        let threshold = 63.7
        let chi2 = binnedChiSquare(values), chi2Wrong = binnedChiSquare(values, scale: 1.01.squareRoot())
        XCTAssertLessThan(chi2, threshold, "\(kernel): binned χ² (20 equiprobable bins) vs N(0, 1): \(chi2); bound \(threshold) (p = 1e-6)")
        XCTAssertGreaterThan(chi2Wrong, threshold, "\(kernel): the same draws with variance 1.01: χ² \(chi2Wrong) should exceed \(threshold)")
        print("FastGaussian (\(kernel)) on \(n) draws: mean \(mean), variance \(variance), kurtosis \(kurtosis), χ²₁₉ \(chi2), with variance 1.01: \(chi2Wrong)")
    }
}
