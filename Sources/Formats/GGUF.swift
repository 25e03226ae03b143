// GGUF reader (versions 2 and 3): header, metadata, tensor infos and tensor data access.
//
// Layout (little-endian): "GGUF" u32 version, u64 tensor_count, u64 kv_count,
// kv_count × (string key, u32 type, value), tensor_count × (string name, u32 n_dims,
// n_dims × u64 ne (fastest-varying first), u32 ggml type, u64 offset), padding to
// `general.alignment` (default 32), then the data section; tensor offsets are relative to it.

import Foundation

/// One tensor's entry in a GGUF file.
public struct GGUFTensorInfo: Equatable, Sendable {
    /// The tensor name (`blk.0.attn_q.weight`).
    public let name: String
    /// The dimensions fastest-varying first, as GGUF stores them (`token_embd` is `[576, 49152]`).
    public let dims: [Int]
    /// The element type.
    public let type: GGMLType
    /// The byte offset of the data relative to the start of the data section.
    public let offset: Int
    /// The byte offset of the data from the start of the file.
    public let fileOffset: Int
    /// The number of elements (product of `dims`).
    public let elementCount: Int
    /// The number of bytes of the stored data.
    public let byteCount: Int

    /// The dimensions slowest-varying first (row-major shape): `token_embd` is `[49152, 576]`.
    public var shape: [Int] { dims.reversed() }
}

/// A parsed GGUF file: metadata and tensor infos, with the tensor data kept memory-mapped.
///
/// Parsing validates every count, length and offset against the file size and throws `GGUFError`
/// (naming the file, the offset and what was expected) on any malformed or truncated input.
public struct GGUFFile: @unchecked Sendable {
    /// The format version (2 or 3).
    public let version: Int
    /// Every metadata key and value.
    public let metadata: [String: GGUFValue]
    /// The metadata keys in file order.
    public let metadataKeys: [String]
    /// The tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    /// The data alignment (`general.alignment`, default 32).
    public let alignment: Int
    /// The byte offset of the data section from the start of the file.
    public let dataOffset: Int
    /// The file size in bytes.
    public var fileSize: Int { storage.count }
    /// The path (or `<memory>`), as used in error messages.
    public var path: String { storage.name }

    let storage: GGUFStorage
    private let tensorIndex: [String: Int]

    /// Memory-maps and parses the GGUF file at `url`.
    public init(contentsOf url: URL) throws {
        try self.init(storage: GGUFStorage(mapping: url.path))
    }

    /// Parses GGUF bytes held in memory; `name` is used in error messages.
    public init(bytes: [UInt8], name: String = "<memory>") throws {
        try self.init(storage: GGUFStorage(copying: bytes, name: name))
    }

    init(storage: GGUFStorage) throws {
        self.storage = storage
        let file = storage.name
        var c = GGUFCursor(storage)

        let magic = try c.read(UInt32.self, "the magic \"GGUF\"")
        guard magic == 0x4655_4747 else { // "GGUF" read as little-endian u32
            throw GGUFError(.badMagic, file: file, offset: 0,
                            String(format: "expected the magic \"GGUF\" (47 47 55 46) but found %08x; this is not a GGUF file", UInt32(bigEndian: magic)))
        }
        let rawVersion = try c.read(UInt32.self, "the version")
        guard rawVersion == 2 || rawVersion == 3 else {
            let hint = rawVersion.byteSwapped <= 3 ? " (a big-endian GGUF; convert it to little-endian)" :
                rawVersion == 1 ? " (GGUF v1 is obsolete; reconvert the model with a current llama.cpp)" : ""
            throw GGUFError(.unsupportedVersion, file: file, offset: 4,
                            "version \(rawVersion) is not supported; expected 2 or 3\(hint)")
        }
        version = Int(rawVersion)
        // Minimum encoded sizes: a tensor info is name(8) + n_dims(4) + type(4) + offset(8); a kv is key(8) + type(4) + 1.
        let tensorCount = try c.readCount("the tensor count", minElementSize: 24)
        let kvCount = try c.readCount("the metadata key/value count", minElementSize: 13)

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        metadata.reserveCapacity(kvCount)
        keys.reserveCapacity(kvCount)
        for i in 0..<kvCount {
            let keyOffset = c.offset
            let key = try c.readString("the key of metadata entry \(i)")
            let type = try c.readValueType("the value type of metadata key '\(key)'")
            let value = try c.readValue(type, "the value of metadata key '\(key)'")
            guard metadata[key] == nil else {
                throw GGUFError(.invalidValue, file: file, offset: keyOffset,
                                "metadata key '\(key)' appears twice; the file is corrupt")
            }
            metadata[key] = value
            keys.append(key)
        }
        self.metadata = metadata
        metadataKeys = keys

        var align = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.int, v > 0, v <= 1 << 30, v & (v - 1) == 0 else {
                throw GGUFError(.invalidValue, file: file,
                                "general.alignment is \(a); expected a power of two (default 32)")
            }
            align = v
        }
        alignment = align

