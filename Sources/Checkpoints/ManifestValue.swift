// A JSON value for the free-form fields a caller puts in a checkpoint manifest.

import Formats

/// Any JSON value: the caller's free-form manifest fields (step, config hash, world size, λ history, …).
///
/// Integers are kept exact as `Int64` (or `UInt64` above `Int64.max`), so hashes and counters round-trip.
/// JSON has one number type: a `.double` with an integral value (2.0) reads back as `.int(2)`, so read
/// numbers through `doubleValue` / `int64Value` rather than matching cases.
public enum ManifestValue: Codable, Sendable, Equatable, CustomStringConvertible,
    ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral {
    case string(String)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case bool(Bool)
    case array([ManifestValue])
    case object([String: ManifestValue])
    case null

    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: ManifestValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, ManifestValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .int(i) }
        else if let u = try? c.decode(UInt64.self) { self = .uint(u) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([ManifestValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: ManifestValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .int(let i): try c.encode(i)
        case .uint(let u): try c.encode(u)
        case .double(let d): try c.encode(d)
        case .bool(let b): try c.encode(b)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        case .null: try c.encodeNil()
        }
    }

    /// The string, if this is one.
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    /// The integer, if this is one that fits `Int64`.
    public var int64Value: Int64? {
        switch self {
        case .int(let i): return i
        case .uint(let u): return Int64(exactly: u)
        default: return nil
        }
    }
    /// The integer, if this is a non-negative one.
    public var uint64Value: UInt64? {
        switch self {
        case .int(let i): return UInt64(exactly: i)
        case .uint(let u): return u
        default: return nil
        }
    }
    /// The number as a Double, if this is a number.
    public var doubleValue: Double? {
        switch self {
        case .double(let d): return d
        case .int(let i): return Double(i)
        case .uint(let u): return Double(u)
        default: return nil
        }
    }
    /// The Boolean, if this is one.
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }

    public var description: String {
        switch self {
        case .string(let s): return SafetensorsHeader.quote(s)
        case .int(let i): return String(i)
        case .uint(let u): return String(u)
        case .double(let d): return String(d)
        case .bool(let b): return String(b)
        case .array(let a): return "[" + a.map(\.description).joined(separator: ",") + "]"
        case .object(let o):
            return "{" + o.keys.sorted().map { "\(SafetensorsHeader.quote($0)):\(o[$0]!)" }.joined(separator: ",") + "}"
        case .null: return "null"
        }
    }
}
