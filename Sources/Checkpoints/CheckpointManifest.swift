// manifest.json: the list of a checkpoint's files with sizes and checksums, plus the caller's fields.

import Foundation

/// The contents of a checkpoint's `manifest.json`.
///
/// ```json
/// { "format": "dualign-checkpoint/1", "step": 1200,
///   "files": { "model.safetensors.zst": { "bytes": 123456, "xxh64": "0123456789abcdef" } },
///   "fields": { "config_hash": "…", "world_size": 2 } }
/// ```
public struct CheckpointManifest: Codable, Sendable, Equatable {
    /// One file's expected size and checksum.
    public struct FileRecord: Codable, Sendable, Equatable {
        /// Size in bytes.
        public let bytes: Int
        /// XXH64 of the file, 16 lowercase hex digits.
        public let xxh64: String

        public init(bytes: Int, xxh64: String) { self.bytes = bytes; self.xxh64 = xxh64 }
        public init(_ checksum: FileChecksum) { self.init(bytes: checksum.size, xxh64: XXH64.hex(checksum.xxh64)) }
    }

    /// The format tag written by this version.
    public static let currentFormat = "dualign-checkpoint/1"

    /// Format tag; readers reject tags they do not know.
    public let format: String
    /// The training step the checkpoint holds.
    public let step: Int
    /// File name → expected size and checksum.
    public let files: [String: FileRecord]
    /// The caller's free-form fields (step details, config hash, world size, …).
    public let fields: [String: ManifestValue]

    public init(step: Int, files: [String: FileRecord], fields: [String: ManifestValue], format: String = currentFormat) {
        self.format = format; self.step = step; self.files = files; self.fields = fields
    }

    /// Pretty, key-sorted JSON (stable bytes for the same contents).
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(self)
        data.append(0x0A)
        return data
    }

    /// Parses `data`; throws the decoder's error on anything malformed.
    public static func decode(_ data: Data) throws -> CheckpointManifest {
        try JSONDecoder().decode(CheckpointManifest.self, from: data)
    }
}
