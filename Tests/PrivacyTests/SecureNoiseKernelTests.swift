// The secure noise's C kernels (CShims' secure_noise.c, AVX2 and AVX-512) against the Swift path they replace,
// for every kernel this processor runs: the keystream word for word against `ChaCha20.nextBlocks` and the
// scalar `ChaCha20.block` (up to the counter's last block), the normals bit for bit against
// `FastGaussian.opacusNormals` on 1 M values, `addNoise` bit for bit against the Swift path under the same
// key (refill boundaries, an odd number of refills, the tail, a second call on the same generators), and
// the re-keying before the counter wraps. All on fixed keys: deterministic. (The distribution of each
// kernel's noise is tested in FastGaussianTests.)

import Foundation
import XCTest
@testable import Privacy

final class SecureNoiseKernelTests: XCTestCase {
    /// The C kernels this processor runs (none: the tests are skipped).
    private func vectorKernels() throws -> [FastGaussian.Kernel] {
        let kernels = FastGaussian.Kernel.available.filter { $0 != .swift }
        try XCTSkipIf(kernels.isEmpty, "this processor has neither AVX2 nor AVX-512: only the Swift path runs")
        return kernels
    }

    private let key: [UInt32] = (0..<8).map { 0x9e37_79b9 &* UInt32($0 + 3) }

    /// Runs `body` with `FastGaussian.kernel` set to `kernel`.
    private func with(_ kernel: FastGaussian.Kernel, _ body: () -> Void) {
        let saved = FastGaussian.kernel
        FastGaussian.kernel = kernel
        defer { FastGaussian.kernel = saved }
        body()
    }

    func testKernelKeystreamMatchesTheSwiftBlocks() throws {
        let groups = 11                                                   // odd: AVX-512's pairs and a last single group
        for kernel in try vectorKernels() {
            for start: UInt32 in [0, 1000, 0xffff_ffff - 8 * UInt32(groups) + 1] {   // the last: up to block 2³² − 1
                var swift = ChaCha20(key: key, nonce: [7, 8, 9], counter: start)
                let reference = UnsafeMutablePointer<SIMD8<UInt32>>.allocate(capacity: 16 * groups)
                let fast = UnsafeMutablePointer<SIMD8<UInt32>>.allocate(capacity: 16 * groups)
                defer { reference.deallocate(); fast.deallocate() }
                FastGaussian.kernelBlocks(kernel, cipher: swift, groups: groups, into: fast)
                swift.nextBlocks(groups: groups, into: reference)
                for v in 0..<(16 * groups) where fast[v] != reference[v] {
                    return XCTFail("\(kernel), counter \(start): vector \(v) (group \(v / 16), word \(v % 16)) is \(fast[v]), Swift \(reference[v])")
                }
                for b in 0..<(8 * groups) {                              // and each block against the scalar RFC function
                    let words = ChaCha20.block(ChaCha20(key: key, nonce: [7, 8, 9], counter: start &+ UInt32(b)).state)
                    let lanes = (0..<16).map { fast[16 * (b / 8) + $0][b % 8] }
                    XCTAssertEqual(lanes, words, "\(kernel), counter \(start): block \(b) vs the scalar block function")
                }
            }
        }
    }

    func testKernelNormalsEqualOpacusNormalsOnAMillionValues() throws {
        var cipher = ChaCha20(key: key)
        let groups = 3 << 13, sets = 16 * groups / 3 - 1                  // 131 071 sets of 8 (1 048 568 values): a last partial chunk
        let words = UnsafeMutablePointer<SIMD8<UInt32>>.allocate(capacity: 16 * groups)
        let fast = UnsafeMutablePointer<Float>.allocate(capacity: 8 * sets)
        defer { words.deallocate(); fast.deallocate() }
        cipher.nextBlocks(groups: groups, into: words)
        for kernel in try vectorKernels() {
            FastGaussian.kernelNormals(kernel, words: words, sets: sets, into: fast)
            // Tolerance: none. The C code does the same float operations in the same order (no FMA), so the
            // values are bit-identical; a difference means the two paths have drifted apart.
            var mismatches = 0, worst: Float = 0
            for s in 0..<sets {
                let z = FastGaussian.opacusNormals(words[3 * s], words[3 * s + 1], words[3 * s + 2])
                for j in 0..<8 where fast[8 * s + j].bitPattern != z[j].bitPattern {
                    if mismatches == 0 { XCTFail("\(kernel): value \(8 * s + j) is \(fast[8 * s + j]), Swift \(z[j])") }
                    mismatches += 1
                    worst = max(worst, abs(fast[8 * s + j] - z[j]))
                }
            }
            XCTAssertEqual(mismatches, 0, "\(kernel): \(mismatches) of \(8 * sets) normals differ from the Swift path (largest |diff| \(worst))")
        }
    }

