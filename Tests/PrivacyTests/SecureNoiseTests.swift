// Secure noise on a slab large enough to be drawn by several threads (full fine-tuning): the values are
// N(0, std²) (χ² and fourth-moment bounds, 5 sd) and the threads' parts are independent streams (the
// correlation between the two halves is within 5/√n of 0).

import Foundation
import XCTest
import Tensors
@testable import Privacy

final class SecureNoiseTests: XCTestCase {
    func testThreadedSecureNoiseIsGaussianAndPartsAreIndependent() {
        let saved = ThreadPool.threads
        ThreadPool.threads = 2
        defer { ThreadPool.threads = saved }
        let count = 4 * GaussianNoiseSource.parallelThreshold, std = 0.8
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBufferPointer { GaussianNoiseSource.secure().addNoise(to: $0.baseAddress!, count: count, standardDeviation: std) }
        let n = Double(count)
        let chi2 = values.reduce(0.0) { $0 + Double($1) * Double($1) } / (std * std)
        XCTAssertLessThan(abs(chi2 - n), 5 * (2 * n).squareRoot(), "Σx²/σ² = \(chi2); χ²_n: \(n) ± \((2 * n).squareRoot()) (bound 5 sd)")
        let fourth = values.reduce(0.0) { $0 + pow(Double($1) / std, 4) } / n
        XCTAssertLessThan(abs(fourth - 3), 5 * (96 / n).squareRoot(), "E[x⁴]/σ⁴ = \(fourth); Gaussian 3 (bound 5 sd)")
        let half = count / 2
        var cross = 0.0
        for i in 0..<half { cross += Double(values[i]) * Double(values[half + i]) }
        let correlation = cross / (Double(half) * std * std)
        XCTAssertLessThan(abs(correlation), 5 / Double(half).squareRoot(), "the two threads' halves are uncorrelated (\(correlation))")
        XCTAssertNotEqual(Array(values[0..<16]), Array(values[half..<(half + 16)]), "the halves are not the same stream")
    }
}
