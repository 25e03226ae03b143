// Tensor archives: bit-exact round trips in both modes, plain safetensors after `zstd -d`, and bad files.

import Checkpoints
import CZstd
import Foundation
import XCTest

final class TensorArchiveTests: XCTestCase {
    /// Test tensors: odd sizes, a scalar, an empty tensor and special values.
    private let tensors: [(String, [Int], [Float])] = {
        var special = TestData.gaussians(97, std: 0.02, seed: 21)
        special += [.nan, .infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, Float(bitPattern: 0x7FC0_ABCD)]
        return [
            ("model.embed_tokens.weight", [13, 7], TestData.gaussians(91, std: 0.02, seed: 22)),
            ("model.norm.weight", [104], special),
            ("optimizer.v.layers.0", [3, 5, 11], TestData.adamSecondMoment(165, seed: 23)),
            ("scalar", [], [42.5]),
            ("empty", [0, 4], []),
            ("name with \"quotes\" \\ and ünïcödé", [1], [1]),
        ]
    }()

    private let metadata: [String: String] = [
        "step": "1200", "seed": String(UInt64.max), "lambda_step": String(Int64.min), "lr": String(3e-4),
        "config_hash": "sha256:abc",
    ]

    /// Calls `body` with the test tensors as `TensorArchive.Tensor`s.
    private func withTensors<T>(_ body: ([TensorArchive.Tensor]) throws -> T) throws -> T {
        func nest(_ i: Int, _ acc: [TensorArchive.Tensor]) throws -> T {
            if i == tensors.count { return try body(acc) }
            return try tensors[i].2.withUnsafeBufferPointer { try nest(i + 1, acc + [(tensors[i].0, tensors[i].1, $0)]) }
        }
        return try nest(0, [])
    }

    private func assertContentsMatch(_ contents: TensorArchiveContents, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(contents.names, tensors.map(\.0), file: file, line: line)
        XCTAssertEqual(contents.metadata, metadata, file: file, line: line)
        for (name, shape, values) in tensors {
            XCTAssertEqual(contents.shape(name), shape, file: file, line: line)
            XCTAssertEqual(try contents.floats(name).map(\.bitPattern), values.map(\.bitPattern), name, file: file, line: line)
        }
        XCTAssertEqual(try contents.uint64("seed"), UInt64.max, file: file, line: line)
        XCTAssertEqual(try contents.int64("lambda_step"), Int64.min, file: file, line: line)
        XCTAssertEqual(try contents.int64("step"), 1200, file: file, line: line)
        XCTAssertEqual(try contents.double("lr"), 3e-4, file: file, line: line)
    }

    func testRoundTripIsBitExactInBothModes() throws {
        for shuffle in [true, false] {
            let (data, stats) = try withTensors { try TensorArchive.encode(tensors: $0, metadata: metadata, shuffle: shuffle, level: 3) }
            XCTAssertEqual(stats.compressedBytes, data.count)
            let contents = try TensorArchive.decode(data)
            XCTAssertEqual(contents.isShuffled, shuffle)
            XCTAssertEqual(contents.stats.rawBytes, stats.rawBytes)
            try assertContentsMatch(contents)
        }
    }

    func testWriteAndReadFilesInBothModes() throws {
        let dir = try makeScratchDirectory(self)
        for (shuffle, level) in [(true, 1), (false, 3), (true, 3)] {
            let url = dir.appendingPathComponent("model-\(shuffle)-\(level).safetensors.zst")
            let stats = try withTensors { try TensorArchive.write(tensors: $0, metadata: metadata, to: url, shuffle: shuffle, level: level) }
            XCTAssertEqual(stats.compressedBytes, try Data(contentsOf: url).count)
            XCTAssertGreaterThan(stats.ratio, 0)
            try assertContentsMatch(try TensorArchive.read(url))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") }
            XCTAssertEqual(leftovers, [])
        }
    }

