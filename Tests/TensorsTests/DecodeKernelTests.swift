// The decoding kernels against their naive references: the matrix-vector product (both implementations,
// with and without accumulation, shapes off the vector width), attention of one query over a cache, and
// the sampler's vocabulary sums, including the exp error bound the sampler relies on.

import XCTest
import Foundation
import Tensors
import TestSupport

final class DecodeKernelTests: XCTestCase {
    /// out = W · x (and out += W · x) for shapes that leave row and column remainders, through the
    /// hand-written kernel (serial and split over threads) and sgemv; fp32 sums: 1e-5 of scale.
    func testMatVecMatchesReference() {
        let saved = (MatVec.implementation, ThreadPool.threads)
        defer { MatVec.implementation = saved.0; ThreadPool.threads = saved.1 }
        for (N, K) in [(1, 1), (3, 7), (5, 8), (37, 29), (130, 64), (577, 576), (96, 1539)] {
            let w = FloatBuffer(randomFloats(N * K, seed: UInt64(N * 1000 + K))), x = FloatBuffer(randomFloats(K, seed: 9))
            let start = randomFloats(N, seed: 10)
            for accumulate in [false, true] {
                let ref = FloatBuffer(start)
                MatVec.forwardReference(ref.pointer, w.pointer, x.pointer, N: N, K: K, accumulate: accumulate)
                for implementation in MatVec.Implementation.allCases {
                    for threads in [1, 2] {
                        MatVec.implementation = implementation
                        ThreadPool.threads = threads
                        let out = FloatBuffer(start)
                        MatVec.forward(out.pointer, w.pointer, x.pointer, N: N, K: K, accumulate: accumulate)
                        assertTensorClose(out.array, ref.array, "matvec \(implementation) (\(N), \(K)) accumulate \(accumulate) threads \(threads)",
                                          relativeTolerance: 1e-5)
                    }
                }
            }
        }
    }

    /// The one-row kernel equals Matmul.forward with M = 1 (the path it replaces in decoding) to fp32 rounding.
    func testMatVecEqualsMatmulForOneRow() {
        let N = 960, K = 576
        let w = FloatBuffer(randomFloats(N * K, seed: 11)), x = FloatBuffer(randomFloats(K, seed: 12))
        let a = FloatBuffer(count: N), b = FloatBuffer(count: N)
        MatVec.forward(a.pointer, w.pointer, x.pointer, N: N, K: K)
        Matmul.forward(b.pointer, x.pointer, w.pointer, M: 1, N: N, K: K)
        assertTensorClose(a.array, b.array, "matvec vs matmul M = 1", relativeTolerance: 1e-5)
    }

    /// One query against L cached rows (keys and values interleaved at a row stride, as in the cache).
    func testDecodeAttentionMatchesReference() {
        for (L, HS) in [(1, 8), (5, 64), (133, 64), (17, 12)] {
            let stride = 3 * HS
            let q = randomFloats(HS, seed: 13, scale: 2)
            let rows = (0..<L).map { randomFloats(stride, seed: 100 + UInt64($0), scale: 2) }
            let keys = rows.map { Array($0[0..<HS]) }, values = rows.map { Array($0[HS..<2 * HS]) }
            let cache = FloatBuffer(rows.flatMap { $0 }), qb = FloatBuffer(q)
            let out = FloatBuffer(count: HS), scores = FloatBuffer(count: L)
            DecodeAttention.forward(out: out.pointer, q: qb.pointer, keys: cache.pointer, values: cache.pointer + HS, length: L,
                                    headSize: HS, rowStride: stride, scale: 0.125, scores: scores.pointer)
            let ref = DecodeAttention.forwardReference(q: q, keys: keys, values: values, scale: 0.125)
            assertTensorClose(out.array, ref, "decode attention L \(L) HS \(HS)", relativeTolerance: 1e-5)
        }
    }

    /// Σ exp((l − m)·s) and Σ w·|x| against Double, with the stored weights and block sums consistent.
    func testSoftmaxSumsMatchReference() {
        for (V, s) in [(1, Float(1)), (7, 1), (100, 1), (49_152, 1), (49_152, 1 / 0.7), (3001, 4)] {
            var logits = randomFloats(V, seed: UInt64(V), scale: 12)
            if V > 10 { logits[3] = -.infinity }
            let lb = FloatBuffer(logits)
            let m = SoftmaxSums.max(lb.pointer, count: V)
            XCTAssertEqual(m, logits.max()!, "max of \(V) logits")
            let weights = FloatBuffer(count: V)
            let blocks = UnsafeMutablePointer<Double>.allocate(capacity: (V + SoftmaxSums.block - 1) / SoftmaxSums.block)
            defer { blocks.deallocate() }
            let got = SoftmaxSums.forward(lb.pointer, count: V, shift: m, scale: s, weights: weights.pointer, blockSums: blocks)
            let ref = SoftmaxSums.forwardReference(lb.pointer, count: V, shift: m, scale: s)
            assertScalarClose(got.sum, ref.sum, "Σ w, V \(V) scale \(s)", relativeTolerance: 1e-7)
            assertScalarClose(got.weightedExponent, ref.weightedExponent, "Σ w|x|, V \(V) scale \(s)", relativeTolerance: 1e-5)
            let stored = weights.array.reduce(0.0) { $0 + Double($1) }
            let blockTotal = (0..<(V + SoftmaxSums.block - 1) / SoftmaxSums.block).reduce(0.0) { $0 + blocks[$1] }
            assertScalarClose(stored, got.sum, "Σ stored weights, V \(V)", relativeTolerance: 1e-12)
            assertScalarClose(blockTotal, got.sum, "Σ block sums, V \(V)", relativeTolerance: 1e-12)
        }
    }

    /// The sampler's exact-token certificate assumes VectorMath.exp is within 1e-7 (relative) of e^x on
    /// [−87.3, 0]; checked on every 1009th float of that range (about 1.1 million values).
    func testVectorExpErrorBound() {
        var worst = 0.0, at: Float = 0
        var bits = (-0.0 as Float).bitPattern
        let limit = (-87.3 as Float).bitPattern
        while bits <= limit {
            let x = Float(bitPattern: bits)
            let r = Foundation.exp(Double(x))
            let e = abs(Double(VectorMath.exp(x)) - r) / r
            if e > worst { worst = e; at = x }
            bits &+= 1009
        }
        XCTAssertLessThanOrEqual(worst, 1e-7, "relative error of VectorMath.exp \(worst) at x = \(at) exceeds the 1e-7 the sampler assumes")
    }
}
