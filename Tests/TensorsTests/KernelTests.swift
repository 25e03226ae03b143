// Every fast kernel against its naive reference, forward and backward.

import XCTest
import Foundation
import Tensors
import TestSupport

final class KernelTests: MatmulTestCase {
    /// sgemm path vs the Double-accumulating reference, forward and both gradients (fp32: 1e-5 of scale).
    func testMatmulMatchesReference() {
        let M = 37, N = 53, K = 29
        let inp = randomFloats(M * K, seed: 1), w = randomFloats(N * K, seed: 2), dout = randomFloats(M * N, seed: 3)
        let out = FloatBuffer(count: M * N), ref = FloatBuffer(count: M * N)
        let i = FloatBuffer(inp), wb = FloatBuffer(w), d = FloatBuffer(dout)
        Matmul.forward(out.pointer, i.pointer, wb.pointer, M: M, N: N, K: K)
        Matmul.forwardReference(ref.pointer, i.pointer, wb.pointer, M: M, N: N, K: K)
        assertTensorClose(out.array, ref.array, "matmul out", relativeTolerance: 1e-5)
        let dinp = FloatBuffer(count: M * K), dw = FloatBuffer(count: N * K)
        let rdinp = FloatBuffer(count: M * K), rdw = FloatBuffer(count: N * K)
        // Both accumulate: start from the same non-zero values.
        for b in [dinp, rdinp] { for k in 0..<b.count { b[k] = 0.5 } }
        Matmul.backward(dinp: dinp.pointer, dweight: dw.pointer, dout: d.pointer, inp: i.pointer, weight: wb.pointer, M: M, N: N, K: K)
        Matmul.backwardReference(dinp: rdinp.pointer, dweight: rdw.pointer, dout: d.pointer, inp: i.pointer, weight: wb.pointer, M: M, N: N, K: K)
        assertTensorClose(dinp.array, rdinp.array, "matmul dinp", relativeTolerance: 1e-5)
        assertTensorClose(dw.array, rdw.array, "matmul dweight", relativeTolerance: 1e-5)
    }

    func testRMSNormMatchesReference() {
        let R = 19, C = 48
        let x = randomFloats(R * C, seed: 4, scale: 2), w = randomFloats(C, seed: 5), dy = randomFloats(R * C, seed: 6)
        let (rOut, rDx, rDw) = RMSNorm.reference(inp: x, weight: w, dout: dy, rows: R, channels: C, eps: 1e-5)
        let out = FloatBuffer(count: R * C), rstd = FloatBuffer(count: R), dx = FloatBuffer(count: R * C), dw = FloatBuffer(count: C)
        let xb = FloatBuffer(x), wb = FloatBuffer(w), dyb = FloatBuffer(dy)
        RMSNorm.forward(out: out.pointer, rstd: rstd.pointer, inp: xb.pointer, weight: wb.pointer, rows: R, channels: C, eps: 1e-5)
        RMSNorm.backward(dinp: dx.pointer, dweight: dw.pointer, dout: dyb.pointer, inp: xb.pointer, weight: wb.pointer,
                         rstd: rstd.pointer, rows: R, channels: C)
        assertTensorClose(out.array, rOut, "rmsnorm out", relativeTolerance: 1e-5)
        assertTensorClose(dx.array, rDx, "rmsnorm dinp", relativeTolerance: 1e-5)
        assertTensorClose(dw.array, rDw, "rmsnorm dweight", relativeTolerance: 1e-5)
    }

    /// Both rotary layouts against the reference rotation, and inverse ∘ forward = identity (the backward).
    func testRotaryBothLayouts() {
        let B = 2, T = 7, H = 3, HS = 16, stride = H * HS + 5
        let table = RotaryTable(positions: 64, headSize: HS, base: 10_000)
        for layout in RotaryLayout.allCases {
            let x = randomFloats(B * T * stride, seed: 7)
            let buf = FloatBuffer(x)
            Rotary.apply(buf.pointer, rows: B * T, rowStride: stride, heads: H, sequenceLength: T, table: table, layout: layout)
            var expected = x
            for r in 0..<(B * T) {
                for h in 0..<H {
                    let o = r * stride + h * HS
                    let rotated = Rotary.reference(Array(x[o..<(o + HS)]), position: r % T, base: 10_000, layout: layout)
                    expected.replaceSubrange(o..<(o + HS), with: rotated)
                }
            }
            assertTensorClose(buf.array, expected, "rotary \(layout)", relativeTolerance: 1e-5)
            Rotary.apply(buf.pointer, rows: B * T, rowStride: stride, heads: H, sequenceLength: T, table: table, layout: layout, inverse: true)
            assertTensorClose(buf.array, x, "rotary \(layout) inverse", relativeTolerance: 1e-5)
        }
    }

