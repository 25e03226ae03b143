// GGUF metadata values: the thirteen value types and convenient typed accessors.

/// The type tag of a GGUF metadata value, as stored in the file (little-endian `u32`).
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// The encoded size of one value of this type, or nil for strings and arrays (variable length).
    public var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }

    /// The smallest number of bytes one value of this type can occupy (strings and arrays: a u64
    /// length, plus a u32 element type for arrays). Used to reject absurd counts before allocating.
    public var minimumSize: Int {
        switch self {
        case .string: return 8
        case .array: return 12
        default: return fixedSize ?? 1
        }
    }
}

/// One GGUF metadata value.
///
/// Arrays carry their element type so that empty arrays and writers keep it. Nested arrays are
/// `.array(.array, [.array(...), ...])`.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case array(GGUFValueType, [GGUFValue])
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    /// The type tag of this value.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    /// The string, if this is a string value.
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value as an `Int` if it is an integer type whose value fits in `Int` (bools: nil).
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(exactly: v)
        default: return nil
        }
    }

    /// The value as a `Double` if it is numeric (integers convert; bools do not).
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        case .bool, .string, .array: return nil
        default: return int.map(Double.init)
        }
    }

    /// The value as a `Bool` if it is a bool.
    public var bool: Bool? {
        if case .bool(let v) = self { return v }
        return nil
    }

    /// The elements, if this is an array.
    public var array: [GGUFValue]? {
        if case .array(_, let elements) = self { return elements }
        return nil
    }

    /// The elements as strings, if this is an array of strings.
    public var strings: [String]? {
        guard case .array(let type, let elements) = self, type == .string else { return nil }
        var out: [String] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            guard case .string(let s) = element else { return nil }
            out.append(s)
        }
        return out
    }

    /// The elements as `Int`s, if this is an array of integers that all fit in `Int`.
    public var ints: [Int]? {
        guard case .array(_, let elements) = self else { return nil }
        var out: [Int] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            guard let v = element.int else { return nil }
            out.append(v)
        }
        return out
    }

    /// The elements as `Double`s, if this is an array of numbers.
    public var doubles: [Double]? {
        guard case .array(_, let elements) = self else { return nil }
        var out: [Double] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            guard let v = element.double else { return nil }
            out.append(v)
        }
        return out
    }
}

extension GGUFValue {
    /// Whether every array (recursively) holds only elements of its declared element type.
    public var isWellFormed: Bool {
        guard case .array(let type, let elements) = self else { return true }
        return elements.allSatisfy { $0.type == type && $0.isWellFormed }
    }
}

extension GGUFValue: CustomStringConvertible {
    /// A short human-readable rendering; long arrays are abbreviated.
    public var description: String {
        switch self {
        case .string(let s): return s.count > 80 ? "\"\(s.prefix(77))...\"" : "\"\(s)\""
        case .array(let type, let elements):
            let head = elements.prefix(4).map(\.description).joined(separator: ", ")
            let more = elements.count > 4 ? ", ... (\(elements.count) \(type))" : ""
            return "[\(head)\(more)]"
        case .bool(let v): return String(v)
        case .float32(let v): return String(v)
        case .float64(let v): return String(v)
        default: return int.map(String.init) ?? "?"
        }
    }
}
