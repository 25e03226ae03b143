// A whole JSON file (not JSON Lines) parsed into values that remember their line.

import Foundation

/// One JSON value with the 1-based line where it starts, so a row inside a JSON array or object
/// can be reported as `file:line` like a JSONL row.
public struct JSONNode: Sendable {
    public enum Kind: Sendable {
        case null
        case bool(Bool)
        case number(Double)
        case string(String)
        case array([JSONNode])
        /// Members in file order (a repeated key keeps its last value in `member(_:)`).
        case object([(key: String, value: JSONNode)])
    }

    public let kind: Kind
    /// The 1-based line of the value's first character.
    public let line: Int

    /// The member named `key` of an object (the last one if repeated), else nil.
    public func member(_ key: String) -> JSONNode? {
        guard case .object(let members) = kind else { return nil }
        return members.last { $0.key == key }?.value
    }

    /// The elements of an array, else nil.
    public var elements: [JSONNode]? {
        if case .array(let items) = kind { return items }
        return nil
    }

    /// The text of a string, else nil.
    public var string: String? {
        if case .string(let s) = kind { return s }
        return nil
    }

    /// The value without positions (for `DataRow`).
    public var value: JSONValue {
        switch kind {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .number(let d): return .number(d)
        case .string(let s): return .string(s)
        case .array(let items): return .array(items.map(\.value))
        case .object(let members):
            var o: [String: JSONValue] = [:]
            for m in members { o[m.key] = m.value.value }
            return .object(o)
        }
    }

    /// A short name of the value's type for error messages.
    public var typeName: String { value.typeName }

    /// The node as a data row of `file` (objects only), for typed field access with `file:line` errors.
    public func row(file: String) -> DataRow? {
        guard case .object(let o) = value else { return nil }
        return DataRow(file: file, line: line, storage: .json(o))
    }
}

