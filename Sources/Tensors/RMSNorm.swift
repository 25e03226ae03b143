// RMSNorm: y = x / sqrt(mean(x²) + eps) · w, over the last dimension.
// Legend: R rows (B·T), C channels.

public enum RMSNorm {
    /// Forward: out (R, C), rstd (R) saved for backward, from inp (R, C) and weight (C).
    public static func forward(out: FloatPtr, rstd: FloatPtr, inp: ConstFloatPtr, weight: ConstFloatPtr,
                               rows R: Int, channels C: Int, eps: Float) {
        parallelFor(R, minimumPerThread: 64) { r in
            let x = inp + r * C, y = out + r * C
            var ss: Float = 0
            for c in 0..<C { ss += x[c] * x[c] }
            let s = 1 / (ss / Float(C) + eps).squareRoot()
            rstd[r] = s
            for c in 0..<C { y[c] = x[c] * s * weight[c] }
        }
    }

    /// Backward: dinp (R, C) += ∂L/∂inp, dweight (C) += ∂L/∂weight (skipped when nil: a frozen weight), from dout (R, C).
    public static func backward(dinp: FloatPtr, dweight: FloatPtr?, dout: ConstFloatPtr, inp: ConstFloatPtr,
                                weight: ConstFloatPtr, rstd: ConstFloatPtr, rows R: Int, channels C: Int) {
        parallelFor(R, minimumPerThread: 64) { r in
            let x = inp + r * C, dy = dout + r * C, dx = dinp + r * C
            let s = rstd[r]
            var dot: Float = 0
            for c in 0..<C { dot += dy[c] * weight[c] * x[c] }
            let k = dot * s * s * s / Float(C)
            for c in 0..<C { dx[c] += s * dy[c] * weight[c] - k * x[c] }
        }
        // The weight gradient sums over rows: serial in r, vectorised in c, deterministic.
        guard let dweight else { return }
        for r in 0..<R {
            let x = inp + r * C, dy = dout + r * C
            let s = rstd[r]
            for c in 0..<C { dweight[c] += dy[c] * x[c] * s }
        }
    }

    /// Naive reference of forward and backward together (Double accumulation), for tests.
    public static func reference(inp: [Float], weight: [Float], dout: [Float], rows R: Int, channels C: Int,
                                 eps: Float) -> (out: [Float], dinp: [Float], dweight: [Float]) {
        var out = [Float](repeating: 0, count: R * C), dinp = out, dweight = [Float](repeating: 0, count: C)
        for r in 0..<R {
            var ss = 0.0
            for c in 0..<C { ss += Double(inp[r * C + c]) * Double(inp[r * C + c]) }
            let s = 1 / (ss / Double(C) + Double(eps)).squareRoot()
            var dot = 0.0
            for c in 0..<C {
                let x = Double(inp[r * C + c]), w = Double(weight[c]), dy = Double(dout[r * C + c])
                out[r * C + c] = Float(x * s * w)
                dot += dy * w * x
                dweight[c] += Float(dy * x * s)
            }
            for c in 0..<C {
                let x = Double(inp[r * C + c]), w = Double(weight[c]), dy = Double(dout[r * C + c])
                dinp[r * C + c] = Float(s * dy * w - dot * s * s * s / Double(C) * x)
            }
        }
        return (out, dinp, dweight)
    }
}
