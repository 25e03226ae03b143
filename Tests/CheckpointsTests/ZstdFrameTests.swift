// zstd frames: round trips, frame properties, and typed errors (never a crash) on damaged input.

import Checkpoints
import CZstd
import XCTest

final class ZstdFrameTests: XCTestCase {
    /// Half random, half repetitive bytes.
    private func sample(_ n: Int, seed: UInt64) -> [UInt8] {
        let random = TestData.bytes(n / 2, seed: seed)
        return random + (0..<(n - n / 2)).map { UInt8($0 % 7) }
    }

    private func expectZstdError(_ kinds: Set<String>, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let e = error as? ZstdError else { return XCTFail("not a ZstdError: \(error)", file: file, line: line) }
            XCTAssertTrue(kinds.contains("\(e.kind)"), "kind \(e.kind), expected \(kinds): \(e)", file: file, line: line)
            XCTAssertTrue(e.description.contains("ZstdFrame"), "no call site in \(e)", file: file, line: line)
        }
    }

    func testRoundTripAcrossSizesLevelsAndWorkers() throws {
        for n in [0, 1, 17, 1000, 1 << 17, (1 << 20) + 3] {
            let input = Data(sample(n, seed: UInt64(n)))
            for (level, workers) in [(1, 0), (3, 0), (3, 2), (-5, 0), (19, 0)] where n <= 1 << 17 || level < 10 {
                let frame = try ZstdFrame.compress(input, level: level, workers: workers)
                XCTAssertEqual(try ZstdFrame.decompress(frame), input, "\(n) bytes, level \(level), workers \(workers)")
                XCTAssertEqual(try frame.withUnsafeBytes { try ZstdFrame.declaredContentSize($0) }, UInt64(n))
            }
        }
    }

    func testFramesCarryAContentChecksum() throws {
        let frame = try ZstdFrame.compress(Data(sample(5000, seed: 1)))
        // Frame_Header_Descriptor follows the 4-byte magic; bit 2 is Content_Checksum_flag.
        XCTAssertEqual(frame[frame.startIndex + 4] & 0x04, 0x04)
        XCTAssertTrue(ZstdFrame.supportsWorkers, "Debian's libzstd is built with multithreading")
    }

    func testInterruptedFramesAreTruncatedErrors() throws {
        let frame = try ZstdFrame.compress(Data(sample(200_000, seed: 2)))
        for cut in [1, 3, 5, 12, frame.count / 2, frame.count - 5, frame.count - 4, frame.count - 1] {
            expectZstdError(["truncated"]) { _ = try ZstdFrame.decompress(frame.prefix(cut)) }
        }
        expectZstdError(["truncated"]) { _ = try ZstdFrame.decompress(Data()) }
    }

    func testDamagedFramesAreTypedErrors() throws {
        let frame = try ZstdFrame.compress(Data(sample(200_000, seed: 3)))
        expectZstdError(["corrupt"]) { _ = try ZstdFrame.decompress(Data("not a zstd frame at all".utf8)) }
        var badMagic = frame; badMagic[badMagic.startIndex] ^= 0xFF
        expectZstdError(["corrupt"]) { _ = try ZstdFrame.decompress(badMagic) }
        // Damage anywhere in the body: corruption inside a compressed block or, at worst, the checksum catches it.
        for offset in stride(from: 20, to: frame.count - 4, by: max(1, frame.count / 37)) {
            var damaged = frame; damaged[damaged.startIndex + offset] ^= 0x5A
            expectZstdError(["corrupt", "checksumMismatch", "truncated", "trailingData"]) { _ = try ZstdFrame.decompress(damaged) }
        }
        var badChecksum = frame; badChecksum[badChecksum.endIndex - 1] ^= 0x01
        expectZstdError(["checksumMismatch"]) { _ = try ZstdFrame.decompress(badChecksum) }
    }

    func testFlippedByteInStoredBlockIsAChecksumMismatch() throws {
        // Random bytes do not compress, so zstd stores them raw: the flip decodes fine and only the checksum notices.
        let frame = try ZstdFrame.compress(Data(TestData.bytes(4096, seed: 4)))
        var damaged = frame; damaged[damaged.startIndex + 2000] ^= 0x10
        expectZstdError(["checksumMismatch"]) { _ = try ZstdFrame.decompress(damaged) }
    }

    func testTrailingBytesAreRejected() throws {
        let frame = try ZstdFrame.compress(Data(sample(1000, seed: 5)))
        expectZstdError(["trailingData"]) { _ = try ZstdFrame.decompress(frame + Data([0, 1, 2])) }
    }

    func testSizeLimitIsCheckedBeforeAllocating() throws {
        let frame = try ZstdFrame.compress(Data(count: 1 << 20))
        expectZstdError(["tooLarge"]) { _ = try ZstdFrame.decompress(frame, maxSize: 1000) }
    }

    func testFramesWithoutContentSizeUseStreaming() throws {
        let input = Data(sample(300_000, seed: 6))
        var frame = Data()
        let writer = try ZstdFrameWriter(level: 3) { frame.append(contentsOf: $0) }
        for chunk in stride(from: 0, to: input.count, by: 70_001) {
            try writer.append(input[chunk..<min(chunk + 70_001, input.count)])
        }
        try writer.finish()
        XCTAssertNil(try frame.withUnsafeBytes { try ZstdFrame.declaredContentSize($0) })
        XCTAssertEqual(try ZstdFrame.decompress(frame), input)
        expectZstdError(["tooLarge"]) { _ = try ZstdFrame.decompress(frame, maxSize: 100_000) }
        expectZstdError(["truncated"]) { _ = try ZstdFrame.decompress(frame.prefix(frame.count - 10)) }
    }

    func testPledgedSizeMismatchIsAnError() throws {
        let writer = try ZstdFrameWriter(pledgedSize: 100) { _ in }
        try writer.append(Data(count: 50))
        XCTAssertThrowsError(try writer.finish()) { XCTAssertTrue($0 is ZstdError, "\($0)") }
    }

    func testBadLevelIsAParameterError() {
        expectZstdError(["parameter"]) { _ = try ZstdFrame.compress(Data([1, 2, 3]), level: 99) }
    }

    func testFramesDecodeWithThePlainCAPI() throws {
        let input = sample(10_000, seed: 8)
        let frame = try ZstdFrame.compress(Data(input))
        var out = [UInt8](repeating: 0, count: input.count)
        let n = frame.withUnsafeBytes { f in out.withUnsafeMutableBytes { ZSTD_decompress($0.baseAddress, $0.count, f.baseAddress, f.count) } }
        XCTAssertEqual(ZSTD_isError(n), 0)
        XCTAssertEqual(out, input)
    }
}
