// Tensor comparison for tests: fails naming the tensor, the worst element, the max difference and the tolerance.

import Foundation
import XCTest

/// The largest absolute difference between two equally long arrays and where it occurs.
public func maxDifference(_ a: [Float], _ b: [Float]) -> (value: Double, index: Int) {
    var worst = 0.0, at = 0
    for i in 0..<min(a.count, b.count) {
        let d = abs(Double(a[i]) - Double(b[i]))
        if d > worst || d.isNaN { worst = d; at = i }
    }
    return (worst, at)
}

/// Asserts |actual − expected| ≤ tolerance · max(1, max|expected|) elementwise (a relative bound on the
/// tensor's scale), naming the tensor, its worst element and both values on failure.
public func assertTensorClose(_ actual: [Float], _ expected: [Float], _ name: String, relativeTolerance tol: Double,
                              file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(name): \(actual.count) elements, expected \(expected.count)", file: file, line: line)
        return
    }
    let scale = max(1, expected.reduce(0.0) { max($0, abs(Double($1))) })
    let (diff, i) = maxDifference(actual, expected)
    if !(diff <= tol * scale) {
        XCTFail("\(name): max |diff| \(diff) at element \(i) (got \(actual[i]), expected \(expected[i])) exceeds tolerance \(tol) × scale \(scale)",
                file: file, line: line)
    }
}

/// Asserts two scalars agree to a relative tolerance, naming the quantity.
public func assertScalarClose(_ actual: Double, _ expected: Double, _ name: String, relativeTolerance tol: Double,
                              file: StaticString = #filePath, line: UInt = #line) {
    let diff = abs(actual - expected)
    if !(diff <= tol * max(1e-12, abs(expected))) {
        XCTFail("\(name): got \(actual), expected \(expected), |diff| \(diff) exceeds relative tolerance \(tol)", file: file, line: line)
    }
}

/// Deterministic pseudo-random floats in [−scale, scale) for kernel tests.
public func randomFloats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var s = seed &+ 0x9E37_79B9_7F4A_7C15
    return (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return (Float(s >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
}
