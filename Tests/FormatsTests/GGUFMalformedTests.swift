// GGUF reader on malformed input: every failure is a typed GGUFError with a useful message, never a crash.

import Foundation
import XCTest
import Formats

final class GGUFMalformedTests: XCTestCase {
    /// Asserts that parsing `bytes` throws a GGUFError of `kind` whose message contains `fragments`.
    private func assertFails(_ bytes: [UInt8], _ kind: GGUFError.Kind, _ fragments: [String] = [],
                             file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try GGUFFile(bytes: bytes, name: "bad.gguf")
            XCTFail("expected a \(kind) error, but the file parsed", file: file, line: line)
        } catch let e as GGUFError {
            XCTAssertEqual(e.kind, kind, "wrong kind; message: \(e)", file: file, line: line)
            XCTAssertTrue("\(e)".contains("bad.gguf"), "message must name the file: \(e)", file: file, line: line)
            for f in fragments {
                XCTAssertTrue("\(e)".contains(f), "message lacks '\(f)': \(e)", file: file, line: line)
            }
        } catch {
            XCTFail("expected GGUFError, got \(error)", file: file, line: line)
        }
    }

    /// A header with the given counts followed by `body`.
    private func header(tensors: UInt64 = 0, kv: UInt64 = 1, version: UInt32 = 3) -> GGUFByteBuilder {
        var b = GGUFByteBuilder()
        b.magic()
        b.u32(version)
        b.u64(tensors)
        b.u64(kv)
        return b
    }

    func testTruncatedAtEveryCutPoint() {
        let full = smallGGUFBytes()
        XCTAssertNoThrow(try GGUFFile(bytes: full))
        for cut in 0..<full.count {
            do {
                _ = try GGUFFile(bytes: Array(full[..<cut]), name: "cut.gguf")
                XCTFail("a file cut at \(cut) of \(full.count) bytes parsed without error")
            } catch let e as GGUFError {
                XCTAssertTrue([.truncated, .tensorOutOfBounds, .tooLarge].contains(e.kind), "cut \(cut): unexpected \(e)")
                XCTAssertTrue(e.description.contains("cut.gguf"), "cut \(cut): message must name the file: \(e)")
                if e.kind == .truncated { XCTAssertNotNil(e.offset, "cut \(cut): truncation must report an offset") }
            } catch {
                XCTFail("cut \(cut): expected GGUFError, got \(error)")
            }
        }
    }

    func testRandomCorruptionNeverCrashes() {
        let full = smallGGUFBytes()
        var rng = SystemRandomNumberGenerator()
        var parsed = 0, failed = 0
        for _ in 0..<3000 {
            var bytes = full
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            do {
                let f = try GGUFFile(bytes: bytes)
                for t in f.tensors where t.type.canDequantize { _ = try f.floats(t.name) }
                parsed += 1
            } catch is GGUFError {
                failed += 1
            } catch {
                XCTFail("unexpected error type \(error)")
            }
        }
        XCTAssertEqual(parsed + failed, 3000)
    }

    func testBadMagicAndVersion() {
        var b = header()
        b.bytes[0] = UInt8(ascii: "X")
        assertFails(b.bytes, .badMagic, ["GGUF", "not a GGUF file"])
        assertFails(Array("PK\u{3}\u{4}".utf8) + [UInt8](repeating: 0, count: 40), .badMagic)
        assertFails([], .truncated, ["magic"])
        assertFails(header(version: 1).bytes, .unsupportedVersion, ["version 1"])
        assertFails(header(version: 4).bytes, .unsupportedVersion, ["expected 2 or 3"])
        assertFails(header(version: UInt32(3).byteSwapped).bytes, .unsupportedVersion, ["big-endian"])
    }

    func testAbsurdCountsAndLengths() {
        assertFails(header(tensors: 1 << 62).bytes, .tooLarge, ["tensor count"])
        assertFails(header(kv: 1 << 62).bytes, .tooLarge, ["key/value count"])
        assertFails(header(kv: UInt64.max).bytes, .tooLarge)

        var b = header()
        b.u64(1 << 62) // key length
        b.bytes += [UInt8](repeating: 0, count: 16)
        assertFails(b.bytes, .tooLarge, ["byte length", "metadata entry 0"])

        b = header()
        b.key("s", .string); b.u64(1 << 62)
        assertFails(b.bytes, .tooLarge, ["'s'"])

        b = header()
        b.key("arr", .array); b.u32(GGUFValueType.uint64.rawValue); b.u64(1 << 61)
        assertFails(b.bytes, .tooLarge, ["element count", "'arr'"])

        b = header()
        b.key("arr", .array); b.u32(GGUFValueType.string.rawValue); b.u64(3); b.string("ok"); b.u64(UInt64.max)
        assertFails(b.bytes, .tooLarge, ["arr"])

        b = header(tensors: 1, kv: 0)
        b.string("t"); b.u32(2); b.u64(1 << 40); b.u64(1 << 40); b.u32(0); b.u64(0)
        assertFails(b.bytes, .tooLarge, ["'t'"])
    }

    func testInvalidValues() {
        var b = header()
        b.key("x", .bool); b.u8(2)
        assertFails(b.bytes, .invalidValue, ["bool", "'x'"])

        b = header()
        b.string("x"); b.u32(13); b.u32(0)
        assertFails(b.bytes, .invalidValue, ["value type", "13"])

        b = header(kv: 2)
        b.key("x", .uint8); b.u8(1)
        b.key("x", .uint8); b.u8(2)
        assertFails(b.bytes, .invalidValue, ["'x' appears twice"])

        b = header()
        b.key("general.alignment", .uint32); b.u32(48)
        assertFails(b.bytes, .invalidValue, ["general.alignment"])

        b = header()
        b.key("general.alignment", .uint32); b.u32(0)
        assertFails(b.bytes, .invalidValue, ["general.alignment"])

        // Arrays nested deeper than 8 levels.
        b = header()
        b.key("deep", .array)
        for _ in 0..<12 { b.u32(GGUFValueType.array.rawValue); b.u64(1) }
        b.u32(GGUFValueType.uint8.rawValue); b.u64(1); b.u8(0)
        assertFails(b.bytes, .invalidValue, ["nests arrays"])

        b = header(tensors: 1, kv: 0)
        b.string("t"); b.u32(5); for _ in 0..<5 { b.u64(1) }; b.u32(0); b.u64(0)
        assertFails(b.bytes, .invalidValue, ["'t'", "5 dimensions"])

        b = header(tensors: 1, kv: 0)
        b.string("t"); b.u32(0); b.u32(0); b.u64(0)
        assertFails(b.bytes, .invalidValue, ["'t'", "0 dimensions"])

        b = header(tensors: 1, kv: 0)
        b.string("q"); b.u32(1); b.u64(31); b.u32(GGMLType.q8_0.rawValue); b.u64(0)
        b.pad(to: 32); b.bytes += [UInt8](repeating: 0, count: 64)
        assertFails(b.bytes, .invalidValue, ["'q'", "block size 32"])

        b = header(tensors: 1, kv: 0)
        b.string("m"); b.u32(1); b.u64(1); b.u32(0); b.u64(4)
        b.pad(to: 32); b.bytes += [UInt8](repeating: 0, count: 64)
        assertFails(b.bytes, .invalidValue, ["'m'", "alignment"])

        b = header(tensors: 2, kv: 0)
        for _ in 0..<2 { b.string("dup"); b.u32(1); b.u64(1); b.u32(0); b.u64(0) }
        b.pad(to: 32); b.bytes += [UInt8](repeating: 0, count: 32)
        assertFails(b.bytes, .invalidValue, ["'dup' appears twice"])
    }

    func testTensorDataBeyondEnd() {
        var b = header(tensors: 1, kv: 0)
        b.string("big.weight"); b.u32(2); b.u64(8); b.u64(8); b.u32(GGMLType.f32.rawValue); b.u64(0)
        b.pad(to: 32)
        b.bytes += [UInt8](repeating: 0, count: 255) // one byte short of 8*8*4
        assertFails(b.bytes, .tensorOutOfBounds, ["'big.weight'", "beyond the end"])

        b = header(tensors: 1, kv: 0)
        b.string("far"); b.u32(1); b.u64(1); b.u32(0); b.u64(1 << 40)
        b.pad(to: 32); b.bytes += [UInt8](repeating: 0, count: 32)
        assertFails(b.bytes, .tensorOutOfBounds, ["'far'"])

        b = header(tensors: 1, kv: 0)
        b.string("huge"); b.u32(1); b.u64(1); b.u32(0); b.u64(UInt64.max - 31)
        b.pad(to: 32); b.bytes += [UInt8](repeating: 0, count: 32)
        assertFails(b.bytes, .tensorOutOfBounds, ["'huge'"])
    }

    func testUnknownAndUnsupportedTensorTypes() throws {
        var b = header(tensors: 1, kv: 0)
        b.string("odd"); b.u32(1); b.u64(32); b.u32(4); b.u64(0) // id 4 (Q4_2) was removed from ggml
        b.pad(to: 32); b.bytes += [UInt8](repeating: 0, count: 64)
        assertFails(b.bytes, .unsupportedTensorType, ["'odd'", "4"])

        b = header(tensors: 1, kv: 0)
        b.string("blk.0.ffn_down.weight"); b.u32(2); b.u64(256); b.u64(2); b.u32(GGMLType.q4_K.rawValue); b.u64(0)
        b.pad(to: 32); b.bytes += [UInt8](repeating: 0, count: 2 * 144)
        let file = try GGUFFile(bytes: b.bytes, name: "k.gguf")
        let t = try file.requireTensor("blk.0.ffn_down.weight")
        XCTAssertEqual(t.byteCount, 288)
        XCTAssertFalse(t.type.canDequantize)
        XCTAssertThrowsError(try file.floats(t.name)) { error in
            let e = error as? GGUFError
            XCTAssertEqual(e?.kind, .unsupportedTensorType)
            let message = "\(error)"
            for f in ["k.gguf", "blk.0.ffn_down.weight", "Q4_K"] {
                XCTAssertTrue(message.contains(f), "message lacks '\(f)': \(message)")
            }
        }
        var out = [Float](repeating: 0, count: 512)
        XCTAssertThrowsError(try out.withUnsafeMutableBufferPointer { try file.dequantize(t, into: $0.baseAddress!) })
    }

    func testForeignTensorInfoIsRejected() throws {
        let small = try GGUFFile(bytes: smallGGUFBytes())
        var writer = try GGUFWriter()
        try writer.addTensor(name: "big", dims: [4096], type: .f32, values: Array(repeating: 1, count: 4096))
        let big = try GGUFFile(bytes: try writer.serialized())
        let foreign = try big.requireTensor("big")
        var out = [Float](repeating: 0, count: 4096)
        XCTAssertThrowsError(try out.withUnsafeMutableBufferPointer { try small.dequantize(foreign, into: $0.baseAddress!) }) { e in
            XCTAssertEqual((e as? GGUFError)?.kind, .tensorOutOfBounds)
        }
    }

    func testMissingFile() {
        XCTAssertThrowsError(try GGUFFile(contentsOf: URL(fileURLWithPath: "/nonexistent/model.gguf"))) { e in
            XCTAssertEqual((e as? GGUFError)?.kind, .io)
            XCTAssertTrue("\(e)".contains("/nonexistent/model.gguf"))
        }
        XCTAssertThrowsError(try GGUFFile(contentsOf: URL(fileURLWithPath: "/tmp"))) { e in
            XCTAssertEqual((e as? GGUFError)?.kind, .io)
        }
    }
}
