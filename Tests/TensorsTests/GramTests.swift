// Gram.upper (ssyrk) against its Double reference, inside a larger output with a row stride; the strict
// lower triangle is left untouched.

import XCTest
import TestSupport
@testable import Tensors

final class GramTests: XCTestCase {
    func testUpperTriangleMatchesReferenceAndLeavesTheLowerAlone() {
        let L = 7, K = 13, ld = 9
        let x = randomFloats(L * K, seed: 3)
        var fast = [Float](repeating: -5, count: L * ld), reference = fast
        fast.withUnsafeMutableBufferPointer { Gram.upper($0.baseAddress!, x, rows: L, features: K, ldOut: ld) }
        reference.withUnsafeMutableBufferPointer { Gram.upperReference($0.baseAddress!, x, rows: L, features: K, ldOut: ld) }
        assertTensorClose(fast, reference, "X·Xᵀ upper triangle", relativeTolerance: 1e-5)
        for i in 0..<L { for j in 0..<i { XCTAssertEqual(fast[i * ld + j], -5, "lower (\(i), \(j)) untouched") } }
        for i in 0..<L { for j in L..<ld { XCTAssertEqual(fast[i * ld + j], -5, "padding column (\(i), \(j)) untouched") } }
    }
}
