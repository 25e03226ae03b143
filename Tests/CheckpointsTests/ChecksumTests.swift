// XXH64: published vectors, incremental hashing, agreement with zstd's frame checksums, file hashing.

import Checkpoints
import XCTest

final class ChecksumTests: XCTestCase {
    func testKnownVectors() {
        let vectors: [(String, UInt64)] = [
            ("", 0xEF46_DB37_51D8_E999),
            ("a", 0xD24E_C4F1_A98C_6E5B),
            ("abc", 0x44BC_2CF5_AD77_0999),
            ("foo", 0x33BF_00A8_59C4_BA3F),  // 3728699739546630719
            ("Nobody inspects the spammish repetition", 0xFBCE_A83C_8A37_8BF1),
            ("The quick brown fox jumps over the lazy dog", 0x0B24_2D36_1FDA_71BC),
        ]
        for (text, expected) in vectors {
            XCTAssertEqual(XXH64.hash(Data(text.utf8)), expected, "\"\(text)\"")
        }
        XCTAssertEqual(XXH64.hex(0xEF46_DB37_51D8_E999), "ef46db3751d8e999")
        XCTAssertEqual(XXH64.hex(0x1F), "000000000000001f")
    }

    func testSeedChangesTheHash() {
        XCTAssertNotEqual(XXH64.hash(Data("abc".utf8), seed: 1), XXH64.hash(Data("abc".utf8)))
    }

    func testIncrementalHashingMatchesOneShot() {
        let bytes = TestData.bytes(2000, seed: 11)
        var rng = SplitMix64(seed: 12)
        for length in [0, 1, 7, 31, 32, 33, 64, 100, 257, 1000, 2000] {
            let slice = Array(bytes.prefix(length))
            var state = XXH64()
            var at = 0
            while at < length {
                let step = min(length - at, Int(rng.next() % 40))
                slice[at..<(at + step)].withUnsafeBytes { state.update($0) }
                at += step
            }
            XCTAssertEqual(state.digest(), XXH64.hash(slice), "length \(length)")
        }
    }

    /// zstd stores the low 32 bits of XXH64 (seed 0) of the content at the end of each frame: an
    /// independent implementation to compare against, over every tail length and the long-input path.
    func testAgreesWithZstdFrameChecksums() throws {
        let bytes = TestData.bytes(1 << 20, seed: 13)
        for length in Array(0...130) + [1000, 4096, 65_537, 1 << 20] {
            let slice = Data(bytes.prefix(length))
            let frame = try ZstdFrame.compress(slice, level: 1)
            let stored = frame.suffix(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            XCTAssertEqual(UInt32(truncatingIfNeeded: XXH64.hash(slice)), stored, "length \(length)")
        }
    }

    func testFileChecksum() throws {
        let dir = try makeScratchDirectory(self)
        let url = dir.appendingPathComponent("blob")
        let bytes = Data(TestData.bytes(3 * 1024 * 1024 + 5, seed: 14))
        try bytes.write(to: url)
        let sum = try FileChecksum(contentsOf: url)
        XCTAssertEqual(sum, FileChecksum(size: bytes.count, xxh64: XXH64.hash(bytes)))
        XCTAssertThrowsError(try FileChecksum(contentsOf: dir.appendingPathComponent("missing"))) { error in
            let e = error as? CheckpointIOError
            XCTAssertEqual(e?.code, ENOENT)
            XCTAssertTrue(e?.description.contains("missing") ?? false)
        }
    }
}
