// Safetensors model files: an 8-byte little-endian header length, a JSON header of tensor entries
// (dtype, shape, data_offsets relative to the data section) and `__metadata__`, then raw data.
// Reading and writing go through `SafetensorsHeader`, the one parser and encoder of the format.

import Foundation

/// Element types Dualign converts to and from Float32.
public enum SafetensorsDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", i32 = "I32", i64 = "I64"
    /// Bytes per element.
    public var size: Int { switch self { case .f32, .i32: 4; case .f16, .bf16: 2; case .i64: 8 } }
}

/// One tensor entry of a file Dualign can convert to Float32.
public struct SafetensorsEntry: Sendable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Byte range inside the data section.
    public let dataRange: Range<Int>
    public var count: Int { shape.reduce(1, *) }
}

/// A parsed safetensors file held in memory.
public struct SafetensorsFile: Sendable {
    public let path: String
    public let entries: [String: SafetensorsEntry]
    public let metadata: [String: String]
    let data: Data
    let dataStart: Int

    /// Reads and validates a whole file; every offset is checked against the file size.
    public init(contentsOf url: URL) throws {
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SafetensorsError(file: path, message: "cannot read the file; check the path and permissions")
        }
        try self.init(data: data, path: path)
    }

    /// Parses an in-memory file (`path` names it in errors).
    public init(data: Data, path: String) throws {
        let (header, dataStart) = try data.withUnsafeBytes { try SafetensorsHeader.parse($0, file: path) }
        var entries: [String: SafetensorsEntry] = [:]
        for e in header.entries {
            guard let dtype = SafetensorsDType(rawValue: e.dtype) else {
                throw SafetensorsError(file: path, message: "tensor \(e.name): dtype \(e.dtype) is not supported (F32, F16, BF16, I32, I64); convert the file")
            }
            entries[e.name] = SafetensorsEntry(name: e.name, dtype: dtype, shape: e.shape, dataRange: e.range)
        }
        self.path = path; self.entries = entries; metadata = header.metadata; self.data = data; self.dataStart = dataStart
    }

    /// The tensor converted to Float32, or an error naming the missing tensor.
    public func floats(_ name: String) throws -> [Float] {
        guard let e = entries[name] else { throw SafetensorsError(file: path, message: "no tensor named \(name)") }
        var out = [Float](repeating: 0, count: e.count)
        out.withUnsafeMutableBufferPointer { o in copy(e, into: o.baseAddress!) }
        return out
    }

    /// Converts a tensor to Float32 into `out` (e.count floats).
    public func copy(_ e: SafetensorsEntry, into out: UnsafeMutablePointer<Float>) {
        data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + dataStart + e.dataRange.lowerBound
            for i in 0..<e.count {
                switch e.dtype {
                case .f32: out[i] = Float(bitPattern: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)
                case .f16: out[i] = Float(Float16(bitPattern: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian))
                case .bf16: out[i] = Float(bitPattern: UInt32(base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) << 16)
                case .i32: out[i] = Float(Int32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                case .i64: out[i] = Float(Int64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                }
            }
        }
    }
}

/// Writes tensors as a safetensors file (F32, F16 or BF16), in the order given.
public enum SafetensorsWriter {
    /// Serialises `tensors` (name, shape, values) with `metadata` into file bytes.
    public static func encode(_ tensors: [(name: String, shape: [Int], values: UnsafeBufferPointer<Float>)],
                              dtype: SafetensorsDType = .f32, metadata: [String: String] = [:]) -> Data {
        precondition([.f32, .f16, .bf16].contains(dtype), "SafetensorsWriter writes F32, F16 or BF16")
        var entries: [SafetensorsHeader.Entry] = []
        var offset = 0
        for t in tensors {
            let bytes = t.values.count * dtype.size
            entries.append(.init(name: t.name, dtype: dtype.rawValue, shape: t.shape, range: offset..<(offset + bytes)))
            offset += bytes
        }
        let header = SafetensorsHeader(entries: entries, metadata: metadata).encoded()
        var out = Data(count: header.count + offset)
        out.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!
            header.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: header.count) }
            var at = header.count
            for t in tensors {
                let n = t.values.count
                switch dtype {
                case .f32:   // little-endian hosts: the bytes as they are
                    if n > 0 { (base + at).copyMemory(from: t.values.baseAddress!, byteCount: 4 * n) }
                case .f16:
                    let dst = (base + at).bindMemory(to: UInt16.self, capacity: n)
                    for i in 0..<n { dst[i] = Float16(t.values[i]).bitPattern.littleEndian }
                default:
                    // Round to nearest even, as torch does.
                    let dst = (base + at).bindMemory(to: UInt16.self, capacity: n)
                    for i in 0..<n {
                        let v = t.values[i], b = v.bitPattern
                        dst[i] = v.isNaN ? 0x7FC0 : UInt16((b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16).littleEndian
                    }
                }
                at += n * dtype.size
            }
        }
        return out
    }
}
