// Vectorised exp, max and sums over Float runs: the non-matmul hot loops (softmax, log-softmax, SiLU).
// exp uses the Cephes single-precision polynomial (relative error about 2e-7 over the clamped range).

/// 8-lane Float vectors.
public typealias Float8 = SIMD8<Float>

public enum VectorMath {
    /// e^x per lane; inputs below −87.3 give ≈0, above 88.7 are clamped.
    @inline(__always)
    public static func exp(_ v: Float8) -> Float8 {
        let lo = Float8(repeating: -87.3), hi = Float8(repeating: 88.3)
        let x0 = v.replacing(with: lo, where: v .< lo).replacing(with: hi, where: v .> hi)
        // n = round(x · log2 e) by the 1.5·2²³ trick: the sum's low mantissa bits hold n as an integer.
        let magic = Float8(repeating: 12_582_912)
        let t = x0 * 1.44269504088896341 + magic
        let n = t - magic
        var x = x0 - n * 0.693359375
        x = x + n * 2.12194440e-4
        let z = x * x
        var y: Float8 = Float8(repeating: 1.9875691500e-4)
        y = y * x + 1.3981999507e-3
        y = y * x + 8.3334519073e-3
        y = y * x + 4.1665795894e-2
        y = y * x + 1.6666665459e-1
        y = y * x + 5.0000001201e-1
        y = y * z + x + 1
        // 2ⁿ: exponent field n + 127, from the integer in t's low bits (0x4B40_0000 is the bit pattern of 1.5·2²³).
        let bits = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return y * unsafeBitCast(bits, to: Float8.self)
    }

    /// e^x of one value through the vector path (same rounding as the vector loops).
    @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(Float8(repeating: x))[0] }

    /// The largest of x[0..<n] (n ≥ 1).
    @inline(__always)
    public static func max(_ x: ConstFloatPtr, count n: Int) -> Float {
        var i = 0
        var m8 = Float8(repeating: -.infinity)
        while i + 8 <= n {
            m8 = pointwiseMax(m8, UnsafeRawPointer(x + i).loadUnaligned(as: Float8.self))
            i += 8
        }
        var m = m8.max()
        while i < n { m = Swift.max(m, x[i]); i += 1 }
        return m
    }

    /// Replaces x[i] by e^(x[i] − shift) and returns their sum (accumulated in 8 lanes).
    @inline(__always)
    public static func expShifted(_ x: FloatPtr, count n: Int, shift: Float) -> Float {
        var i = 0
        var s8 = Float8.zero
        let sh = Float8(repeating: shift)
        while i + 8 <= n {
            let e = exp(UnsafeRawPointer(x + i).loadUnaligned(as: Float8.self) - sh)
            UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: Float8.self)
            s8 += e
            i += 8
        }
        var s = s8.sum()
        while i < n { let e = exp(x[i] - shift); x[i] = e; s += e; i += 1 }
        return s
    }

    /// Σ e^(x[i] − shift) without changing x.
    @inline(__always)
    public static func sumExpShifted(_ x: ConstFloatPtr, count n: Int, shift: Float) -> Float {
        var i = 0
        var s8 = Float8.zero
        let sh = Float8(repeating: shift)
        while i + 8 <= n {
            s8 += exp(UnsafeRawPointer(x + i).loadUnaligned(as: Float8.self) - sh)
            i += 8
        }
        var s = s8.sum()
        while i < n { s += exp(x[i] - shift); i += 1 }
        return s
    }

    /// x[i] = scale · e^(x[i] − shift).
    @inline(__always)
    public static func scaledExpShifted(_ x: FloatPtr, count n: Int, shift: Float, scale: Float) {
        var i = 0
        let sh = Float8(repeating: shift), sc = Float8(repeating: scale)
        while i + 8 <= n {
            let e = exp(UnsafeRawPointer(x + i).loadUnaligned(as: Float8.self) - sh) * sc
            UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: Float8.self)
            i += 8
        }
        while i < n { x[i] = scale * exp(x[i] - shift); i += 1 }
    }

    /// Σ x[i]·y[i] in 8 lanes.
    @inline(__always)
    public static func dot(_ x: ConstFloatPtr, _ y: ConstFloatPtr, count n: Int) -> Float {
        var i = 0
        var s8 = Float8.zero
        while i + 8 <= n {
            s8 += UnsafeRawPointer(x + i).loadUnaligned(as: Float8.self) * UnsafeRawPointer(y + i).loadUnaligned(as: Float8.self)
            i += 8
        }
        var s = s8.sum()
        while i < n { s += x[i] * y[i]; i += 1 }
        return s
    }
}
