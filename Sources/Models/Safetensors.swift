// Safetensors files: an 8-byte little-endian header length, a JSON header of tensor entries
// (dtype, shape, data_offsets relative to the data section) and `__metadata__`, then raw data.

import Foundation

/// A safetensors file that cannot be read; names the file and what to do.
public struct SafetensorsError: Error, CustomStringConvertible {
    public let file: String
    public let message: String
    public var description: String { "\(file): \(message)" }
}

/// Element types Dualign reads and writes.
public enum SafetensorsDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", i32 = "I32", i64 = "I64"
    var size: Int { switch self { case .f32, .i32: 4; case .f16, .bf16: 2; case .i64: 8 } }
}

/// One tensor entry of the header.
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
        func fail(_ m: String) -> SafetensorsError { SafetensorsError(file: path, message: m) }
        guard data.count >= 8 else { throw fail("only \(data.count) bytes; a safetensors file starts with an 8-byte header length (truncated file?)") }
        let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian }
        guard n <= UInt64(data.count - 8) else { throw fail("header length \(n) exceeds the file size \(data.count) (truncated or not safetensors)") }
        let headerData = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + 8 + Int(n)))
        guard let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw fail("the header is not a JSON object (not a safetensors file?)")
        }
        let dataStart = 8 + Int(n), dataSize = data.count - dataStart
        var entries: [String: SafetensorsEntry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let e = value as? [String: Any], let dt = e["dtype"] as? String, let shape = e["shape"] as? [Int],
                  let offsets = e["data_offsets"] as? [Int], offsets.count == 2 else {
                throw fail("tensor \(name): header entry needs dtype, shape and data_offsets")
            }
            guard let dtype = SafetensorsDType(rawValue: dt) else {
                throw fail("tensor \(name): dtype \(dt) is not supported (F32, F16, BF16, I32, I64); convert the file")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataSize else {
                throw fail("tensor \(name): data_offsets \(offsets) outside the \(dataSize)-byte data section (truncated file?)")
            }
            let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            guard offsets[1] - offsets[0] == count * dtype.size else {
                throw fail("tensor \(name): \(offsets[1] - offsets[0]) bytes for shape \(shape) of \(dt)")
            }
            entries[name] = SafetensorsEntry(name: name, dtype: dtype, shape: shape, dataRange: offsets[0]..<offsets[1])
        }
        self.path = path; self.entries = entries; self.metadata = metadata; self.data = data; self.dataStart = dataStart
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
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for t in tensors {
            let bytes = t.values.count * dtype.size
            header[t.name] = ["dtype": dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
        while (8 + json.count) % 8 != 0 { json.append(0x20) }   // pad the header with spaces to 8-byte alignment
        var out = Data(count: 8 + json.count + offset)
        out.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!
            base.storeBytes(of: UInt64(json.count).littleEndian, as: UInt64.self)
            json.withUnsafeBytes { (base + 8).copyMemory(from: $0.baseAddress!, byteCount: json.count) }
            var at = 8 + json.count
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