    func testCopyIntoCallerMemory() throws {
        let contents = try withTensors { try TensorArchive.decode(try TensorArchive.encode(tensors: $0, metadata: metadata).data) }
        var buffer = [Float](repeating: 0, count: 165)
        try buffer.withUnsafeMutableBufferPointer { try contents.copyFloats("optimizer.v.layers.0", into: $0) }
        XCTAssertEqual(buffer, tensors[2].2)
        var wrong = [Float](repeating: 0, count: 164)
        XCTAssertThrowsError(try wrong.withUnsafeMutableBufferPointer { try contents.copyFloats("optimizer.v.layers.0", into: $0) }) {
            XCTAssertTrue("\($0)".contains("165 elements"), "\($0)")
        }
        XCTAssertThrowsError(try contents.floats("nope")) { XCTAssertTrue("\($0)".contains("no tensor named nope"), "\($0)") }
        XCTAssertThrowsError(try contents.int64("missing")) { XCTAssertTrue("\($0)".contains("missing"), "\($0)") }
        XCTAssertThrowsError(try contents.int64("config_hash")) { XCTAssertTrue("\($0)".contains("not a signed"), "\($0)") }
    }

    // MARK: - What `zstd -d` yields

    /// Decompresses with the plain C API (what `zstd -d` does) and parses the result as safetensors by hand.
    private func plainSafetensors(_ frame: Data) throws -> (header: [String: Any], data: Data, headerLength: Int) {
        let size = frame.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        XCTAssertLessThan(size, UInt64.max - 1)
        var payload = Data(count: Int(size))
        let n = payload.withUnsafeMutableBytes { p in frame.withUnsafeBytes { ZSTD_decompress(p.baseAddress, p.count, $0.baseAddress, $0.count) } }
        XCTAssertEqual(ZSTD_isError(n), 0)
        XCTAssertEqual(n, Int(size))
        let headerLength = Int(payload.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        XCTAssertEqual((8 + headerLength) % 8, 0, "data section is 8-byte aligned")
        let json = try JSONSerialization.jsonObject(with: payload.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
        return (json, payload.subdata(in: (8 + headerLength)..<payload.count), headerLength)
    }

    /// Checks dtype, shape and contiguous offsets of every entry; returns each tensor's raw bytes.
    private func checkEntries(_ header: [String: Any], _ data: Data) -> [String: Data] {
        var out: [String: Data] = [:]
        var ranges: [(Int, Int)] = []
        for (name, shape, values) in tensors {
            guard let entry = header[name] as? [String: Any] else { XCTFail("no entry \(name)"); continue }
            XCTAssertEqual(entry["dtype"] as? String, "F32")
            XCTAssertEqual(entry["shape"] as? [Int], shape)
            let offsets = entry["data_offsets"] as! [Int]
            XCTAssertEqual(offsets[1] - offsets[0], values.count * 4)
            ranges.append((offsets[0], offsets[1]))
            out[name] = data.subdata(in: offsets[0]..<offsets[1])
        }
        ranges.sort { $0.0 < $1.0 }
        XCTAssertEqual(ranges.first?.0, 0)
        for (a, b) in zip(ranges, ranges.dropFirst()) { XCTAssertEqual(a.1, b.0, "tensors tile the data section") }
        XCTAssertEqual(ranges.last?.1, data.count, "the data section ends with the last tensor")
        XCTAssertEqual(header.count, tensors.count + 1, "tensors plus __metadata__")
        return out
    }

    func testPlainArchiveDecompressesToStandardSafetensors() throws {
        let frame = try withTensors { try TensorArchive.encode(tensors: $0, metadata: metadata, shuffle: false).data }
        let (header, data, _) = try plainSafetensors(frame)
        XCTAssertEqual(header["__metadata__"] as? [String: String], metadata)
        let raw = checkEntries(header, data)
        for (name, _, values) in tensors {
            XCTAssertEqual(raw[name], values.withUnsafeBytes { Data($0) }, name)
        }
    }

    func testShuffledArchiveIsWellFormedSafetensorsOfBytePlanes() throws {
        let frame = try withTensors { try TensorArchive.encode(tensors: $0, metadata: metadata, shuffle: true).data }
        let (header, data, _) = try plainSafetensors(frame)
        var expectedMetadata = metadata
        expectedMetadata[TensorArchive.shuffleMetadataKey] = "4"
        XCTAssertEqual(header["__metadata__"] as? [String: String], expectedMetadata)
        let raw = checkEntries(header, data)
        for (name, _, values) in tensors {
            let planes = ByteShuffle.shuffled(values.withUnsafeBytes { Array($0) }, elementSize: 4)
            XCTAssertEqual(raw[name], Data(planes), name)
        }
    }

    func testShufflingImprovesTheRatioOnWeights() throws {
        let weights = TestData.gaussians(1 << 18, std: 0.02, seed: 24)
        func ratio(_ shuffle: Bool) throws -> Double {
            try weights.withUnsafeBufferPointer {
                try TensorArchive.encode(tensors: [("w", [weights.count], $0)], shuffle: shuffle, level: 3).stats.ratio
            }
        }
        let plain = try ratio(false), shuffled = try ratio(true)
        XCTAssertGreaterThan(shuffled, plain * 1.05, "shuffled \(shuffled) vs plain \(plain)")
    }

    // MARK: - Bad input and bad files

    func testInvalidTensorsAreRejected() throws {
        let values: [Float] = [1, 2, 3]
        try values.withUnsafeBufferPointer { p in
            let cases: [([TensorArchive.Tensor], [String: String], String)] = [
                ([("a", [2, 2], p)], [:], "holds 4 elements but 3"),
                ([("a", [3], p), ("a", [3], p)], [:], "listed twice"),
                ([("__metadata__", [3], p)], [:], "not allowed"),
                ([("", [3], p)], [:], "not allowed"),
                ([("a", [-3], p)], [:], "negative"),
                ([("a", [Int.max, 4], p)], [:], "overflowing"),
                ([("a", [3], p)], [TensorArchive.shuffleMetadataKey: "4"], "reserved"),
            ]
            for (tensors, metadata, expected) in cases {
                XCTAssertThrowsError(try TensorArchive.encode(tensors: tensors, metadata: metadata)) { error in
                    XCTAssertTrue(error is TensorArchiveError && "\(error)".contains(expected), "\(error)")
                }
            }
        }
    }

    func testCorruptAndTruncatedFilesNameTheFile() throws {
        let dir = try makeScratchDirectory(self)
        let url = dir.appendingPathComponent("model.safetensors.zst")
        try withTensors { _ = try TensorArchive.write(tensors: $0, metadata: metadata, to: url) }
        let good = try Data(contentsOf: url)

        try good.prefix(good.count / 2).write(to: url)
        XCTAssertThrowsError(try TensorArchive.read(url)) { error in
            let e = error as? TensorArchiveError
            XCTAssertEqual(e?.file, url.path)
            XCTAssertEqual(e?.zstd?.kind, .truncated)
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
        var flipped = good; flipped[flipped.count / 2] ^= 0x40
        try flipped.write(to: url)
        XCTAssertThrowsError(try TensorArchive.read(url)) { error in
            XCTAssertEqual((error as? TensorArchiveError)?.file, url.path)
            XCTAssertNotNil((error as? TensorArchiveError)?.zstd, "\(error)")
        }
        XCTAssertThrowsError(try TensorArchive.read(dir.appendingPathComponent("absent.safetensors.zst"))) {
            XCTAssertTrue("\($0)".contains("cannot read"), "\($0)")
        }
    }

    /// Payloads that are valid zstd frames but not valid safetensors must be errors, never traps.
    func testMalformedSafetensorsInsideAValidFrameAreErrors() throws {
        func payload(_ header: String, dataBytes: Int = 0, declaredLength: UInt64? = nil) -> Data {
            let h = Array(header.utf8)
            let n = declaredLength ?? UInt64(h.count)
            return Data((0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) } + h + [UInt8](repeating: 0, count: dataBytes))
        }
        let cases: [(Data, String)] = [
            (Data([1, 2, 3]), "8-byte header length"),
            (payload("{}", declaredLength: 1 << 40), "does not fit"),
            (payload("[1,2]"), "not a JSON object"),
            (payload("{\"a\":"), "not a JSON object"),
            (payload("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", dataBytes: 4), "outside"),
            (payload("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", dataBytes: 8), "needs 12"),
            (payload("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", dataBytes: 8), "unknown dtype"),
            (payload("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", dataBytes: 8), "negative"),
            (payload("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", dataBytes: 8), "overflows"),
            (payload("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", dataBytes: 8), "outside"),
            (payload("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", dataBytes: 8), "needs dtype, shape and data_offsets"),
            (payload("{\"__metadata__\":{\"k\":1}}"), "strings to strings"),
            (payload("{\"__metadata__\":{\"dualign.byte_shuffle\":\"8\"}}"), "unshuffles only"),
            (payload("{\"__metadata__\":{\"dualign.byte_shuffle\":\"4\"},\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", dataBytes: 8), "dtype I64"),
        ]
        for (content, expected) in cases {
            let frame = try ZstdFrame.compress(content)
            XCTAssertThrowsError(try TensorArchive.decode(frame, file: "bad.safetensors.zst")) { error in
                XCTAssertTrue(error is TensorArchiveError, "\(error)")
                XCTAssertTrue("\(error)".hasPrefix("bad.safetensors.zst: "), "\(error)")
                XCTAssertTrue("\(error)".contains(expected), "expected “\(expected)” in: \(error)")
            }
        }
        // Foreign dtypes are listed but only F32 can be read as floats.
        let i64 = try ZstdFrame.compress(payload("{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", dataBytes: 8))
        let contents = try TensorArchive.decode(i64)
        XCTAssertEqual(contents.names, ["a"])
        XCTAssertThrowsError(try contents.floats("a")) { XCTAssertTrue("\($0)".contains("F32 only"), "\($0)") }
    }

    /// Random damage to the frame, and to the safetensors bytes inside an intact frame: always a
    /// `TensorArchiveError` or, when the damage happens to leave a valid archive, contents that decode; never a trap.
    func testRandomDamageNeverCrashes() throws {
        let (frame, _) = try withTensors { try TensorArchive.encode(tensors: $0, metadata: metadata, shuffle: true) }
        let payload = try ZstdFrame.decompress(frame)
        var rng = SplitMix64(seed: 99)
        func damaged(_ d: Data) -> Data {
            var d = d
            switch rng.next() % 4 {
            case 0: d[Int(rng.next() % UInt64(d.count))] ^= UInt8(1 << (rng.next() % 8))
            case 1: d = d.prefix(Int(rng.next() % UInt64(d.count)))
            case 2: d.insert(UInt8(truncatingIfNeeded: rng.next()), at: Int(rng.next() % UInt64(d.count)))
            default: d[Int(rng.next() % UInt64(min(d.count, 400)))] = UInt8(truncatingIfNeeded: rng.next())  // header area
            }
            return d
        }
        var frameErrors = 0, payloadErrors = 0
        for _ in 0..<300 {
            do { _ = try TensorArchive.decode(damaged(frame)) } catch is TensorArchiveError { frameErrors += 1 }
            do {
                let contents = try TensorArchive.decode(try ZstdFrame.compress(damaged(payload)))
                for name in contents.names { _ = try? contents.floats(name) }
            } catch is TensorArchiveError { payloadErrors += 1 }
        }
        XCTAssertEqual(frameErrors, 300, "every damaged frame is detected (content checksum)")
        XCTAssertGreaterThan(payloadErrors, 100)
    }
}
