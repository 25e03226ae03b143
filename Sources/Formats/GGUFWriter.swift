// GGUF v3 writer: metadata of every value type, F32 and F16 tensors, streamed to disk.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds a GGUF v3 file: metadata in insertion order, then tensors (F32 or F16) in insertion order.
///
/// Tensor data is produced at write time by a fill closure, so exporting a model needs no second
/// copy of its weights. `write(to:)` writes a temporary file and renames it into place.
public struct GGUFWriter {
    /// One tensor to write: name, dims (fastest-varying first), output type and a data source.
    struct PendingTensor {
        let name: String
        let dims: [Int]
        let type: GGMLType
        let count: Int
        let fill: (UnsafeMutableBufferPointer<Float>) -> Void
    }

    /// The data alignment written to `general.alignment` (when not 32) and used for padding.
    public let alignment: Int
    private(set) var keys: [String] = []
    private(set) var values: [String: GGUFValue] = [:]
    private(set) var pending: [PendingTensor] = []

    /// Creates an empty writer; `alignment` must be a power of two (GGUF default 32).
    public init(alignment: Int = 32) throws {
        guard alignment > 0, alignment & (alignment - 1) == 0 else {
            throw GGUFError(.invalidArgument, file: "<writer>", "alignment \(alignment) is not a power of two")
        }
        self.alignment = alignment
        if alignment != 32 { set("general.alignment", .uint32(UInt32(alignment))) }
    }

    /// Sets metadata `key` (a repeated key keeps its first position and takes the new value).
    ///
    /// An array holding elements of another type than it declares makes `write`/`serialized` throw.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if values[key] == nil { keys.append(key) }
        values[key] = value
    }

    /// Adds a tensor whose `count` Float values are written by `fill` at write time, converted to
    /// `type` (`.f32` or `.f16`). `dims` are fastest-varying first, as GGUF stores them.
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, count: Int,
                                   fill: @escaping (UnsafeMutableBufferPointer<Float>) -> Void) throws {
        guard type == .f32 || type == .f16 else {
            throw GGUFError(.invalidArgument, file: "<writer>",
                            "tensor '\(name)': cannot write type \(type); the writer supports F32 and F16")
        }
        guard !dims.isEmpty, dims.count <= 4, dims.allSatisfy({ $0 >= 0 }),
              dims.reduce(1, { $0 &* $1 }) == count else {
            throw GGUFError(.invalidArgument, file: "<writer>",
                            "tensor '\(name)': dims \(dims) do not describe \(count) elements (1...4 non-negative dims)")
        }
        guard !pending.contains(where: { $0.name == name }) else {
            throw GGUFError(.invalidArgument, file: "<writer>", "tensor '\(name)' was added twice")
        }
        pending.append(PendingTensor(name: name, dims: dims, type: type, count: count, fill: fill))
    }

    /// Adds a tensor from an array of values (see `addTensor(name:dims:type:count:fill:)`).
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, values: [Float]) throws {
        try addTensor(name: name, dims: dims, type: type, count: values.count) { out in
            _ = out.initialize(from: values)
        }
    }

    private func stride(_ t: PendingTensor) -> Int { t.count * (t.type == .f16 ? 2 : 4) }

    private func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// The header: magic, version, counts, metadata, tensor infos, padded to the alignment.
    func headerBytes() throws -> [UInt8] {
        for key in keys {
            guard let value = values[key], value.isWellFormed else {
                throw GGUFError(.invalidArgument, file: "<writer>",
                                "metadata '\(key)': an array holds elements of another type than it declares; fix the value passed to set")
            }
        }
        var out: [UInt8] = []
        out.append(contentsOf: Array("GGUF".utf8))
        Self.append(UInt32(3), to: &out)
        Self.append(UInt64(pending.count), to: &out)
        Self.append(UInt64(keys.count), to: &out)
        for key in keys {
            guard let value = values[key] else { continue }
            Self.append(string: key, to: &out)
            Self.append(value.type.rawValue, to: &out)
            Self.append(value: value, to: &out)
        }
        var offset = 0
        for t in pending {
            Self.append(string: t.name, to: &out)
            Self.append(UInt32(t.dims.count), to: &out)
            for d in t.dims { Self.append(UInt64(d), to: &out) }
            Self.append(t.type.rawValue, to: &out)
            Self.append(UInt64(offset), to: &out)
            offset += padded(stride(t))
        }
        out.append(contentsOf: [UInt8](repeating: 0, count: padded(out.count) - out.count))
        return out
    }

    /// Writes the whole file to `url` (through a temporary file renamed into place).
    public func write(to url: URL) throws {
        let path = url.path
        let header = try headerBytes()
        let tmp = path + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        guard FileManager.default.createFile(atPath: tmp, contents: nil),
              let handle = FileHandle(forWritingAtPath: tmp) else {
            throw GGUFError(.io, file: path, "cannot create \(tmp); check that the directory exists and is writable")
        }
        do {
            try handle.write(contentsOf: header)
            for t in pending {
                try handle.write(contentsOf: tensorBytes(t))
            }
            try handle.synchronize()
            try handle.close()
            // rename(2) atomically replaces an existing file.
            guard rename(tmp, path) == 0 else {
                throw GGUFError(.io, file: path, "cannot rename \(tmp) into place (\(String(cString: strerror(errno))))")
            }
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: tmp)
            if let e = error as? GGUFError { throw e }
            throw GGUFError(.io, file: path, "writing failed: \(error); check free disk space")
        }
    }

    /// The whole file as bytes (for tests and small files).
    public func serialized() throws -> [UInt8] {
        var out = try headerBytes()
        for t in pending { out.append(contentsOf: tensorBytes(t)) }
        return out
    }

    /// One tensor's data converted to its output type, padded to the alignment.
    private func tensorBytes(_ t: PendingTensor) -> Data {
        var floats = [Float](repeating: 0, count: t.count)
        floats.withUnsafeMutableBufferPointer { t.fill($0) }
        let size = stride(t)
        var data = Data(count: padded(size))
        data.withUnsafeMutableBytes { raw in
            guard let dst = raw.baseAddress else { return }
            floats.withUnsafeBytes { src in
                guard let s = src.baseAddress else { return }
                if t.type == .f32 {
                    dst.copyMemory(from: s, byteCount: size)
                } else {
                    let h = dst.assumingMemoryBound(to: UInt16.self)
                    let f = s.assumingMemoryBound(to: Float.self)
                    for i in 0..<t.count { h[i] = GGUFQuantization.floatToHalf(f[i]).littleEndian }
                }
            }
        }
        return data
    }

    // MARK: - Encoding primitives

    static func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    static func append(string: String, to out: inout [UInt8]) {
        let bytes = Array(string.utf8)
        append(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    static func append(value: GGUFValue, to out: inout [UInt8]) {
        switch value {
        case .uint8(let v): append(v, to: &out)
        case .int8(let v): append(v, to: &out)
        case .uint16(let v): append(v, to: &out)
        case .int16(let v): append(v, to: &out)
        case .uint32(let v): append(v, to: &out)
        case .int32(let v): append(v, to: &out)
        case .float32(let v): append(v.bitPattern, to: &out)
        case .bool(let v): append(UInt8(v ? 1 : 0), to: &out)
        case .string(let s): append(string: s, to: &out)
        case .uint64(let v): append(v, to: &out)
        case .int64(let v): append(v, to: &out)
        case .float64(let v): append(v.bitPattern, to: &out)
        case .array(let type, let elements):
            append(type.rawValue, to: &out)
            append(UInt64(elements.count), to: &out)
            for e in elements { append(value: e, to: &out) }
        }
    }
}
