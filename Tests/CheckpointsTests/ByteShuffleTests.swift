// Byte-plane shuffle: layout and exact round trips for every size, including odd tails.

import Checkpoints
import XCTest

final class ByteShuffleTests: XCTestCase {
    /// The textbook definition, for comparison with the fast kernels.
    private func referenceShuffle(_ bytes: [UInt8], _ size: Int) -> [UInt8] {
        let n = bytes.count / size
        var out = bytes
        for j in 0..<n { for k in 0..<size { out[k * n + j] = bytes[j * size + k] } }
        return out
    }

    func testRoundTripForOddSizesAndElementSizes() {
        for elementSize in [1, 2, 3, 4, 5, 8] {
            for count in [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 31, 32, 33, 35, 63, 64, 65, 127, 1001, 4099] {
                let bytes = TestData.bytes(count, seed: UInt64(count * 31 + elementSize))
                let planes = ByteShuffle.shuffled(bytes, elementSize: elementSize)
                XCTAssertEqual(planes, referenceShuffle(bytes, elementSize), "size \(elementSize), \(count) bytes")
                XCTAssertEqual(ByteShuffle.unshuffled(planes, elementSize: elementSize), bytes,
                               "size \(elementSize), \(count) bytes")
            }
        }
    }

    func testPlaneKHoldsByteKOfEveryElement() {
        let words: [UInt32] = [0x0403_0201, 0x0807_0605, 0x0C0B_0A09]
        let bytes = words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }
        XCTAssertEqual(ByteShuffle.shuffled(bytes), [1, 5, 9, 2, 6, 10, 3, 7, 11, 4, 8, 12])
    }

    func testTrailingBytesAreCopiedUnchanged() {
        let bytes: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        let planes = ByteShuffle.shuffled(bytes, elementSize: 4)
        XCTAssertEqual(planes, [1, 5, 2, 6, 3, 7, 4, 8, 9, 10])
        XCTAssertEqual(ByteShuffle.unshuffled(planes, elementSize: 4), bytes)
    }

    func testFloatRoundTripIsBitExactIncludingSpecialValues() {
        var floats = TestData.gaussians(1027, std: 0.02, seed: 7)
        floats += [.nan, -.nan, .infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
                   Float(bitPattern: 0x7FC0_1234)]
        var planes = [UInt8](repeating: 0, count: floats.count * 4)
        var back = [Float](repeating: 1, count: floats.count)
        floats.withUnsafeBytes { s in planes.withUnsafeMutableBytes { ByteShuffle.shuffle(s, into: $0) } }
        planes.withUnsafeBytes { s in back.withUnsafeMutableBytes { ByteShuffle.unshuffle(s, into: $0) } }
        XCTAssertEqual(back.map(\.bitPattern), floats.map(\.bitPattern))
    }

    func testGatheringPlanesChunkByChunkEqualsTheShuffle() {
        for elementSize in [4, 3] {
            for count in [0, 1, 7, 8, 9, 40, 1001] {
                let bytes = TestData.bytes(count * elementSize, seed: UInt64(count))
                var streamed: [UInt8] = []
                for plane in 0..<elementSize {
                    for start in stride(from: 0, to: count, by: 13) {
                        let end = min(start + 13, count)
                        var chunk = [UInt8](repeating: 0, count: end - start)
                        bytes[(start * elementSize)..<(end * elementSize)].withUnsafeBytes { s in
                            chunk.withUnsafeMutableBytes { ByteShuffle.gatherPlane(plane, of: s, elementSize: elementSize, into: $0) }
                        }
                        streamed += chunk
                    }
                }
                XCTAssertEqual(streamed, ByteShuffle.shuffled(bytes, elementSize: elementSize), "size \(elementSize), \(count) elements")
            }
        }
    }
}