    /// `addNoise` on `count` values (a ramp, so the noise is added, not stored) from `generator` by `kernel`.
    private func noise(_ kernel: FastGaussian.Kernel, count: Int, generator: ChaCha20Random) -> [Float] {
        var values = (0..<count).map { Float($0 % 97) - 48 }
        with(kernel) {
            values.withUnsafeMutableBufferPointer { FastGaussian.addNoise(to: $0.baseAddress!, count: count, scale: 0.75, generator: generator) }
        }
        return values
    }

    private func assertBitIdentical(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        if let i = a.indices.first(where: { i in i < b.count && a[i].bitPattern != b[i].bitPattern }) {
            XCTFail("\(what): value \(i) of \(a.count) is \(b[i]), Swift path \(a[i])", file: file, line: line)
        }
    }

    func testAddNoiseEqualsTheSwiftPathUnderTheSameKey() throws {
        for kernel in try vectorKernels() {
            let swift = ChaCha20Random(key: key), fast = ChaCha20Random(key: key)
            // 7 813 refills (odd) and a tail of 3; then a call with no whole refill, then one with a few.
            for count in [1_000_067, 300, 1003] {
                assertBitIdentical(noise(.swift, count: count, generator: swift), noise(kernel, count: count, generator: fast),
                                   "\(kernel), \(count) values")
                XCTAssertEqual(fast.counter, swift.counter, "\(kernel): the generators are at the same block after \(count) values")
            }
            XCTAssertEqual(fast.next(), swift.next(), "\(kernel): and at the same word")
        }
    }

    func testKernelsReKeyWhereTheSwiftPathDoes() throws {
        for kernel in try vectorKernels() {
            // The counter 106 blocks before 2³²: the discarded draw's refill and 3 whole refills fit under the key,
            // the 4th would pass 2³² and takes a new key from the OS.
            let swift = ChaCha20Random(key: key), fast = ChaCha20Random(key: key)
            swift.setCounter(UInt32.max - 105); fast.setCounter(UInt32.max - 105)
            let a = noise(.swift, count: 128 * 10 + 5, generator: swift), b = noise(kernel, count: 128 * 10 + 5, generator: fast)
            assertBitIdentical(Array(a[0..<384]), Array(b[0..<384]), "\(kernel): the refills before the wrap, under the fixed key")
            XCTAssertNotEqual(Array(a[384...]), Array(b[384...]), "\(kernel): after re-keying, two fresh OS keys")
            XCTAssertEqual(fast.keyCount, 2, "\(kernel) path: one new key"); XCTAssertEqual(swift.keyCount, 2, "Swift path: one new key")
            XCTAssertEqual(fast.counter, swift.counter, "\(kernel): both at block \(swift.counter) of the new key")
            // Whole refills that end exactly at 2³²: the counter is back at 0 under the spent key, so re-key.
            for (k, g) in [(FastGaussian.Kernel.swift, ChaCha20Random(key: key)), (kernel, ChaCha20Random(key: key))] {
                g.setCounter(UInt32(truncatingIfNeeded: (1 << 32) - 72))    // the discarded draw's refill, then 2 whole ones
                _ = noise(k, count: 256, generator: g)
                XCTAssertEqual(g.keyCount, 2, "\(k): refills reaching block 2³² exactly take a new key")
                XCTAssertEqual(g.counter, 0, "\(k): the new key starts at block 0")
            }
        }
    }
}
