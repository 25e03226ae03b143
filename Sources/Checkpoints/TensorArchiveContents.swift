// A decoded tensor archive: tensor names, shapes, metadata, and access to the floats.

import Foundation
import Formats

/// The validated contents of a tensor archive, held in memory (decompressed once, unshuffled on access).
public struct TensorArchiveContents: Sendable {
    /// One tensor's header entry.
    public struct Entry: Sendable, Equatable {
        public let name: String
        /// Safetensors dtype; TensorArchive writes only `F32`.
        public let dtype: String
        public let shape: [Int]
        /// Byte range in the safetensors data section.
        public let byteRange: Range<Int>
        /// Elements in the tensor.
        public var count: Int { shape.reduce(1, *) }
    }

    /// The archive's path (or `<memory>`).
    public let file: String
    /// The caller's metadata as written (the reserved shuffle marker removed).
    public let metadata: [String: String]
    /// Whether tensor data is stored as byte planes.
    public let isShuffled: Bool
    /// Tensors in file order.
    public let entries: [Entry]
    /// Sizes and time of the read (decompression and header parsing).
    public let stats: ArchiveStats

    let payload: Data
    let dataStart: Int
    private let index: [String: Int]

    init(file: String, metadata: [String: String], isShuffled: Bool, entries: [Entry], payload: Data, dataStart: Int,
         stats: ArchiveStats) {
        self.file = file; self.metadata = metadata; self.isShuffled = isShuffled; self.entries = entries
        self.payload = payload; self.dataStart = dataStart; self.stats = stats
        var index: [String: Int] = [:]
        for (i, e) in entries.enumerated() { index[e.name] = i }
        self.index = index
    }

    /// Tensor names in file order.
    public var names: [String] { entries.map(\.name) }

    /// The entry named `name`, if present.
    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The shape of tensor `name`, if present.
    public func shape(_ name: String) -> [Int]? { entry(name)?.shape }

    /// The floats of tensor `name` (unshuffled when the archive is shuffled).
    public func floats(_ name: String) throws -> [Float] {
        let e = try f32Entry(name)
        return try [Float](unsafeUninitializedCapacity: e.count) { buffer, initialized in
            try copyFloats(name, into: buffer)
            initialized = e.count
        }
    }

    /// Copies tensor `name` into `destination`, which must hold exactly its element count.
    public func copyFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let e = try f32Entry(name)
        guard destination.count == e.count else {
            throw TensorArchiveError(file: file, message: "tensor \(name) has \(e.count) elements (shape \(e.shape)) but the destination holds \(destination.count); check the model configuration matches the checkpoint")
        }
        payload.withUnsafeBytes { p in
            let source = UnsafeRawBufferPointer(rebasing: p[(dataStart + e.byteRange.lowerBound)..<(dataStart + e.byteRange.upperBound)])
            let target = UnsafeMutableRawBufferPointer(destination)
            if isShuffled {
                ByteShuffle.unshuffle(source, into: target, elementSize: 4)
            } else if let base = source.baseAddress {
                target.baseAddress!.copyMemory(from: base, byteCount: source.count)
            }
        }
    }

    /// Metadata value `key`, or a `TensorArchiveError` naming the file and key.
    public func string(_ key: String) throws -> String {
        guard let v = metadata[key] else {
            throw TensorArchiveError(file: file, message: "metadata key \(key) is missing; the checkpoint was written by an older or different program")
        }
        return v
    }

    /// Metadata value `key` parsed as a signed 64-bit integer.
    public func int64(_ key: String) throws -> Int64 {
        let s = try string(key)
        guard let v = Int64(s) else { throw notNumber(key, s, "a signed 64-bit integer") }
        return v
    }

    /// Metadata value `key` parsed as an unsigned 64-bit integer.
    public func uint64(_ key: String) throws -> UInt64 {
        let s = try string(key)
        guard let v = UInt64(s) else { throw notNumber(key, s, "an unsigned 64-bit integer") }
        return v
    }

    /// Metadata value `key` parsed as a Double (write them with `String(describing:)`, which round-trips).
    public func double(_ key: String) throws -> Double {
        let s = try string(key)
        guard let v = Double(s) else { throw notNumber(key, s, "a floating-point number") }
        return v
    }

    private func notNumber(_ key: String, _ value: String, _ what: String) -> TensorArchiveError {
        TensorArchiveError(file: file, message: "metadata key \(key) is \(SafetensorsHeader.quote(value)), not \(what) (corrupt or foreign file)")
    }

    /// The entry `name`, which must exist and be F32.
    private func f32Entry(_ name: String) throws -> Entry {
        guard let e = entry(name) else {
            let known = names.prefix(8).joined(separator: ", ") + (names.count > 8 ? ", …" : "")
            throw TensorArchiveError(file: file, message: "no tensor named \(name) (the file has \(names.count): \(known)); check the model configuration matches the checkpoint")
        }
        guard e.dtype == "F32" else {
            throw TensorArchiveError(file: file, message: "tensor \(name) has dtype \(e.dtype); TensorArchive reads F32 only (convert the file)")
        }
        return e
    }
}
