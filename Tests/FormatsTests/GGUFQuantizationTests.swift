// Dequantization of every supported type against naive references, and half-float conversion.

import Foundation
import XCTest
import Formats

final class GGUFQuantizationTests: XCTestCase {
    // MARK: Naive references, written from the block layouts

    private func half(_ bytes: [UInt8], _ at: Int) -> Float {
        GGUFQuantization.halfToFloat(UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8)
    }

    private func referenceQ8_0(_ bytes: [UInt8]) -> [Float] {
        var out: [Float] = []
        for block in stride(from: 0, to: bytes.count, by: 34) {
            let d = half(bytes, block)
            for j in 0..<32 { out.append(d * Float(Int8(bitPattern: bytes[block + 2 + j]))) }
        }
        return out
    }

    private func referenceQ4_0(_ bytes: [UInt8]) -> [Float] {
        var out: [Float] = []
        for block in stride(from: 0, to: bytes.count, by: 18) {
            let d = half(bytes, block)
            var y = [Float](repeating: 0, count: 32)
            for j in 0..<16 {
                let q = bytes[block + 2 + j]
                y[j] = Float(Int(q & 0x0F) - 8) * d
                y[j + 16] = Float(Int(q >> 4) - 8) * d
            }
            out += y
        }
        return out
    }

    private func referenceQ4_1(_ bytes: [UInt8]) -> [Float] {
        var out: [Float] = []
        for block in stride(from: 0, to: bytes.count, by: 20) {
            let d = half(bytes, block), m = half(bytes, block + 2)
            var y = [Float](repeating: 0, count: 32)
            for j in 0..<16 {
                let q = bytes[block + 4 + j]
                y[j] = Float(q & 0x0F) * d + m
                y[j + 16] = Float(q >> 4) * d + m
            }
            out += y
        }
        return out
    }

    /// A one-tensor GGUF holding `data` as `type` with `dims`.
    private func file(type: GGMLType, dims: [Int], data: [UInt8]) throws -> GGUFFile {
        var b = GGUFByteBuilder()
        b.magic(); b.u32(3); b.u64(1); b.u64(0)
        b.string("t"); b.u32(UInt32(dims.count)); for d in dims { b.u64(UInt64(d)) }
        b.u32(type.rawValue); b.u64(0)
        b.pad(to: 32)
        b.bytes += data
        return try GGUFFile(bytes: b.bytes)
    }

    private func randomBlocks(_ count: Int, blockBytes: Int, halves: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for _ in 0..<count {
            for _ in 0..<halves { // finite scales in [-2, 2]
                let h = GGUFQuantization.floatToHalf(Float.random(in: -2...2))
                bytes += [UInt8(h & 0xFF), UInt8(h >> 8)]
            }
            for _ in 0..<(blockBytes - 2 * halves) { bytes.append(UInt8.random(in: 0...255)) }
        }
        return bytes
    }

    // MARK: Known blocks

    func testQ4_0KnownBlock() throws {
        // d = 0.5; qs[j] = j | (15 - j) << 4  →  y[j] = (j - 8) * 0.5, y[j+16] = (7 - j) * 0.5
        var data: [UInt8] = [0x00, 0x38] // 0x3800 = 0.5
        for j in 0..<16 { data.append(UInt8(j) | UInt8(15 - j) << 4) }
        let got = try file(type: .q4_0, dims: [32], data: data).floats("t")
        let low: [Float] = (0..<16).map { (j: Int) -> Float in Float(j - 8) * 0.5 }
        let high: [Float] = (0..<16).map { (j: Int) -> Float in Float(7 - j) * 0.5 }
        let expected = low + high
        XCTAssertEqual(got, expected)
    }

    func testQ4_1KnownBlock() throws {
        // d = 0.25, m = -1; y[j] = (j) * 0.25 - 1, y[j+16] = (15 - j) * 0.25 - 1
        var data: [UInt8] = [0x00, 0x34, 0x00, 0xBC] // 0x3400 = 0.25, 0xBC00 = -1
        for j in 0..<16 { data.append(UInt8(j) | UInt8(15 - j) << 4) }
        let got = try file(type: .q4_1, dims: [32], data: data).floats("t")
        let low: [Float] = (0..<16).map { (j: Int) -> Float in Float(j) * 0.25 - 1 }
        let high: [Float] = (0..<16).map { (j: Int) -> Float in Float(15 - j) * 0.25 - 1 }
        let expected = low + high
        XCTAssertEqual(got, expected)
    }

    func testQ8_0KnownBlock() throws {
        var data: [UInt8] = [0x00, 0x40] // 2.0
        for j in 0..<32 { data.append(UInt8(bitPattern: Int8(j * 8 - 128))) }
        let got = try file(type: .q8_0, dims: [32], data: data).floats("t")
        let expected: [Float] = (0..<32).map { (j: Int) -> Float in Float(j * 8 - 128) * 2 }
        XCTAssertEqual(got, expected)
    }

