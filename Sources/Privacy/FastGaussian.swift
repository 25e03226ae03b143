// Opacus' secure-mode Gaussian, (z₁ + z₂ + z₃ + z₄)/2 with zᵢ standard normals, eight values at a time in
// SIMD8<Float> from ChaCha20 keystream words (`ChaCha20Random`).
//
// Each value takes three keystream words a, b, c (one lane of three vectors) and makes four 24-bit
// uniforms of them, the precision of PyTorch's float `normal_` on CPU:
//   u₁ = (⌊a/2⁸⌋ + 1)·2⁻²⁴, u₃ = (⌊b/2⁸⌋ + 1)·2⁻²⁴ ∈ (0, 1]      (radii: |zᵢ| ≤ √(48 ln 2) = 5.77)
//   u₂ = ⌊c/2⁸⌋·2⁻²⁴, u₄ = (a mod 2⁸ + 2⁸·(b mod 2⁸) + 2¹⁶·(c mod 2⁸))·2⁻²⁴ ∈ [0, 1)   (angles)
// and two Box–Muller pairs: (z₁, z₂) = √(−2 ln u₁)·(cos 2πu₂, sin 2πu₂), (z₃, z₄) likewise from u₃, u₄.
// Every uniform is an exact float, so the only errors are those of ln, √, sin and cos in float:
//
// - ln u: u = 2ᵉ·m with m ∈ [√½, √2) (from the float's bits), ln u = e·ln 2 + ln m, and
//   ln m = 2 atanh s = 2s(1 + s²/3 + s⁴/5 + s⁶/7 + s⁸/9) with s = (m − 1)/(m + 1), |s| ≤ 0.1716; the
//   series' remainder is ≤ s¹⁰/(11(1 − s²)) = 2.1e-9 relative. ln 2 is split in two (Cody–Waite) so
//   e·ln 2 is exact in its high part.
// - √y: Newton's method from a bit-trick seed (see `squareRoot`): Swift's `squareRoot()` calls libm's
//   `sqrtf` one lane at a time on Linux (it keeps errno), which also stops the rest from vectorising.
// - sin 2πu, cos 2πu: k = round(4u), t = u − k/4 ∈ [−⅛, ⅛] (exact), x = 2πt ∈ [−π/4, π/4], the Taylor
//   polynomials of sin x to x⁹ (remainder ≤ x¹¹/11! = 2.5e-9 relative to sin x) and of cos x to x⁸
//   (≤ x¹⁰/10! = 3.5e-8 relative to cos x ≥ 0.707), and the quadrant k mod 4 swaps and negates them.
// With float rounding, measured against Foundation's double-precision functions on every input the noise
// uses (all 2²⁴ uniforms; `FastGaussianTests`): relative error ≤ 2.1e-7 for ln u, ≤ 0.9e-7 for √(−2 ln u),
// ≤ 1.9e-7 for sin and cos; the tests' bound is 4e-7 for each. A value (z₁ + z₂ + z₃ + z₄)/2 is within
// 2.1e-7·(|z₁| + |z₂| + |z₃| + |z₄|)/2 of the same value computed in Double (measured; the test's bound is
// 6e-7).
//
// `referenceNormals` computes the same normals from the same words in Double with Foundation's functions:
// the naive reference beside the fast path.
//
// `addNoise` draws its whole refills (128 values from 24 ChaCha20 blocks) with the fastest kernel the
// processor runs (`FastGaussian.kernel`, SecureNoiseKernel.swift): CShims' secure_noise.c in AVX-512 or AVX2,
// which computes these very operations (bit-identical values), or this Swift code, the fallback. Measured
// on one Zen 4 core under load (CPU time, 2026-12-07): ≈14 ns per value here, ≈6.8 with AVX2, ≈4.3 with
// AVX-512.

import Foundation

/// The SIMD Box–Muller of secure noise: float ln, √, sin 2π·, cos 2π· and the four-normal sum.
public enum FastGaussian {
    public typealias Floats = SIMD8<Float>
    public typealias Words = SIMD8<UInt32>

    // MARK: ln

    /// The bits of 1 and of √½ (rounded down) as floats.
    static let one: Int32 = 0x3f80_0000, rootHalf: Int32 = 0x3f35_04f3
    /// ln 2 split as a high part with 9 significant bits (e·ln2High is exact for |e| < 2¹⁵) and the rest.
    static let ln2High: Float = 0.693_359_375, ln2Low: Float = -2.121_944_4e-4
    /// The coefficients 1/(2k + 1) of atanh s / s in s².
    static let atanh3: Float = 1.0 / 3, atanh5: Float = 1.0 / 5, atanh7: Float = 1.0 / 7, atanh9: Float = 1.0 / 9

