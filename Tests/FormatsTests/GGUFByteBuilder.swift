// Test support: writes GGUF bytes field by field, independently of GGUFWriter.

import Foundation
import Formats

/// Little-endian byte builder for hand-made GGUF files.
struct GGUFByteBuilder {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func i8(_ v: Int8) { bytes.append(UInt8(bitPattern: v)) }
    mutating func u16(_ v: UInt16) { bytes += [UInt8(v & 0xFF), UInt8(v >> 8)] }
    mutating func i16(_ v: Int16) { u16(UInt16(bitPattern: v)) }
    mutating func u32(_ v: UInt32) { for k in 0..<4 { bytes.append(UInt8((v >> (8 * UInt32(k))) & 0xFF)) } }
    mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    mutating func u64(_ v: UInt64) { for k in 0..<8 { bytes.append(UInt8((v >> (8 * UInt64(k))) & 0xFF)) } }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }
    mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        bytes += Array(s.utf8)
    }
    mutating func magic() { bytes += Array("GGUF".utf8) }
    /// A key, its type tag, then the caller writes the value.
    mutating func key(_ k: String, _ type: GGUFValueType) {
        string(k)
        u32(type.rawValue)
    }
    /// Zero bytes up to the next multiple of `alignment`.
    mutating func pad(to alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }
}

/// A small valid GGUF (v3, 2 metadata entries, one F32 tensor [4] and one Q8_0 tensor [32, 2]),
/// built by hand; used by the truncation and corruption tests.
func smallGGUFBytes(version: UInt32 = 3) -> [UInt8] {
    var b = GGUFByteBuilder()
    b.magic()
    b.u32(version)
    b.u64(2) // tensors
    b.u64(2) // kv
    b.key("general.architecture", .string); b.string("llama")
    b.key("tokenizer.ggml.tokens", .array); b.u32(GGUFValueType.string.rawValue); b.u64(3)
    b.string("a"); b.string("b"); b.string("ab")
    b.string("norm.weight"); b.u32(1); b.u64(4); b.u32(GGMLType.f32.rawValue); b.u64(0)
    b.string("embd.weight"); b.u32(2); b.u64(32); b.u64(2); b.u32(GGMLType.q8_0.rawValue); b.u64(32)
    b.pad(to: 32)
    for v: Float in [1, -2, 0.5, 3] { b.f32(v) }
    b.pad(to: 32)
    for block in 0..<2 {
        b.u16(GGUFQuantization.floatToHalf(0.25 * Float(block + 1)))
        for j in 0..<32 { b.i8(Int8(j - 16)) }
    }
    return b.bytes
}
