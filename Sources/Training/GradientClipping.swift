// Global L2 gradient norm (deterministic, parallel) and PyTorch-style norm clipping.

import Foundation
import Tensors

/// Elements per partial sum of `globalGradientNorm`; fixed so the result never depends on the thread count.
let gradientNormChunkSize = 1 << 16

/// The L2 norm of `count` gradient values, accumulated in Double.
///
/// The slab is cut into fixed chunks of `gradientNormChunkSize` elements; each chunk's sum of squares is computed
/// with a fixed accumulation order and the partial sums are added in chunk order, so the result is bit-identical
/// for any number of threads.
public func globalGradientNorm(_ g: ConstFloatPtr, count: Int) -> Double {
    precondition(count >= 0, "globalGradientNorm: negative count \(count)")
    if count == 0 { return 0 }
    let chunkCount = (count + gradientNormChunkSize - 1) / gradientNormChunkSize
    var partialSums = [Double](repeating: 0, count: chunkCount)
    partialSums.withUnsafeMutableBufferPointer { partials in
        let partialsBase = partials.baseAddress!
        parallelFor(chunkCount, minimumPerThread: 4) { chunk in
            let start = chunk * gradientNormChunkSize
            let length = min(gradientNormChunkSize, count - start)
            partialsBase[chunk] = sumOfSquares(g + start, count: length)
        }
    }
    var total = 0.0
    for partial in partialSums { total += partial }
    return total.squareRoot()
}

/// Scales `count` gradients in place so their global L2 norm is at most `maxNorm`; returns the norm before clipping.
///
/// PyTorch `clip_grad_norm_` semantics: coef = maxNorm / (norm + 1e-6), applied only when coef < 1. A NaN norm leaves
/// the gradients untouched and an infinite one scales them by 0 (as PyTorch does); callers should check that the
/// returned norm is finite before stepping.
@discardableResult
public func clipGradientNorm(_ g: FloatPtr, count: Int, maxNorm: Double) -> Double {
    let norm = globalGradientNorm(g, count: count)
    let coefficient = maxNorm / (norm + 1e-6)
    guard coefficient < 1 else { return norm }
    let scale = Float(coefficient)
    let chunkCount = (count + gradientNormChunkSize - 1) / gradientNormChunkSize
    parallelFor(chunkCount, minimumPerThread: 4) { chunk in
        let start = chunk * gradientNormChunkSize
        let length = min(gradientNormChunkSize, count - start)
        let base = g + start
        for i in 0..<length { base[i] *= scale }
    }
    return norm
}

/// Σ x² in Double with eight independent lanes (vectorisable, and fixed order so the result is reproducible).
@inline(__always)
private func sumOfSquares(_ x: ConstFloatPtr, count: Int) -> Double {
    var lanes = SIMD8<Double>(repeating: 0)
    let vectorCount = count / 8
    let raw = UnsafeRawPointer(x)
    for block in 0..<vectorCount {
        let values = raw.loadUnaligned(fromByteOffset: block * 32, as: SIMD8<Float>.self)
        let wide = SIMD8<Double>(values)
        lanes += wide * wide
    }
    var total = lanes.sum()
    for i in (vectorCount * 8)..<count {
        let value = Double(x[i])
        total += value * value
    }
    return total
}
