// The vocabulary-wide passes of sampling: the largest logit, and w_v = exp((l_v − m)·s) for every token
// with Σ w and Σ w·|x| — the softmax normaliser and the quantity that bounds the error the float
// exponent's rounding adds to it (see Models/Sampler.swift). Float lanes through VectorMath.exp; every
// term added in Double, per block of `block` tokens.
// Legend: V vocabulary.

public enum SoftmaxSums {
    /// Tokens per block sum.
    public static let block = 64

    /// The sums of one pass.
    public struct Totals: Sendable {
        /// Σ_v w_v, each float term added in Double.
        public var sum: Double
        /// Σ_v w_v·|x_v| with x_v = (l_v − m)·s clamped at −87.3 (float lanes).
        public var weightedExponent: Double
    }

    /// The largest of x[0..<n] (n ≥ 1); NaN is never chosen unless every value is NaN.
    @inline(__always)
    public static func max(_ x: ConstFloatPtr, count n: Int) -> Float {
        var m8 = Float8(repeating: -.infinity)
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: Float8.self)
            m8 = m8.replacing(with: v, where: v .> m8)
            i += 8
        }
        var m = m8.max()
        while i < n { if x[i] > m { m = x[i] }; i += 1 }
        return m
    }

    /// Forward: w_v = exp((logits_v − shift)·scale) (V) into `weights` when given, Σ w per block into
    /// `blockSums` (⌈V / block⌉) when given; returns Σ w and Σ w·|x|.
    public static func forward(_ logits: ConstFloatPtr, count V: Int, shift m: Float, scale s: Float,
                               weights: FloatPtr?, blockSums: UnsafeMutablePointer<Double>?) -> Totals {
        let shift = Float8(repeating: m), scale = Float8(repeating: s), floor = Float8(repeating: -87.3)
        var total = 0.0, weighted = 0.0
        var b = 0, start = 0
        while start < V {
            let end = Swift.min(V, start + block)
            var sum8 = SIMD8<Double>.zero, wx8 = Float8.zero
            var i = start
            while i + 8 <= end {
                let x = (UnsafeRawPointer(logits + i).loadUnaligned(as: Float8.self) - shift) * scale
                let w = VectorMath.exp(x)
                if let weights { UnsafeMutableRawPointer(weights + i).storeBytes(of: w, as: Float8.self) }
                sum8 += SIMD8<Double>(w)
                wx8 -= w * x.replacing(with: floor, where: x .< floor)
                i += 8
            }
            var blockSum = sum8.sum(), blockWX = Double(wx8.sum())
            while i < end {
                let x = (logits[i] - m) * s
                let w = VectorMath.exp(x)
                weights?[i] = w
                blockSum += Double(w)
                blockWX -= Double(w * Swift.max(x, -87.3))
                i += 1
            }
            blockSums?[b] = blockSum
            total += blockSum
            weighted += blockWX
            b += 1
            start = end
        }
        return Totals(sum: total, weightedExponent: weighted)
    }

    /// Naive reference of `forward`'s sums (Double exp per token).
    public static func forwardReference(_ logits: ConstFloatPtr, count V: Int, shift m: Float, scale s: Float) -> Totals {
        var total = 0.0, weighted = 0.0
        for v in 0..<V {
            let x = Double(logits[v] - m) * Double(s)
            let w = Foundation.exp(x)
            total += w
            weighted += w * Swift.min(-x, 87.3)
        }
        return Totals(sum: total, weightedExponent: weighted)
    }
}

import Foundation
