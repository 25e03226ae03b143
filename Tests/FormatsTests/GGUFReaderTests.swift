// GGUF reader and writer: every metadata type by hand-made bytes, tensor infos, writer round trips.

import Foundation
import XCTest
import Formats

final class GGUFReaderTests: XCTestCase {
    /// One key per value type, including nested and empty arrays, written byte by byte.
    private func everyTypeBytes(version: UInt32) -> [UInt8] {
        var b = GGUFByteBuilder()
        b.magic()
        b.u32(version)
        b.u64(1)  // tensors
        b.u64(16) // kv
        b.key("t.u8", .uint8); b.u8(250)
        b.key("t.i8", .int8); b.i8(-7)
        b.key("t.u16", .uint16); b.u16(65_000)
        b.key("t.i16", .int16); b.i16(-32_000)
        b.key("t.u32", .uint32); b.u32(4_000_000_000)
        b.key("t.i32", .int32); b.i32(-2_000_000_000)
        b.key("t.f32", .float32); b.f32(1.5)
        b.key("t.bool", .bool); b.u8(1)
        b.key("t.string", .string); b.string("héllo 🦙")
        b.key("t.u64", .uint64); b.u64(18_000_000_000_000_000_000)
        b.key("t.i64", .int64); b.i64(-9_000_000_000_000_000_000)
        b.key("t.f64", .float64); b.f64(-2.25e-300)
        b.key("t.ints", .array); b.u32(GGUFValueType.int32.rawValue); b.u64(3); b.i32(1); b.i32(-2); b.i32(3)
        b.key("t.nested", .array); b.u32(GGUFValueType.array.rawValue); b.u64(2)
        b.u32(GGUFValueType.string.rawValue); b.u64(2); b.string("x"); b.string("")
        b.u32(GGUFValueType.float64.rawValue); b.u64(1); b.f64(0.125)
        b.key("t.empty", .array); b.u32(GGUFValueType.uint8.rawValue); b.u64(0)
        b.key("general.alignment", .uint32); b.u32(64)
        b.string("w"); b.u32(2); b.u64(3); b.u64(2); b.u32(GGMLType.f32.rawValue); b.u64(0)
        b.pad(to: 64)
        for i in 0..<6 { b.f32(Float(i) - 2.5) }
        return b.bytes
    }

    private let expectedValues: [String: GGUFValue] = [
        "t.u8": .uint8(250), "t.i8": .int8(-7), "t.u16": .uint16(65_000), "t.i16": .int16(-32_000),
        "t.u32": .uint32(4_000_000_000), "t.i32": .int32(-2_000_000_000), "t.f32": .float32(1.5),
        "t.bool": .bool(true), "t.string": .string("héllo 🦙"), "t.u64": .uint64(18_000_000_000_000_000_000),
        "t.i64": .int64(-9_000_000_000_000_000_000), "t.f64": .float64(-2.25e-300),
        "t.ints": .array(.int32, [.int32(1), .int32(-2), .int32(3)]),
        "t.nested": .array(.array, [.array(.string, [.string("x"), .string("")]), .array(.float64, [.float64(0.125)])]),
        "t.empty": .array(.uint8, []), "general.alignment": .uint32(64),
    ]

