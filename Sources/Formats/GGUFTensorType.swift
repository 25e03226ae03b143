// GGML tensor types as stored in GGUF tensor infos: names and block layouts.

/// A GGML tensor element type (the `u32` type id of a GGUF tensor info).
///
/// Every type id that ggml has defined is known by name and block layout (so that tensor sizes of
/// any known type can be bounds-checked); `GGUFFile.dequantize` supports only F32, F16, BF16, Q8_0,
/// Q4_0 and Q4_1 and reports the others as unsupported.
public struct GGMLType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The type id.
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let f32 = GGMLType(rawValue: 0)
    public static let f16 = GGMLType(rawValue: 1)
    public static let q4_0 = GGMLType(rawValue: 2)
    public static let q4_1 = GGMLType(rawValue: 3)
    public static let q5_0 = GGMLType(rawValue: 6)
    public static let q5_1 = GGMLType(rawValue: 7)
    public static let q8_0 = GGMLType(rawValue: 8)
    public static let q8_1 = GGMLType(rawValue: 9)
    public static let q4_K = GGMLType(rawValue: 12)
    public static let q6_K = GGMLType(rawValue: 14)
    public static let bf16 = GGMLType(rawValue: 30)

    /// (name, elements per block, bytes per block) for every type id ggml defines; nil entries are
    /// ids ggml removed.
    private static let table: [(String, Int, Int)?] = [
        ("F32", 1, 4), ("F16", 1, 2), ("Q4_0", 32, 18), ("Q4_1", 32, 20),
        nil, nil, // Q4_2, Q4_3: removed
        ("Q5_0", 32, 22), ("Q5_1", 32, 24), ("Q8_0", 32, 34), ("Q8_1", 32, 36),
        ("Q2_K", 256, 84), ("Q3_K", 256, 110), ("Q4_K", 256, 144), ("Q5_K", 256, 176),
        ("Q6_K", 256, 210), ("Q8_K", 256, 292), ("IQ2_XXS", 256, 66), ("IQ2_XS", 256, 74),
        ("IQ3_XXS", 256, 98), ("IQ1_S", 256, 50), ("IQ4_NL", 32, 18), ("IQ3_S", 256, 110),
        ("IQ2_S", 256, 82), ("IQ4_XS", 256, 136), ("I8", 1, 1), ("I16", 1, 2), ("I32", 1, 4),
        ("I64", 1, 8), ("F64", 1, 8), ("IQ1_M", 256, 56), ("BF16", 1, 2),
        nil, nil, nil, // Q4_0_4_4, Q4_0_4_8, Q4_0_8_8: removed
        ("TQ1_0", 256, 54), ("TQ2_0", 256, 66),
        nil, nil, nil, // IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8: removed
        ("MXFP4", 32, 17),
    ]

    private var entry: (String, Int, Int)? {
        let index = Int(rawValue)
        guard index < Self.table.count else { return nil }
        return Self.table[index]
    }

    /// Whether ggml defines this type id (so its block layout is known).
    public var isKnown: Bool { entry != nil }

    /// The ggml name (`Q4_1`), or `type#N` for an unknown id.
    public var name: String { entry?.0 ?? "type#\(rawValue)" }

    /// Elements per block (1 for plain float/int types), or nil for an unknown id.
    public var blockSize: Int? { entry?.1 }

    /// Bytes per block, or nil for an unknown id.
    public var blockBytes: Int? { entry?.2 }

    /// Whether `GGUFFile.dequantize` can convert this type to Float32.
    public var canDequantize: Bool {
        self == .f32 || self == .f16 || self == .bf16 || self == .q8_0 || self == .q4_0 || self == .q4_1
    }

    public var description: String { name }
}
