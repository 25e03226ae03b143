// Log-probabilities of target tokens from LM-head logits at selected positions only.
// Legend: N selected positions, V vocabulary.

import Foundation

public enum LogProbs {
    /// Forward: logp (N) = logits[n, target[n]] − logsumexp(logits[n, :]); lse (N) saved for backward.
    public static func forward(logp: FloatPtr, lse: FloatPtr, logits: ConstFloatPtr, targets: UnsafePointer<Int32>,
                               positions N: Int, vocab V: Int) {
        parallelFor(N, minimumPerThread: 4) { n in
            let row = logits + n * V
            let m = VectorMath.max(row, count: V)
            let l = m + logf(VectorMath.sumExpShifted(row, count: V, shift: m))
            lse[n] = l
            logp[n] = row[Int(targets[n])] - l
        }
    }

    /// Backward, in place: logits (N, V) becomes ∂L/∂logits = dlogp[n] · (onehot(target) − softmax).
    public static func backward(logitsToGrad g: FloatPtr, dlogp: ConstFloatPtr, lse: ConstFloatPtr,
                                targets: UnsafePointer<Int32>, positions N: Int, vocab V: Int) {
        parallelFor(N, minimumPerThread: 4) { n in
            let row = g + n * V, d = dlogp[n], l = lse[n]
            VectorMath.scaledExpShifted(row, count: V, shift: l, scale: -d)
            row[Int(targets[n])] += d
        }
    }

    /// Naive reference (Double): logp and ∂L/∂logits.
    public static func reference(logits: [Float], targets: [Int32], dlogp: [Float], vocab V: Int) -> (logp: [Float], dlogits: [Float]) {
        let N = targets.count
        var logp = [Float](repeating: 0, count: N), d = [Float](repeating: 0, count: N * V)
        for n in 0..<N {
            let row = (0..<V).map { Double(logits[n * V + $0]) }
            let m = row.max()!
            let l = m + Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +))
            logp[n] = Float(row[Int(targets[n])] - l)
            for v in 0..<V { d[n * V + v] = Float(-Double(dlogp[n]) * Foundation.exp(row[v] - l)) }
            d[n * V + Int(targets[n])] += dlogp[n]
        }
        return (logp, d)
    }
}