        struct Raw { let name: String; let dims: [Int]; let type: GGMLType; let offset: UInt64; let at: Int }
        var raws: [Raw] = []
        raws.reserveCapacity(tensorCount)
        for i in 0..<tensorCount {
            let at = c.offset
            let name = try c.readString("the name of tensor \(i)")
            let nDimsAt = c.offset
            let nDims = try c.read(UInt32.self, "the dimension count of tensor '\(name)'")
            guard nDims >= 1, nDims <= 4 else {
                throw GGUFError(.invalidValue, file: file, offset: nDimsAt,
                                "tensor '\(name)' has \(nDims) dimensions; expected 1...4")
            }
            var dims: [Int] = []
            for d in 0..<Int(nDims) {
                let dimAt = c.offset
                let ne = try c.read(UInt64.self, "dimension \(d) of tensor '\(name)'")
                guard ne <= UInt64(Int32.max) * 64 else {
                    throw GGUFError(.tooLarge, file: file, offset: dimAt,
                                    "dimension \(d) of tensor '\(name)' is \(ne); the file is corrupt")
                }
                dims.append(Int(ne))
            }
            let typeAt = c.offset
            let type = GGMLType(rawValue: try c.read(UInt32.self, "the type of tensor '\(name)'"))
            guard type.isKnown else {
                throw GGUFError(.unsupportedTensorType, file: file, offset: typeAt,
                                "tensor '\(name)' has unknown ggml type id \(type.rawValue); the file is corrupt or needs a newer reader")
            }
            let offset = try c.read(UInt64.self, "the data offset of tensor '\(name)'")
            raws.append(Raw(name: name, dims: dims, type: type, offset: offset, at: at))
        }
        let headerEnd = c.offset
        dataOffset = (headerEnd + align - 1) / align * align

        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        infos.reserveCapacity(raws.count)
        for raw in raws {
            let info = try Self.validate(raw.name, raw.dims, raw.type, raw.offset, at: raw.at,
                                         dataOffset: dataOffset, alignment: align, fileSize: storage.count, file: file)
            guard index[raw.name] == nil else {
                throw GGUFError(.invalidValue, file: file, offset: raw.at,
                                "tensor name '\(raw.name)' appears twice; the file is corrupt")
            }
            index[raw.name] = infos.count
            infos.append(info)
        }
        tensors = infos
        tensorIndex = index
    }

    /// Computes the element and byte counts of one tensor and checks its data lies inside the file.
    private static func validate(_ name: String, _ dims: [Int], _ type: GGMLType, _ offset: UInt64, at: Int,
                                 dataOffset: Int, alignment: Int, fileSize: Int, file: String) throws -> GGUFTensorInfo {
        var elements = 1
        for d in dims {
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow, p <= Int(Int32.max) * 64 else {
                throw GGUFError(.tooLarge, file: file, offset: at,
                                "tensor '\(name)' with dims \(dims) has too many elements; the file is corrupt")
            }
            elements = p
        }
        let blockSize = type.blockSize ?? 1
        let blockBytes = type.blockBytes ?? 1
        guard dims[0] % blockSize == 0 else {
            throw GGUFError(.invalidValue, file: file, offset: at,
                            "tensor '\(name)' of type \(type) has first dimension \(dims[0]), not a multiple of the block size \(blockSize)")
        }
        let bytes = elements / blockSize * blockBytes
        guard offset % UInt64(alignment) == 0 else {
            throw GGUFError(.invalidValue, file: file, offset: at,
                            "tensor '\(name)' has data offset \(offset), not a multiple of the alignment \(alignment)")
        }
        guard offset <= UInt64(fileSize), dataOffset + Int(offset) <= fileSize - bytes else {
            throw GGUFError(.tensorOutOfBounds, file: file, offset: at,
                            "tensor '\(name)' (\(type), dims \(dims), \(bytes) bytes) at data offset \(offset) ends beyond the end of the file (\(fileSize) bytes, data section at \(dataOffset)); the file is truncated, download it again")
        }
        return GGUFTensorInfo(name: name, dims: dims, type: type, offset: Int(offset),
                              fileOffset: dataOffset + Int(offset), elementCount: elements, byteCount: bytes)
    }

    // MARK: - Lookup

    /// The tensor named `name`, or nil.
    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The tensor named `name`, or a `.tensorNotFound` error naming the file.
    public func requireTensor(_ name: String) throws -> GGUFTensorInfo {
        guard let t = tensor(named: name) else {
            throw GGUFError(.tensorNotFound, file: path,
                            "no tensor named '\(name)' (the file has \(tensors.count) tensors); check the model architecture")
        }
        return t
    }

    /// Calls `body` with the stored bytes of `tensor` (valid only inside `body`).
    public func withBytes<R>(of tensor: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard tensor.fileOffset >= 0, tensor.byteCount >= 0, tensor.fileOffset <= storage.count - tensor.byteCount else {
            throw GGUFError(.tensorOutOfBounds, file: path, offset: tensor.fileOffset,
                            "tensor '\(tensor.name)' (\(tensor.byteCount) bytes) does not lie inside this file; pass a tensor info from this file")
        }
        guard let base = storage.base else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try withExtendedLifetime(storage) {
            try body(UnsafeRawBufferPointer(start: base + tensor.fileOffset, count: tensor.byteCount))
        }
    }

    /// Dequantizes the tensor named `name` into a new array of `elementCount` floats.
    public func floats(_ name: String) throws -> [Float] {
        let t = try requireTensor(name)
        guard t.type.canDequantize else { throw unsupported(t) }
        return try [Float](unsafeUninitializedCapacity: t.elementCount) { buffer, initialized in
            if let base = buffer.baseAddress { try dequantize(t, into: base) }
            initialized = t.elementCount
        }
    }

    /// Dequantizes `tensor` into `output`, which must hold `tensor.elementCount` floats.
    ///
    /// Supports F32, F16, BF16, Q8_0, Q4_0 and Q4_1; large tensors are split over threads.
    public func dequantize(_ tensor: GGUFTensorInfo, into output: UnsafeMutablePointer<Float>) throws {
        guard tensor.type.canDequantize else { throw unsupported(tensor) }
        try withBytes(of: tensor) { raw in
            GGUFQuantization.dequantize(type: tensor.type, source: raw, count: tensor.elementCount, into: output)
        }
    }

    private func unsupported(_ t: GGUFTensorInfo) -> GGUFError {
        GGUFError(.unsupportedTensorType, file: path, offset: t.fileOffset,
                  "tensor '\(t.name)' has type \(t.type) (id \(t.type.rawValue)), which this reader cannot dequantize; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1 (requantize the model to one of them)")
    }

    // MARK: - Typed metadata accessors (names match Tokenizers.TokenizerMetadata)

    /// The string value of `key`, if present and a string.
    public func metadataString(_ key: String) -> String? { metadata[key]?.string }
    /// The integer value of `key`, if present and an integer.
    public func metadataInt(_ key: String) -> Int? { metadata[key]?.int }
    /// The floating-point value of `key`, if present and numeric.
    public func metadataDouble(_ key: String) -> Double? { metadata[key]?.double }
    /// The bool value of `key`, if present and a bool.
    public func metadataBool(_ key: String) -> Bool? { metadata[key]?.bool }
    /// The string array of `key`, if present and an array of strings.
    public func metadataStrings(_ key: String) -> [String]? { metadata[key]?.strings }
    /// The integer array of `key`, if present and an array of integers.
    public func metadataInts(_ key: String) -> [Int]? { metadata[key]?.ints }
}
