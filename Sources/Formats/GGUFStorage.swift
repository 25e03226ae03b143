// The bytes of a GGUF file (memory-mapped or copied) and a bounds-checked little-endian cursor.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Read-only bytes of one GGUF file: a private memory mapping of the file, or an owned copy.
///
/// The mapping lives as long as this object; `GGUFFile` values share it.
final class GGUFStorage: @unchecked Sendable {
    /// The first byte (nil when the file is empty).
    let base: UnsafeRawPointer?
    /// The number of bytes.
    let count: Int
    /// The path or `<memory>`, for messages.
    let name: String
    private let mapped: Bool

    /// Maps the file at `path` read-only.
    init(mapping path: String) throws {
        name = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw GGUFError(.io, file: path, "cannot open the file (\(reason)); check the path and permissions")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = String(cString: strerror(errno))
            throw GGUFError(.io, file: path, "cannot stat the file (\(reason))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw GGUFError(.io, file: path, "not a regular file; pass the path of a .gguf file")
        }
        count = Int(st.st_size)
        if count == 0 {
            base = nil
            mapped = false
            return
        }
        guard let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            let reason = String(cString: strerror(errno))
            throw GGUFError(.io, file: path, "cannot memory-map \(count) bytes (\(reason))")
        }
        base = UnsafeRawPointer(p)
        mapped = true
    }

    /// Copies `bytes` (for in-memory parsing, e.g. tests).
    init(copying bytes: [UInt8], name: String) {
        self.name = name
        count = bytes.count
        mapped = false
        if bytes.isEmpty {
            base = nil
        } else {
            let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
            bytes.withUnsafeBytes { src in
                if let s = src.baseAddress { p.copyMemory(from: s, byteCount: bytes.count) }
            }
            base = UnsafeRawPointer(p)
        }
    }

    deinit {
        guard let base else { return }
        if mapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }
}

/// A forward reader over GGUF bytes: every read is bounds-checked and throws `GGUFError` naming
/// the file, the offset and the field that did not fit.
struct GGUFCursor {
    let storage: GGUFStorage
    /// The offset of the next byte to read.
    private(set) var offset: Int = 0

    init(_ storage: GGUFStorage) { self.storage = storage }

    /// Bytes left after the cursor.
    var remaining: Int { storage.count - offset }

    /// Throws `.truncated` unless `n` more bytes are available for `what`.
    func require(_ n: Int, _ what: @autoclosure () -> String) throws {
        guard n >= 0, n <= remaining else {
            throw GGUFError(.truncated, file: storage.name, offset: offset,
                            "expected \(what()) (\(n) bytes) but only \(remaining) bytes remain; the file is truncated or corrupt, download it again")
        }
    }

    /// Reads a fixed-size little-endian integer.
    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        let n = MemoryLayout<T>.size
        try require(n, what())
        guard let base = storage.base else { throw GGUFError(.truncated, file: storage.name, offset: offset, "empty file") }
        let v = base.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += n
        return T(littleEndian: v)
    }

    /// Reads a `u64` length or count and checks that `count * minElementSize` bytes could follow.
    mutating func readCount(_ what: @autoclosure () -> String, minElementSize: Int) throws -> Int {
        let start = offset
        let raw = try read(UInt64.self, what())
        let limit = UInt64(remaining / max(minElementSize, 1))
        guard raw <= limit else {
            throw GGUFError(.tooLarge, file: storage.name, offset: start,
                            "\(what()) is \(raw) but only \(remaining) bytes remain (at least \(minElementSize) bytes each); the file is corrupt")
        }
        return Int(raw)
    }

    /// Reads a GGUF string (`u64` byte length, then UTF-8 bytes; invalid UTF-8 becomes U+FFFD).
    mutating func readString(_ what: @autoclosure () -> String) throws -> String {
        let n = try readCount("byte length of \(what())", minElementSize: 1)
        guard n > 0, let base = storage.base else { return "" }
        let bytes = UnsafeRawBufferPointer(start: base + offset, count: n)
        offset += n
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads one metadata value of `type`; arrays may nest up to `depth` levels.
    mutating func readValue(_ type: GGUFValueType, _ what: @autoclosure () -> String, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try read(UInt8.self, what()))
        case .int8: return .int8(try read(Int8.self, what()))
        case .uint16: return .uint16(try read(UInt16.self, what()))
        case .int16: return .int16(try read(Int16.self, what()))
        case .uint32: return .uint32(try read(UInt32.self, what()))
        case .int32: return .int32(try read(Int32.self, what()))
        case .float32: return .float32(Float(bitPattern: try read(UInt32.self, what())))
        case .uint64: return .uint64(try read(UInt64.self, what()))
        case .int64: return .int64(try read(Int64.self, what()))
        case .float64: return .float64(Double(bitPattern: try read(UInt64.self, what())))
        case .bool:
            let at = offset
            let b = try read(UInt8.self, what())
            guard b <= 1 else {
                throw GGUFError(.invalidValue, file: storage.name, offset: at,
                                "\(what()) is a bool with byte value \(b); expected 0 or 1")
            }
            return .bool(b == 1)
        case .string: return .string(try readString(what()))
        case .array:
            guard depth < 8 else {
                throw GGUFError(.invalidValue, file: storage.name, offset: offset,
                                "\(what()) nests arrays more than 8 levels deep; the file is corrupt")
            }
            let element = try readValueType("element type of \(what())")
            let n = try readCount("element count of \(what())", minElementSize: element.minimumSize)
            var elements: [GGUFValue] = []
            elements.reserveCapacity(n)
            for i in 0..<n {
                elements.append(try readValue(element, "\(what())[\(i)]", depth: depth + 1))
            }
            return .array(element, elements)
        }
    }

    /// Reads a `u32` value type tag.
    mutating func readValueType(_ what: @autoclosure () -> String) throws -> GGUFValueType {
        let at = offset
        let raw = try read(UInt32.self, what())
        guard let t = GGUFValueType(rawValue: raw) else {
            throw GGUFError(.invalidValue, file: storage.name, offset: at,
                            "\(what()) is \(raw); expected a GGUF value type 0...12; the file is corrupt or from a newer GGUF version")
        }
        return t
    }
}