    /// Grouped-query causal attention with padding, forward and backward against the reference.
    func testAttentionMatchesReference() {
        let shape = AttentionShape(batch: 3, time: 9, heads: 4, kvHeads: 2, headSize: 8)
        let lengths = [9, 5, 1]
        let qkv = randomFloats(3 * 9 * shape.qkvChannels, seed: 8, scale: 2)
        let dout = randomFloats(3 * 9 * shape.outChannels, seed: 9)
        let (rOut, rD) = Attention.reference(qkv: qkv, dout: dout, lengths: lengths, shape: shape)
        let out = FloatBuffer(count: rOut.count), att = FloatBuffer(count: 3 * 4 * 9 * 9), d = FloatBuffer(count: qkv.count)
        let q = FloatBuffer(qkv), dO = FloatBuffer(dout)
        Attention.forward(out: out.pointer, att: att.pointer, qkv: q.pointer, lengths: lengths, shape: shape)
        Attention.backward(dqkv: d.pointer, dout: dO.pointer, att: att.pointer, qkv: q.pointer, shape: shape)
        assertTensorClose(out.array, rOut, "attention out", relativeTolerance: 1e-5)
        assertTensorClose(d.array, rD, "attention dqkv", relativeTolerance: 1e-5)
        // Padding keys get zero probability; every row sums to one.
        let p = att.array
        for t in 0..<9 {
            let row = Array(p[((1 * 4 + 0) * 9 + t) * 9..<((1 * 4 + 0) * 9 + t + 1) * 9])
            XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5, "row \(t) of sequence 1 sums to 1")
            XCTAssertTrue(row[5...].allSatisfy { $0 == 0 }, "padding keys of sequence 1 must get zero probability")
        }
    }

    func testSwiGLUMatchesReference() {
        let R = 11, F = 24
        let gu = randomFloats(R * 2 * F, seed: 10, scale: 4), dy = randomFloats(R * F, seed: 11)
        let (rOut, rD) = SwiGLU.reference(gateUp: gu, dout: dy, rows: R, features: F)
        let out = FloatBuffer(count: R * F), d = FloatBuffer(count: R * 2 * F), g = FloatBuffer(gu), dyb = FloatBuffer(dy)
        SwiGLU.forward(out: out.pointer, gateUp: g.pointer, rows: R, features: F)
        SwiGLU.backward(dgateUp: d.pointer, dout: dyb.pointer, gateUp: g.pointer, rows: R, features: F)
        assertTensorClose(out.array, rOut, "swiglu out", relativeTolerance: 1e-5)
        assertTensorClose(d.array, rD, "swiglu dgateUp", relativeTolerance: 1e-5)
    }

    func testLogProbsMatchReference() {
        let N = 6, V = 300
        let logits = randomFloats(N * V, seed: 12, scale: 8), dlogp = randomFloats(N, seed: 13)
        let targets: [Int32] = [0, 299, 17, 150, 3, 3]
        let (rLogp, rD) = LogProbs.reference(logits: logits, targets: targets, dlogp: dlogp, vocab: V)
        let lb = FloatBuffer(logits), lse = FloatBuffer(count: N), logp = FloatBuffer(count: N), d = FloatBuffer(dlogp)
        targets.withUnsafeBufferPointer { t in
            LogProbs.forward(logp: logp.pointer, lse: lse.pointer, logits: lb.pointer, targets: t.baseAddress!, positions: N, vocab: V)
            LogProbs.backward(logitsToGrad: lb.pointer, dlogp: d.pointer, lse: lse.pointer, targets: t.baseAddress!, positions: N, vocab: V)
        }
        assertTensorClose(logp.array, rLogp, "logprobs", relativeTolerance: 1e-5)
        assertTensorClose(lb.array, rD, "logprobs dlogits", relativeTolerance: 1e-5)
    }

    func testEmbeddingBackwardAccumulatesRepeatedTokens() {
        let C = 4
        let table = FloatBuffer(randomFloats(5 * C, seed: 14)), out = FloatBuffer(count: 3 * C), dtable = FloatBuffer(count: 5 * C)
        let tokens: [Int32] = [2, 4, 2]
        let dout = FloatBuffer((0..<(3 * C)).map { Float($0) })
        tokens.withUnsafeBufferPointer { t in
            Embedding.forward(out: out.pointer, tokens: t.baseAddress!, table: table.pointer, rows: 3, channels: C)
            Embedding.backward(dtable: dtable.pointer, dout: dout.pointer, tokens: t.baseAddress!, rows: 3, channels: C)
        }
        XCTAssertEqual(Array(out.array[0..<C]), Array(table.array[2 * C..<3 * C]))
        XCTAssertEqual(Array(dtable.array[2 * C..<3 * C]), [8, 10, 12, 14], "token 2 appears twice: rows 0 and 2 add up")
        XCTAssertEqual(Array(dtable.array[0..<C]), [0, 0, 0, 0])
    }
}

final class VectorMathTests: XCTestCase {
    /// The polynomial exp against Foundation's over the range softmax and SiLU use: relative 5e-7.
    func testExpAccuracy() {
        var worst = 0.0, at: Float = 0
        var x: Float = -87
        while x < 88 {
            let got = Double(VectorMath.exp(x)), want = Foundation.exp(Double(x))
            let rel = abs(got - want) / want
            if rel > worst { worst = rel; at = x }
            x += 0.0137
        }
        XCTAssertLessThan(worst, 5e-7, "exp relative error \(worst) at x = \(at) exceeds 5e-7")
        XCTAssertEqual(VectorMath.exp(-1000), 0, accuracy: 1e-37, "exp of a very negative number underflows to ≈0")
    }

    func testReductionsCoverTails() {
        let x = randomFloats(29, seed: 21, scale: 3)
        let b = FloatBuffer(x)
        XCTAssertEqual(VectorMath.max(b.pointer, count: 29), x.max()!)
        let dot = zip(x, x).map { Double($0) * Double($1) }.reduce(0, +)
        XCTAssertEqual(Double(VectorMath.dot(b.pointer, b.pointer, count: 29)), dot, accuracy: 1e-4)
        let sum = x.map { Foundation.exp(Double($0 - 1)) }.reduce(0, +)
        XCTAssertEqual(Double(VectorMath.expShifted(b.pointer, count: 29, shift: 1)), sum, accuracy: 1e-5 * sum)
        XCTAssertEqual(Double(b[28]), Foundation.exp(Double(x[28] - 1)), accuracy: 1e-6, "tail element replaced by its exp")
    }
}