    func testEveryMetadataTypeByHand() throws {
        for version: UInt32 in [2, 3] {
            let file = try GGUFFile(bytes: everyTypeBytes(version: version))
            XCTAssertEqual(file.version, Int(version))
            XCTAssertEqual(file.metadata.count, expectedValues.count)
            for (key, value) in expectedValues {
                XCTAssertEqual(file.metadata[key], value, "v\(version) metadata \(key)")
            }
            XCTAssertEqual(file.metadataKeys.first, "t.u8")
            XCTAssertEqual(file.metadataKeys.last, "general.alignment")
            XCTAssertEqual(file.alignment, 64)
            XCTAssertEqual(file.dataOffset % 64, 0)
            let w = try file.requireTensor("w")
            XCTAssertEqual(w.dims, [3, 2])
            XCTAssertEqual(w.shape, [2, 3])
            XCTAssertEqual(w.type, .f32)
            XCTAssertEqual(w.elementCount, 6)
            XCTAssertEqual(w.byteCount, 24)
            XCTAssertEqual(try file.floats("w"), [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
        }
    }

    func testAccessors() throws {
        let file = try GGUFFile(bytes: everyTypeBytes(version: 3))
        XCTAssertEqual(file.metadata["t.u8"]?.int, 250)
        XCTAssertEqual(file.metadata["t.i64"]?.int, -9_000_000_000_000_000_000)
        XCTAssertNil(file.metadata["t.u64"]?.int, "a UInt64 above Int.max has no Int value")
        XCTAssertEqual(file.metadata["t.f32"]?.double, 1.5)
        XCTAssertEqual(file.metadata["t.i16"]?.double, -32_000)
        XCTAssertEqual(file.metadata["t.string"]?.string, "héllo 🦙")
        XCTAssertNil(file.metadata["t.string"]?.int)
        XCTAssertEqual(file.metadata["t.bool"]?.bool, true)
        XCTAssertNil(file.metadata["t.bool"]?.int, "bools are not integers")
        XCTAssertEqual(file.metadata["t.ints"]?.ints, [1, -2, 3])
        XCTAssertEqual(file.metadata["t.ints"]?.doubles, [1, -2, 3])
        XCTAssertNil(file.metadata["t.ints"]?.strings)
        XCTAssertEqual(file.metadata["t.nested"]?.array?.first?.strings, ["x", ""])
        XCTAssertEqual(file.metadata["t.empty"]?.array, [])
        XCTAssertEqual(file.metadataInt("t.u32"), 4_000_000_000)
        XCTAssertNil(file.metadataInt("t.bool"), "metadataInt does not convert bools")
        XCTAssertEqual(file.metadataBool("t.bool"), true)
        XCTAssertEqual(file.metadataStrings("t.ints"), nil)
        XCTAssertEqual(file.metadataDouble("t.f64"), -2.25e-300)
    }

    func testWriterRoundTripEveryType() throws {
        var writer = try GGUFWriter()
        let order = ["t.u8", "t.i8", "t.u16", "t.i16", "t.u32", "t.i32", "t.f32", "t.bool", "t.string",
                     "t.u64", "t.i64", "t.f64", "t.ints", "t.nested", "t.empty"]
        for key in order { writer.set(key, try XCTUnwrap(expectedValues[key])) }
        let a: [Float] = (0..<12).map { Float($0) * 0.37 - 2 }
        let h: [Float] = [0, -0, 1, -1, 0.333, 65504, -65504, 6e-8, 1e-4, 3.14159]
        try writer.addTensor(name: "a", dims: [4, 3], type: .f32, values: a)
        try writer.addTensor(name: "h", dims: [10], type: .f16, values: h)
        try writer.addTensor(name: "filled", dims: [5, 1, 1, 2], type: .f32, count: 10) { out in
            for i in 0..<out.count { out[i] = Float(i * i) }
        }
        let bytes = try writer.serialized()
        let file = try GGUFFile(bytes: bytes)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.metadataKeys, order)
        for key in order { XCTAssertEqual(file.metadata[key], expectedValues[key], "round trip of \(key)") }
        XCTAssertEqual(file.tensors.map(\.name), ["a", "h", "filled"])
        XCTAssertEqual(try file.floats("a"), a)
        XCTAssertEqual(try file.requireTensor("h").type, .f16)
        let back = try file.floats("h")
        for (x, y) in zip(h, back) {
            XCTAssertEqual(y, GGUFQuantization.halfToFloat(GGUFQuantization.floatToHalf(x)), "F16 value \(x)")
            XCTAssertEqual(y, x, accuracy: abs(x) * 1e-3 + 6e-8, "F16 value \(x)")
        }
        XCTAssertEqual(try file.floats("filled"), (0..<10).map { Float($0 * $0) })
        XCTAssertEqual(try file.requireTensor("filled").dims, [5, 1, 1, 2])
        for t in file.tensors { XCTAssertEqual(t.offset % 32, 0, "tensor \(t.name) offset alignment") }

        // Writing to disk and mapping gives the same file.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-gguf-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        try writer.write(to: url)
        XCTAssertEqual(try Data(contentsOf: url), Data(bytes))
        try writer.write(to: url) // overwriting an existing file works
        let mapped = try GGUFFile(contentsOf: url)
        XCTAssertEqual(mapped.metadata, file.metadata)
        XCTAssertEqual(mapped.tensors, file.tensors)
        XCTAssertEqual(try mapped.floats("a"), a)
    }

    func testWriterCustomAlignmentAndErrors() throws {
        var writer = try GGUFWriter(alignment: 128)
        try writer.addTensor(name: "x", dims: [3], type: .f32, values: [1, 2, 3])
        try writer.addTensor(name: "y", dims: [1], type: .f16, values: [7])
        let file = try GGUFFile(bytes: try writer.serialized())
        XCTAssertEqual(file.alignment, 128)
        XCTAssertEqual(file.metadata["general.alignment"], .uint32(128))
        XCTAssertEqual(file.dataOffset % 128, 0)
        XCTAssertEqual(try file.requireTensor("y").offset, 128)
        XCTAssertEqual(try file.floats("y"), [7])

        XCTAssertThrowsError(try GGUFWriter(alignment: 48))
        var badWriter = try GGUFWriter()
        badWriter.set("bad", .array(.int32, [.int32(1), .string("x")]))
        XCTAssertThrowsError(try badWriter.serialized()) { e in
            XCTAssertEqual((e as? GGUFError)?.kind, .invalidArgument)
            XCTAssertTrue("\(e)".contains("'bad'"), "\(e)")
        }
        XCTAssertThrowsError(try writer.addTensor(name: "z", dims: [2, 2], type: .f32, values: [1, 2, 3])) { e in
            XCTAssertEqual((e as? GGUFError)?.kind, .invalidArgument)
        }
        XCTAssertThrowsError(try writer.addTensor(name: "q", dims: [32], type: .q8_0, values: Array(repeating: 0, count: 32)))
        XCTAssertThrowsError(try writer.addTensor(name: "x", dims: [1], type: .f32, values: [0]), "duplicate name")
        let missingDir = URL(fileURLWithPath: "/nonexistent-dir-\(UUID().uuidString)/x.gguf")
        XCTAssertThrowsError(try writer.write(to: missingDir)) { e in
            XCTAssertEqual((e as? GGUFError)?.kind, .io)
            XCTAssertTrue("\(e)".contains("x.gguf"), "message names the file: \(e)")
        }
    }

    func testSmallFileTensors() throws {
        let file = try GGUFFile(bytes: smallGGUFBytes(), name: "small.gguf")
        XCTAssertEqual(file.path, "small.gguf")
        XCTAssertEqual(file.metadataStrings("tokenizer.ggml.tokens"), ["a", "b", "ab"])
        XCTAssertEqual(try file.floats("norm.weight"), [1, -2, 0.5, 3])
        let embd = try file.floats("embd.weight")
        XCTAssertEqual(embd.count, 64)
        XCTAssertEqual(embd[0], -16 * 0.25)
        XCTAssertEqual(embd[63], 15 * 0.5)
        let v2 = try GGUFFile(bytes: smallGGUFBytes(version: 2))
        XCTAssertEqual(v2.version, 2)
        XCTAssertEqual(try v2.floats("embd.weight"), embd)
    }

    func testEmptyTensorList() throws {
        var writer = try GGUFWriter()
        writer.set("general.architecture", .string("gpt2"))
        let file = try GGUFFile(bytes: try writer.serialized())
        XCTAssertTrue(file.tensors.isEmpty)
        XCTAssertEqual(file.metadataString("general.architecture"), "gpt2")
    }
}