    func testPlainFloatTypes() throws {
        let values: [Float] = [0, -0, 1, -1.5, 3.140625, 65504, -2e-5, .infinity]
        var f32: [UInt8] = [], f16: [UInt8] = [], bf16: [UInt8] = []
        for v in values {
            withUnsafeBytes(of: v.bitPattern.littleEndian) { f32 += $0 }
            let h = GGUFQuantization.floatToHalf(v)
            f16 += [UInt8(h & 0xFF), UInt8(h >> 8)]
            let b = UInt16(v.bitPattern >> 16)
            bf16 += [UInt8(b & 0xFF), UInt8(b >> 8)]
        }
        XCTAssertEqual(try file(type: .f32, dims: [8], data: f32).floats("t"), values)
        let h = try file(type: .f16, dims: [8], data: f16).floats("t")
        XCTAssertEqual(h[0...4], values[0...4])
        XCTAssertEqual(h[5], 65504)
        XCTAssertEqual(h[6], -2e-5, accuracy: 6e-8) // half subnormal spacing
        XCTAssertEqual(h[7], .infinity)
        let b = try file(type: .bf16, dims: [8], data: bf16).floats("t")
        XCTAssertEqual(b, values.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) })
    }

    // MARK: Random tensors, small (serial path) and large (parallel path)

    func testRandomBlocksMatchReference() throws {
        for blocks in [1, 7, 5000] { // 5000 blocks = 160k elements: parallel path
            let q80 = randomBlocks(blocks, blockBytes: 34, halves: 1)
            XCTAssertEqual(try file(type: .q8_0, dims: [32, blocks], data: q80).floats("t"), referenceQ8_0(q80), "Q8_0 \(blocks) blocks")
            let q40 = randomBlocks(blocks, blockBytes: 18, halves: 1)
            XCTAssertEqual(try file(type: .q4_0, dims: [32 * blocks], data: q40).floats("t"), referenceQ4_0(q40), "Q4_0 \(blocks) blocks")
            let q41 = randomBlocks(blocks, blockBytes: 20, halves: 2)
            XCTAssertEqual(try file(type: .q4_1, dims: [32, blocks], data: q41).floats("t"),
                           referenceQ4_1(q41), "Q4_1 \(blocks) blocks")
            let n = 32 * blocks
            let f16 = (0..<n).flatMap { _ -> [UInt8] in [UInt8.random(in: 0...255), UInt8.random(in: 0...0x7B)] }
            let got = try file(type: .f16, dims: [n], data: f16).floats("t")
            for i in 0..<n where got[i] != half(f16, 2 * i) {
                XCTFail("F16 element \(i): \(got[i]) vs \(half(f16, 2 * i))")
                break
            }
        }
    }

    // MARK: Half-float conversion

    func testHalfToFloatMatchesFloat16() {
        #if !(os(macOS) && arch(x86_64))
        for bits in 0...UInt16.max {
            let ours = GGUFQuantization.halfToFloat(bits)
            let swift = Float(Float16(bitPattern: bits))
            if ours.isNaN {
                XCTAssertTrue(swift.isNaN, "half \(bits)")
            } else if ours.bitPattern != swift.bitPattern {
                XCTFail("half 0x\(String(bits, radix: 16)): \(ours) vs Float16 \(swift)")
                return
            }
        }
        #endif
    }

    func testFloatToHalfRoundsToNearestEven() {
        // Every half round-trips exactly.
        for bits in 0...UInt16.max {
            let f = GGUFQuantization.halfToFloat(bits)
            if f.isNaN { continue }
            XCTAssertEqual(GGUFQuantization.floatToHalf(f), bits, "half 0x\(String(bits, radix: 16))")
        }
        #if !(os(macOS) && arch(x86_64))
        var failures = 0
        for _ in 0..<200_000 {
            let f = Float(bitPattern: UInt32.random(in: 0...UInt32.max))
            if f.isNaN { continue }
            let expected = Float16(f).bitPattern
            if GGUFQuantization.floatToHalf(f) != expected, failures < 5 {
                failures += 1
                XCTFail("float \(f) (0x\(String(f.bitPattern, radix: 16))): ours 0x\(String(GGUFQuantization.floatToHalf(f), radix: 16)), Float16 0x\(String(expected, radix: 16))")
            }
        }
        #endif
        XCTAssertEqual(GGUFQuantization.floatToHalf(1e9), 0x7C00, "overflow becomes +inf")
        XCTAssertTrue(GGUFQuantization.halfToFloat(GGUFQuantization.floatToHalf(.nan)).isNaN)
    }
}
