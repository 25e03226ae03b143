// bf16 forward products against the Double reference on bf16-rounded operands (the rounding is the
// only approximation: accumulation is fp32) and against fp32 (how much the rounding costs).

import XCTest
import Foundation
import Tensors
import TestSupport

final class BF16MatmulTests: XCTestCase {
    /// bfloat16 rounding, nearest even (the conversion the products apply to weights and inputs).
    static func bf16(_ x: Float) -> Float {
        var bits = x.bitPattern
        bits = bits &+ 0x7fff &+ ((bits >> 16) & 1)
        return Float(bitPattern: bits & 0xffff_0000)
    }

    func testForwardMatchesReferenceOnRoundedOperands() {
        let saved = ThreadPool.threads
        defer { ThreadPool.threads = saved }
        // (M, N, K): one row; blocks of 64 with a ragged tail; fewer than 64 outputs (one block); many rows.
        for threads in [1, 2] {
            ThreadPool.threads = threads
            let weights = BF16Weights()
            // The copies are keyed by the fp32 weight's address, so every weight stays alive while
            // `weights` lives (a freed buffer's address may be reused by the next shape's weight).
            var alive: [FloatBuffer] = []
            for (M, N, K) in [(1, 200, 96), (37, 301, 75), (5, 40, 33), (300, 130, 64)] {
                let inp = randomFloats(M * K, seed: 1, scale: 3), w = randomFloats(N * K, seed: 2)
                let i = FloatBuffer(inp), wb = FloatBuffer(w)
                alive.append(wb)
                let ri = FloatBuffer(inp.map(Self.bf16)), rw = FloatBuffer(w.map(Self.bf16))
                let rounded = FloatBuffer(count: M * N), exact = FloatBuffer(count: M * N)
                Matmul.forwardReference(rounded.pointer, ri.pointer, rw.pointer, M: M, N: N, K: K)
                Matmul.forwardReference(exact.pointer, i.pointer, wb.pointer, M: M, N: N, K: K)
                let name = "bf16 \(M)×\(N)×\(K), \(threads) threads"
                let out = FloatBuffer(count: M * N)
                weights.forward(out.pointer, i.pointer, wb.pointer, M: M, N: N, K: K)
                assertTensorClose(out.array, rounded.array, "\(name) vs rounded-operand reference", relativeTolerance: 1e-5)
                // Against fp32: each operand carries a relative rounding error of at most 2⁻⁹.
                assertTensorClose(out.array, exact.array, "\(name) vs fp32 reference", relativeTolerance: 2e-2)
                // A second call reuses the converted weights; accumulate into a strided output.
                let ldO = N + 3
                let so = FloatBuffer(count: M * ldO)
                for k in 0..<so.count { so[k] = 1 }
                weights.forward(so.pointer, i.pointer, wb.pointer, M: M, N: N, K: K, accumulate: true, ldOut: ldO)
                var strided: [Float] = [], padding: [Float] = []
                for m in 0..<M {
                    strided += (0..<N).map { so[m * ldO + $0] - 1 }
                    padding += (N..<ldO).map { so[m * ldO + $0] }
                }
                assertTensorClose(strided, rounded.array, "\(name) accumulated, strided", relativeTolerance: 1e-5)
                XCTAssertEqual(padding, [Float](repeating: 1, count: padding.count), "\(name): elements past N must stay untouched")
            }
            XCTAssertEqual(weights.byteCount, 2 * (200 * 96 + 301 * 75 + 40 * 33 + 130 * 64), "bf16 bytes held")
        }
    }

    /// The conversion rounds to nearest even, like the reference above (ties, carries into the exponent).
    func testRoundingIsNearestEven() {
        let values: [Float] = [1, 1 + 0x1p-8, 1 + 0x1p-9, 1 + 3 * 0x1p-9, -2.5, 0x1.fffffep127, 3e-30, 0]
        let out = FloatBuffer(count: values.count)
        let identity = FloatBuffer([1])
        let weights = BF16Weights()
        for (k, v) in values.enumerated() {
            let x = FloatBuffer([v])
            weights.forward(out.pointer + k, x.pointer, identity.pointer, M: 1, N: 1, K: 1)
        }
        XCTAssertEqual(out.array.map(\.bitPattern), values.map { Self.bf16($0).bitPattern },
                       "bf16(x) · 1 must equal x rounded to nearest even")
    }
}