    /// ln u for positive normal floats u, lane-wise (see the file header for the error).
    @inline(__always)
    public static func log(_ u: Floats) -> Floats {
        // Adding 1 − √½ to the bits makes the exponent field step up exactly where the significand passes
        // √2, so e and m ∈ [√½, √2) come out of integer operations, without a select.
        let shifted = unsafeBitCast(u, to: SIMD8<Int32>.self) &+ (one &- rootHalf)
        let exponent = Floats((shifted &>> 23) &- 127)
        let m = unsafeBitCast((shifted & 0x007f_ffff) &+ rootHalf, to: Floats.self)
        let s = (m - 1) / (m + 1), s2 = s * s                             // m − 1 is exact
        var series = s2 * atanh9 + atanh7                                 // 1 + s²/3 + s⁴/5 + s⁶/7 + s⁸/9
        series = series * s2 + atanh5
        series = series * s2 + atanh3
        series = series * s2 + 1
        return exponent * ln2High + (exponent * ln2Low + 2 * s * series)
    }

    // MARK: √y

    /// The integer that, less half the bits of y, gives a float near 1/√y (the exponent is negated and
    /// halved; the offset in the significand keeps the relative error ≤ 3.5e-2).
    static let inverseRootSeed: UInt32 = 0x5f37_59df

    /// √y for finite y ≥ 0, lane-wise, from float arithmetic alone: 1/√y from the bit-trick seed (relative
    /// error ≤ 3.5e-2), two Newton steps x ← x(3 − y·x²)/2 (error e → 1.5e²: ≤ 1.8e-3, then ≤ 5e-6),
    /// √y ≈ y·x, and one Newton step on √y itself, s ← s + x(y − s²)/2 (again 1.5e²: ≤ 4e-11), which leaves
    /// float rounding alone. y is floored at 2⁻¹⁰⁰ for the inverse only, so that y = 0 gives 0, not NaN.
    @inline(__always)
    public static func squareRoot(_ y: Floats) -> Floats {
        let floored = y + 0x1p-100                                        // = y for every y ≥ 2⁻⁷⁵
        let half = 0.5 * floored
        var x = unsafeBitCast(inverseRootSeed &- (unsafeBitCast(floored, to: Words.self) &>> 1), to: Floats.self)
        x = x * (1.5 - half * x * x)
        x = x * (1.5 - half * x * x)
        let s = y * x
        return s + 0.5 * x * (y - s * s)
    }

    // MARK: sin 2πu and cos 2πu

    /// 1.5·2²³: adding and subtracting it rounds a float of magnitude < 2²² to the nearest integer, which
    /// the sum holds in its low significand bits.
    static let roundingShift: Float = 12_582_912
    /// The Taylor coefficients of sin x / x and cos x in x²: (−1)ᵏ/(2k + 1)! and (−1)ᵏ/(2k)!.
    static let sin3: Float = -1.0 / 6, sin5: Float = 1.0 / 120, sin7: Float = -1.0 / 5040, sin9: Float = 1.0 / 362_880
    static let cos2: Float = -1.0 / 2, cos4: Float = 1.0 / 24, cos6: Float = -1.0 / 720, cos8: Float = 1.0 / 40320

    /// sin 2πu and cos 2πu for u ∈ [0, 1] on the 2⁻²⁴ grid, lane-wise (see the file header for the error).
    @inline(__always)
    public static func sinCosTwoPi(_ u: Floats) -> (sin: Floats, cos: Floats) {
        let (sinX, cosX, quadrant) = reducedSinCos(u)
        // 2πu = kπ/2 + x: odd k swaps sin and cos; sin is negated for k mod 4 = 2, 3 and cos for 1, 2.
        // Bit operations rather than `replace(with:where:)`, which is a branch per lane.
        let swap = 0 &- (quadrant & 1)                                    // all ones for odd k
        let sinBits = unsafeBitCast(sinX, to: Words.self), cosBits = unsafeBitCast(cosX, to: Words.self)
        let sine = ((sinBits & ~swap) | (cosBits & swap)) ^ ((quadrant & 2) &<< 30)
        let cosine = ((cosBits & ~swap) | (sinBits & swap)) ^ (((quadrant &+ 1) & 2) &<< 30)
        return (unsafeBitCast(sine, to: Floats.self), unsafeBitCast(cosine, to: Floats.self))
    }

    /// r·cos 2πu + r·sin 2πu, the sum of one Box–Muller pair, bit for bit as from `sinCosTwoPi` (float
    /// addition commutes, so the swap of odd quadrants is not needed; only the signs are).
    @inline(__always)
    static func pairSum(radius r: Floats, angle u: Floats) -> Floats {
        let (sinX, cosX, quadrant) = reducedSinCos(u)
        // sin 2πu + cos 2πu = ±sin x ± cos x: sin x is negated for k mod 4 = 1, 2 and cos x for 2, 3.
        let sinTerm = unsafeBitCast(unsafeBitCast(r * sinX, to: Words.self) ^ (((quadrant &+ 1) & 2) &<< 30), to: Floats.self)
        let cosTerm = unsafeBitCast(unsafeBitCast(r * cosX, to: Words.self) ^ ((quadrant & 2) &<< 30), to: Floats.self)
        return cosTerm + sinTerm
    }