/// Parses whole JSON files (RFC 8259) keeping the line of every value.
public enum JSONDocument {
    /// Reads and parses `path`.
    ///
    /// - Throws: `DatasetError.fileNotFound` when the file cannot be read, `.unsupportedFormat` (with
    ///   the line) when it is not valid JSON — a broken document cannot be skipped row by row.
    public static func load(_ path: String) throws -> JSONNode {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatasetError(.fileNotFound, file: path, "cannot read the file; check the path in the dataset configuration (or run `launch/assets.sh data`)")
        }
        return try parse([UInt8](data), file: path)
    }

    /// Parses UTF-8 bytes; `file` names them in errors.
    public static func parse(_ bytes: [UInt8], file: String) throws -> JSONNode {
        var parser = Parser(bytes: bytes, file: file)
        parser.skipWhitespace()
        let node = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else {
            throw parser.error("unexpected text after the JSON value")
        }
        return node
    }

    private struct Parser {
        let bytes: [UInt8]
        let file: String
        var position = 0
        var line = 1

        init(bytes: [UInt8], file: String) {
            self.bytes = bytes
            self.file = file
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }   // UTF-8 byte-order mark
        }

        func error(_ what: String) -> DatasetError {
            DatasetError(.unsupportedFormat, file: file, line: line,
                         "the file is not valid JSON (\(what)); fix the file or fetch it again with `launch/assets.sh data`")
        }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x0A: line += 1; position += 1
                case 0x20, 0x09, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func parseValue(depth: Int) throws -> JSONNode {
            guard depth < 512 else { throw error("nesting deeper than 512 levels") }
            guard position < bytes.count else { throw error("the file ends where a value should start") }
            let start = line
            switch bytes[position] {
            case UInt8(ascii: "{"):
                position += 1
                var members: [(key: String, value: JSONNode)] = []
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return JSONNode(kind: .object(members), line: start) }
                while true {
                    skipWhitespace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw error("expected a quoted key") }
                    let key = try parseString()
                    skipWhitespace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw error("expected ':' after the key \"\(key)\"") }
                    position += 1
                    skipWhitespace()
                    members.append((key, try parseValue(depth: depth + 1)))
                    skipWhitespace()
                    guard position < bytes.count else { throw error("the object is not closed") }
                    if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                    if bytes[position] == UInt8(ascii: "}") { position += 1; return JSONNode(kind: .object(members), line: start) }
                    throw error("expected ',' or '}' in an object")
                }
            case UInt8(ascii: "["):
                position += 1
                var items: [JSONNode] = []
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return JSONNode(kind: .array(items), line: start) }
                while true {
                    skipWhitespace()
                    items.append(try parseValue(depth: depth + 1))
                    skipWhitespace()
                    guard position < bytes.count else { throw error("the array is not closed") }
                    if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                    if bytes[position] == UInt8(ascii: "]") { position += 1; return JSONNode(kind: .array(items), line: start) }
                    throw error("expected ',' or ']' in an array")
                }
            case UInt8(ascii: "\""):
                return JSONNode(kind: .string(try parseString()), line: start)
            case UInt8(ascii: "t"): try literal("true"); return JSONNode(kind: .bool(true), line: start)
            case UInt8(ascii: "f"): try literal("false"); return JSONNode(kind: .bool(false), line: start)
            case UInt8(ascii: "n"): try literal("null"); return JSONNode(kind: .null, line: start)
            // JSON has no NaN/Infinity, but Python's json.dump writes them; read them as numbers.
            case UInt8(ascii: "N"): try literal("NaN"); return JSONNode(kind: .number(.nan), line: start)
            case UInt8(ascii: "I"): try literal("Infinity"); return JSONNode(kind: .number(.infinity), line: start)
            default:
                return JSONNode(kind: .number(try parseNumber()), line: start)
            }
        }

        mutating func literal(_ word: String) throws {
            let w = Array(word.utf8)
            guard position + w.count <= bytes.count, Array(bytes[position..<(position + w.count)]) == w else {
                throw error("unexpected character '\(String(decoding: [bytes[position]], as: UTF8.self))'")
            }
            position += w.count
        }

        mutating func parseNumber() throws -> Double {
            let start = position
            if position < bytes.count, bytes[position] == UInt8(ascii: "-") {
                position += 1
                if position < bytes.count, bytes[position] == UInt8(ascii: "I") { try literal("Infinity"); return -.infinity }
            }
            while position < bytes.count {
                let b = bytes[position]
                let isNumberByte = (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: ".") || b == UInt8(ascii: "e")
                    || b == UInt8(ascii: "E") || b == UInt8(ascii: "+") || b == UInt8(ascii: "-")
                guard isNumberByte else { break }
                position += 1
            }
            let text = String(decoding: bytes[start..<position], as: UTF8.self)
            guard position > start, let d = Double(text) else {
                throw error(position > start ? "'\(text)' is not a number" : "unexpected character '\(String(decoding: [bytes[start]], as: UTF8.self))'")
            }
            return d
        }

        /// A quoted string starting at `position` (the opening quote).
        mutating func parseString() throws -> String {
            position += 1
            var out: [UInt8] = []
            while true {
                guard position < bytes.count else { throw error("a string is not closed") }
                let b = bytes[position]
                if b == UInt8(ascii: "\"") { position += 1; break }
                if b == 0x0A { line += 1 }   // not strict JSON, but keep the line count right
                if b != UInt8(ascii: "\\") { out.append(b); position += 1; continue }
                guard position + 1 < bytes.count else { throw error("a string ends with a lone backslash") }
                let e = bytes[position + 1]
                position += 2
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar), position + 1 < bytes.count,
                       bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") {
                        position += 2
                        let low = try hex4()
                        if (0xDC00..<0xE000).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            out.append(contentsOf: Array(String(Character(Unicode.Scalar(0xFFFD)!)).utf8))
                            scalar = low
                        }
                    }
                    let character = Unicode.Scalar(scalar).map { String(Character($0)) } ?? "\u{FFFD}"   // lone surrogate
                    out.append(contentsOf: Array(character.utf8))
                default:
                    throw error("unknown escape '\\\(String(decoding: [e], as: UTF8.self))' in a string")
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func hex4() throws -> UInt32 {
            guard position + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[position..<(position + 4)], as: UTF8.self), radix: 16) else {
                throw error("\\u needs four hex digits")
            }
            position += 4
            return v
        }
    }
}
