// The safetensors header, the one implementation behind model files (SafetensorsFile, SafetensorsWriter)
// and checkpoint archives: encoding, and strict parsing that cannot trap on a bad file.

import Foundation

/// A safetensors header: tensor entries in data order plus the `__metadata__` string map.
///
/// Layout of a safetensors file: an 8-byte little-endian header length N, N bytes of JSON (padded with
/// spaces so the data section starts 8-byte aligned), then the data section; `data_offsets` are relative to
/// the data section and the tensors tile it without gaps.
public struct SafetensorsHeader: Sendable {
    /// One tensor's header entry.
    public struct Entry: Sendable {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        /// Byte range in the data section.
        public let range: Range<Int>
        public var count: Int { shape.reduce(1, *) }

        public init(name: String, dtype: String, shape: [Int], range: Range<Int>) {
            self.name = name; self.dtype = dtype; self.shape = shape; self.range = range
        }
    }

    public var entries: [Entry]
    public var metadata: [String: String]

    public init(entries: [Entry], metadata: [String: String]) {
        self.entries = entries; self.metadata = metadata
    }

    /// Headers above this size are rejected (the limit the reference reader uses).
    public static let maxHeaderBytes = 100_000_000

    /// Bytes per element of the safetensors dtypes.
    public static let dtypeSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
        "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
    ]

    /// The 8-byte length prefix plus the JSON header, padded with spaces to a multiple of 8 bytes.
    public func encoded() -> [UInt8] {
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted().map { "\(Self.quote($0)):\(Self.quote(metadata[$0]!))" }.joined(separator: ",")
            json += "}"
            first = false
        }
        for e in entries {
            if !first { json += "," }
            first = false
            json += "\(Self.quote(e.name)):{\"dtype\":\"\(e.dtype)\",\"shape\":["
            json += e.shape.map(String.init).joined(separator: ",")
            json += "],\"data_offsets\":[\(e.range.lowerBound),\(e.range.upperBound)]}"
        }
        json += "}"
        var header = Array(json.utf8)
        while (8 + header.count) % 8 != 0 { header.append(0x20) }
        let length = UInt64(header.count)
        return (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) } + header
    }

    /// A JSON string literal for `s`.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// Parses and validates the header at the start of `payload`; returns it with the data section's start.
    ///
    /// Every length, shape and offset is checked against the payload size; nothing here can trap on a bad file.
    public static func parse(_ payload: UnsafeRawBufferPointer, file: String) throws -> (header: SafetensorsHeader, dataStart: Int) {
        func fail(_ m: String) -> SafetensorsError { SafetensorsError(file: file, message: m) }
        guard payload.count >= 8 else {
            throw fail("only \(payload.count) bytes; a safetensors file starts with an 8-byte header length (truncated, or not safetensors)")
        }
        let n = UInt64(littleEndian: payload.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(payload.count - 8), n <= UInt64(maxHeaderBytes) else {
            throw fail("the safetensors header length \(n) does not fit the \(payload.count)-byte file (truncated or corrupt header)")
        }
        let headerEnd = 8 + Int(n)
        let json = Data(payload[8..<headerEnd])
        let raw: [String: RawValue]
        do {
            raw = try JSONDecoder().decode([String: RawValue].self, from: json)
        } catch {
            throw fail("the safetensors header is not a JSON object (corrupt header or not safetensors)")
        }
        let dataSize = payload.count - headerEnd
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        for (name, value) in raw {
            switch value {
            case .metadata(let m) where name == "__metadata__":
                metadata = m
            case .entry(let e) where name != "__metadata__":
                entries.append(try validate(name: name, e, dataSize: dataSize, file: file))
            default:
                throw fail(name == "__metadata__"
                    ? "__metadata__ must map strings to strings"
                    : "header entry \(quote(name)) needs dtype, shape and data_offsets (corrupt header)")
            }
        }
        entries.sort { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }
        return (SafetensorsHeader(entries: entries, metadata: metadata), headerEnd)
    }

    /// Checks one entry's dtype, shape and offsets against the data section.
    private static func validate(name: String, _ e: RawEntry, dataSize: Int, file: String) throws -> Entry {
        func fail(_ m: String) -> SafetensorsError { SafetensorsError(file: file, message: "tensor \(quote(name)): \(m)") }
        guard let size = dtypeSizes[e.dtype] else { throw fail("unknown dtype \(quote(e.dtype))") }
        guard e.shape.allSatisfy({ $0 >= 0 }) else { throw fail("negative dimension in shape \(e.shape)") }
        var count = 1
        for d in e.shape {
            let (c, o) = count.multipliedReportingOverflow(by: d)
            guard !o else { throw fail("shape \(e.shape) overflows") }
            count = c
        }
        let (bytes, o) = count.multipliedReportingOverflow(by: size)
        guard !o else { throw fail("shape \(e.shape) overflows") }
        guard e.data_offsets.count == 2, e.data_offsets[0] >= 0, e.data_offsets[0] <= e.data_offsets[1],
              e.data_offsets[1] <= dataSize else {
            throw fail("data_offsets \(e.data_offsets) lie outside the \(dataSize)-byte data section (truncated or corrupt)")
        }
        guard e.data_offsets[1] - e.data_offsets[0] == bytes else {
            throw fail("data_offsets \(e.data_offsets) span \(e.data_offsets[1] - e.data_offsets[0]) bytes, but shape \(e.shape) of \(e.dtype) needs \(bytes)")
        }
        return Entry(name: name, dtype: e.dtype, shape: e.shape, range: e.data_offsets[0]..<e.data_offsets[1])
    }

    /// A tensor entry as it appears in JSON.
    private struct RawEntry: Decodable {
        let dtype: String
        let shape: [Int]
        let data_offsets: [Int]
    }

    /// Any value of the header object: a tensor entry, the metadata map, or something else (rejected).
    private enum RawValue: Decodable {
        case entry(RawEntry), metadata([String: String]), other
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let e = try? c.decode(RawEntry.self) { self = .entry(e) }
            else if let m = try? c.decode([String: String].self) { self = .metadata(m) }
            else { self = .other }
        }
    }
}

/// A safetensors file or header that cannot be read; names the file and what to do.
public struct SafetensorsError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let message: String
    public init(file: String, message: String) { self.file = file; self.message = message }
    public var description: String { "\(file): \(message)" }
}