    /// sin x and cos x for x = 2πu − kπ/2 ∈ [−π/4, π/4] with k = round(4u), and k mod 4.
    @inline(__always)
    static func reducedSinCos(_ u: Floats) -> (sinX: Floats, cosX: Floats, quadrant: Words) {
        let shifted = 4 * u + roundingShift
        let k = shifted - roundingShift                                   // round(4u) ∈ {0, …, 4}
        let quadrant = unsafeBitCast(shifted, to: Words.self) & 3         // k mod 4
        let x = (u - 0.25 * k) * (2 * Float.pi)                           // u − k/4 is exact
        let x2 = x * x
        var sinX = x2 * sin9 + sin7                                       // x − x³/3! + … + x⁹/9!
        sinX = sinX * x2 + sin5
        sinX = sinX * x2 + sin3
        sinX = (sinX * x2 + 1) * x
        var cosX = x2 * cos8 + cos6                                       // 1 − x²/2! + … + x⁸/8!
        cosX = cosX * x2 + cos4
        cosX = cosX * x2 + cos2
        cosX = cosX * x2 + 1
        return (sinX, cosX, quadrant)
    }

    // MARK: The four-normal sum

    /// The four uniforms of each lane (see the file header): radii u₁, u₃ ∈ (0, 1], angles u₂, u₄ ∈ [0, 1).
    @inline(__always)
    static func uniforms(_ a: Words, _ b: Words, _ c: Words) -> (u1: Floats, u2: Floats, u3: Floats, u4: Floats) {
        @inline(__always) func unit(_ k: Words) -> Floats {
            Floats(SIMD8<Int32>(truncatingIfNeeded: k)) * 0x1p-24             // k ≤ 2²⁴: exact
        }
        let low = (a & 0xff) | (b & 0xff) &<< 8 | (c & 0xff) &<< 16
        return (unit((a &>> 8) &+ 1), unit(c &>> 8), unit((b &>> 8) &+ 1), unit(low))
    }

    /// (z₁ + z₂ + z₃ + z₄)/2 for eight values from three keystream vectors (one lane each).
    @inline(__always)
    public static func opacusNormals(_ a: Words, _ b: Words, _ c: Words) -> Floats {
        let (u1, u2, u3, u4) = uniforms(a, b, c)
        let r1 = squareRoot(-2 * log(u1)), r3 = squareRoot(-2 * log(u3))
        return (pairSum(radius: r1, angle: u2) + pairSum(radius: r3, angle: u4)) * 0.5   // ((z₁ + z₂) + (z₃ + z₄))/2
    }

    /// The same eight values in Double with Foundation's log, √, sin and cos (the naive reference), each with
    /// its four normals.
    public static func referenceNormals(_ a: Words, _ b: Words, _ c: Words) -> [(sum: Double, z: [Double])] {
        (0..<8).map { j in
            let u1 = Double((a[j] >> 8) + 1) * 0x1p-24, u3 = Double((b[j] >> 8) + 1) * 0x1p-24
            let u2 = Double(c[j] >> 8) * 0x1p-24
            let u4 = Double((a[j] & 0xff) | (b[j] & 0xff) << 8 | (c[j] & 0xff) << 16) * 0x1p-24
            let r1 = (-2 * Foundation.log(u1)).squareRoot(), r3 = (-2 * Foundation.log(u3)).squareRoot()
            let z = [r1 * cos(2 * .pi * u2), r1 * sin(2 * .pi * u2), r3 * cos(2 * .pi * u4), r3 * sin(2 * .pi * u4)]
            return ((z[0] + z[1] + z[2] + z[3]) / 2, z)
        }
    }

    /// Adds `scale` · (z₁ + z₂ + z₃ + z₄)/2 to each of `count` values from `generator`, after one discarded
    /// draw (Opacus discards one at the start of each call; here the words of one group of eight values).
    /// Whole refills go to `kernel`; the discarded draw and the tail are drawn here.
    public static func addNoise(to values: UnsafeMutablePointer<Float>, count: Int, scale: Float, generator: ChaCha20Random) {
        for _ in 0..<3 { _ = generator.nextVector() }                     // the discarded draw
        let groupsPerRefill = ChaCha20Random.wordsPerRefill / 24          // 8 values from 3 vectors (24 words)
        var i = 0
        let kernel = self.kernel
        if kernel != .swift {
            let refills = count / (8 * groupsPerRefill)
            generator.withNextRefills(refills) { state, first, run in
                kernelAddNoise(kernel, state: state, refills: run, scale: scale, values: values + 8 * groupsPerRefill * first)
            }
            i = 8 * groupsPerRefill * refills
        }
        while i + 8 * groupsPerRefill <= count {
            generator.withNextRefill { words in                           // (3 · groupsPerRefill) vectors
                for g in 0..<groupsPerRefill {
                    let z = opacusNormals(words[3 * g], words[3 * g + 1], words[3 * g + 2])
                    let p = UnsafeMutableRawPointer(values + i + 8 * g)
                    p.storeBytes(of: p.loadUnaligned(as: Floats.self) + scale * z, as: Floats.self)
                }
            }
            i += 8 * groupsPerRefill
        }
        while i < count {
            let z = opacusNormals(generator.nextVector(), generator.nextVector(), generator.nextVector())
            for j in 0..<min(8, count - i) { values[i + j] += scale * z[j] }
            i += 8
        }
    }
}
