// The error for a tensor archive that cannot be written or read.

/// A tensor archive problem: the file, what is wrong and what to do (and the zstd failure, if any).
public struct TensorArchiveError: Error, CustomStringConvertible, Sendable {
    /// The archive's path (or `<memory>` for in-memory encode/decode).
    public let file: String
    /// What is wrong and what to do.
    public let message: String
    /// The underlying zstd failure when the frame itself is bad (corrupt, truncated, checksum).
    public let zstd: ZstdError?

    public init(file: String, message: String, zstd: ZstdError? = nil) {
        self.file = file; self.message = message; self.zstd = zstd
    }

    public var description: String { "\(file): \(message)" }
}
