// Per-example gradients of a bias-free LoRA adapter (PEFT's lora_A, lora_B), materialised: with LoRA only
// the adapters are trained, and their per-example gradients are small (r·(d + p) per example), so they are
// formed in the one backward pass (book-keeping) rather than by ghost norms.
// The adapter adds s · B A x to the frozen layer's output (s = alpha / r), so for one example with inputs
// X (L, d) and output gradients Γ (L, p):
//   H = X Aᵀ (L, r),  dB = s Γᵀ H (p, r),  dH = s Γ B (L, r),  dA = dHᵀ X (r, d).
// Legend: B examples, T padded tokens, L_b ≤ T valid tokens, d input, p output features, r adapter rank.

import Foundation
import Tensors

public enum LoRAPerExampleGradients {
    /// Per-example adapter gradients through sgemm: dA (B, r, d) and dB (B, p, r) are overwritten; returns the
    /// squared joint norms ‖dA_b‖² + ‖dB_b‖² (B). Inputs (B, T, d), output gradients (B, T, p), adapters
    /// A (r, d) and B (p, r); example b uses its first lengths[b] rows.
    @discardableResult
    public static func compute(gradA: FloatPtr, gradB: FloatPtr, inputs: ConstFloatPtr, outputGradients: ConstFloatPtr,
                               lengths: [Int], loraA: ConstFloatPtr, loraB: ConstFloatPtr, scale s: Float,
                               tokens T: Int, inputFeatures d: Int, outputFeatures p: Int, rank r: Int) -> [Double] {
        let hidden = FloatBuffer(count: T * r)                    // (L, r) H = X Aᵀ
        let dHidden = FloatBuffer(count: T * r)                   // (L, r) dH = s Γ B
        var norms: [Double] = []
        for (b, length) in lengths.enumerated() {
            precondition(length >= 0 && length <= T, "LoRAPerExampleGradients: length \(length) of example \(b) outside 0...\(T)")
            let x = inputs + b * T * d, g = outputGradients + b * T * p
            let dA = gradA + b * r * d, dB = gradB + b * p * r
            dA.update(repeating: 0, count: r * d)
            dB.update(repeating: 0, count: p * r)
            if length > 0 {
                Matmul.forward(hidden.pointer, x, loraA, M: length, N: r, K: d)
                Matmul.backward(dinp: nil, dweight: dB, dout: g, inp: hidden.pointer, weight: loraB, M: length, N: p, K: r)
                Matmul.backward(dinp: dHidden.pointer, dweight: nil, dout: g, inp: hidden.pointer, weight: loraB,
                                M: length, N: p, K: r, overwriteInput: true)
                Matmul.backward(dinp: nil, dweight: dA, dout: dHidden.pointer, inp: x, weight: x, M: length, N: r, K: d)
                for i in 0..<p * r { dB[i] *= s }
                for i in 0..<r * d { dA[i] *= s }
            }
            var sum = 0.0
            for i in 0..<r * d { sum += Double(dA[i]) * Double(dA[i]) }
            for i in 0..<p * r { sum += Double(dB[i]) * Double(dB[i]) }
            norms.append(sum)
        }
        return norms
    }

    /// Naive reference of `compute` (in Double, straight from the formulas).
    @discardableResult
    public static func computeReference(gradA: FloatPtr, gradB: FloatPtr, inputs: ConstFloatPtr, outputGradients: ConstFloatPtr,
                                        lengths: [Int], loraA: ConstFloatPtr, loraB: ConstFloatPtr, scale s: Float,
                                        tokens T: Int, inputFeatures d: Int, outputFeatures p: Int, rank r: Int) -> [Double] {
        var norms: [Double] = []
        for (b, length) in lengths.enumerated() {
            var h = [Double](repeating: 0, count: length * r)      // (L, r)
            var dh = [Double](repeating: 0, count: length * r)     // (L, r)
            for t in 0..<length {
                for k in 0..<r {
                    var v = 0.0
                    for j in 0..<d { v += Double(inputs[(b * T + t) * d + j]) * Double(loraA[k * d + j]) }
                    h[t * r + k] = v
                    var w = 0.0
                    for i in 0..<p { w += Double(outputGradients[(b * T + t) * p + i]) * Double(loraB[i * r + k]) }
                    dh[t * r + k] = Double(s) * w
                }
            }
            var sum = 0.0
            for i in 0..<p {
                for k in 0..<r {
                    var v = 0.0
                    for t in 0..<length { v += Double(outputGradients[(b * T + t) * p + i]) * h[t * r + k] }
                    gradB[b * p * r + i * r + k] = Float(Double(s) * v)
                    sum += pow(Double(s) * v, 2)
                }
            }
            for k in 0..<r {
                for j in 0..<d {
                    var v = 0.0
                    for t in 0..<length { v += dh[t * r + k] * Double(inputs[(b * T + t) * d + j]) }
                    gradA[b * r * d + k * d + j] = Float(v)
                    sum += v * v
                }
            }
            norms.append(sum)
        }
        return norms
    }
}
