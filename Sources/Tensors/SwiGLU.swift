// SwiGLU: h = silu(gate) · up, the gated MLP activation of Llama.
// Legend: R rows (B·T), F hidden features. The fused projection row is gate | up (2F).

import Foundation

public enum SwiGLU {
    /// Forward: out (R, F) from gateUp (R, 2F).
    public static func forward(out: FloatPtr, gateUp: ConstFloatPtr, rows R: Int, features F: Int) {
        parallelFor(R, minimumPerThread: 16) { r in
            let g = gateUp + r * 2 * F, u = g + F, o = out + r * F
            var i = 0
            while i + 8 <= F {
                let x = UnsafeRawPointer(g + i).loadUnaligned(as: Float8.self)
                let y = x / (1 + VectorMath.exp(-x)) * UnsafeRawPointer(u + i).loadUnaligned(as: Float8.self)
                UnsafeMutableRawPointer(o + i).storeBytes(of: y, as: Float8.self)
                i += 8
            }
            while i < F { let x = g[i]; o[i] = x / (1 + VectorMath.exp(-x)) * u[i]; i += 1 }
        }
    }

    /// Backward: dgateUp (R, 2F) = ∂L/∂gateUp (overwritten) from dout (R, F).
    public static func backward(dgateUp: FloatPtr, dout: ConstFloatPtr, gateUp: ConstFloatPtr, rows R: Int, features F: Int) {
        parallelFor(R, minimumPerThread: 16) { r in
            let g = gateUp + r * 2 * F, u = g + F, dy = dout + r * F
            let dg = dgateUp + r * 2 * F, du = dg + F
            var i = 0
            while i + 8 <= F {
                let x = UnsafeRawPointer(g + i).loadUnaligned(as: Float8.self)
                let up = UnsafeRawPointer(u + i).loadUnaligned(as: Float8.self)
                let d = UnsafeRawPointer(dy + i).loadUnaligned(as: Float8.self)
                let sig = 1 / (1 + VectorMath.exp(-x))
                UnsafeMutableRawPointer(du + i).storeBytes(of: d * x * sig, as: Float8.self)
                UnsafeMutableRawPointer(dg + i).storeBytes(of: d * up * sig * (1 + x * (1 - sig)), as: Float8.self)
                i += 8
            }
            while i < F {
                let x = g[i]
                let sig = 1 / (1 + VectorMath.exp(-x))
                du[i] = dy[i] * x * sig
                dg[i] = dy[i] * u[i] * sig * (1 + x * (1 - sig))
                i += 1
            }
        }
    }

    /// Naive reference (Double): out and dgateUp.
    public static func reference(gateUp: [Float], dout: [Float], rows R: Int, features F: Int) -> (out: [Float], dgateUp: [Float]) {
        var out = [Float](repeating: 0, count: R * F), d = [Float](repeating: 0, count: R * 2 * F)
        for r in 0..<R {
            for i in 0..<F {
                let x = Double(gateUp[r * 2 * F + i]), u = Double(gateUp[r * 2 * F + F + i]), dy = Double(dout[r * F + i])
                let sig = 1 / (1 + Foundation.exp(-x))
                out[r * F + i] = Float(x * sig * u)
                d[r * 2 * F + F + i] = Float(dy * x * sig)
                d[r * 2 * F + i] = Float(dy * u * (sig + x * sig * (1 - sig)))
            }
        }
        return (out, d)
    }
}

public enum Embedding {
    /// Forward: out (R, C) = table[tokens[r]] for each row.
    public static func forward(out: FloatPtr, tokens: UnsafePointer<Int32>, table: ConstFloatPtr, rows R: Int, channels C: Int) {
        for r in 0..<R { (out + r * C).update(from: table + Int(tokens[r]) * C, count: C) }
    }

    /// Backward: dtable[tokens[r]] += dout row r (serial: rows may share a token).
    public static func backward(dtable: FloatPtr, dout: ConstFloatPtr, tokens: UnsafePointer<Int32>, rows R: Int, channels C: Int) {
        for r in 0..<R {
            let d = dtable + Int(tokens[r]) * C, g = dout + r * C
            for c in 0..<C { d[c] += g[c] }
        }
    }
}

public enum Elementwise {
    /// out[i] = a[i] + b[i].
    public static func add(_ out: FloatPtr, _ a: ConstFloatPtr, _ b: ConstFloatPtr, count n: Int) {
        for i in 0..<n { out[i] = a[i] + b[i] }
    }

    /// y[i] += x[i].
    public static func accumulate(_ y: FloatPtr, _ x: ConstFloatPtr, count n: Int) {
        for i in 0..<n { y[i] += x[i] }
    }
}
