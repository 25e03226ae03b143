// Deterministic test data (Gaussian weights, Adam-like moments) and scratch directories.

import Foundation
import XCTest

/// SplitMix64: a tiny deterministic generator so test data is identical on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum TestData {
    /// `n` normal samples with standard deviation `std` (Box–Muller).
    static func gaussians(_ n: Int, std: Float, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var out = [Float](repeating: 0, count: n)
        var i = 0
        while i < n {
            let u1 = max(Double(rng.next() >> 11) * 0x1p-53, 1e-300), u2 = Double(rng.next() >> 11) * 0x1p-53
            let r = (-2 * Foundation.log(u1)).squareRoot()
            out[i] = Float(r * Foundation.cos(2 * .pi * u2)) * std
            if i + 1 < n { out[i + 1] = Float(r * Foundation.sin(2 * .pi * u2)) * std }
            i += 2
        }
        return out
    }

    /// Adam first moment after `steps` updates: an EMA (β1 = 0.9) of Gaussian gradients with std `gradStd`.
    static func adamFirstMoment(_ n: Int, gradStd: Float = 1e-3, steps: Int = 10, seed: UInt64) -> [Float] {
        var m = [Float](repeating: 0, count: n)
        for s in 0..<steps {
            let g = gaussians(n, std: gradStd, seed: seed &+ UInt64(s))
            for i in 0..<n { m[i] = 0.9 * m[i] + 0.1 * g[i] }
        }
        return m
    }

    /// Adam second moment after `steps` updates: an EMA (β2 = 0.999) of squared gradients (small positives).
    static func adamSecondMoment(_ n: Int, gradStd: Float = 1e-3, steps: Int = 10, seed: UInt64) -> [Float] {
        var v = [Float](repeating: 0, count: n)
        for s in 0..<steps {
            let g = gaussians(n, std: gradStd, seed: seed &+ UInt64(s))
            for i in 0..<n { v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i] }
        }
        return v
    }

    /// `n` pseudo-random bytes.
    static func bytes(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }
}

/// A fresh directory under the system temporary directory, removed at the end of the test.
func makeScratchDirectory(_ test: XCTestCase) throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("dualign-checkpoints-\(getpid())-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
}

/// Flips every bit of the byte at `offset` in the file at `url`.
func flipByte(in url: URL, at offset: Int) throws {
    var data = try Data(contentsOf: url)
    data[data.startIndex + offset] ^= 0xFF
    try data.write(to: url)
}

/// Cuts the file at `url` down to `length` bytes.
func truncateFile(_ url: URL, to length: Int) throws {
    let handle = try FileHandle(forWritingTo: url)
    try handle.truncate(atOffset: UInt64(length))
    try handle.close()
}
