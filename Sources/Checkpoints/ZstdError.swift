// The error thrown by every zstd call site in this module.

/// A failed zstd call: which C function failed, where, zstd's own reason, and what to do.
public struct ZstdError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong, coarsely, so callers can react without parsing text.
    public enum Kind: Sendable, Equatable {
        /// The bytes are not a zstd frame or are corrupt inside.
        case corrupt
        /// The frame ends before its last block (a truncated file).
        case truncated
        /// The frame decoded but its content checksum does not match.
        case checksumMismatch
        /// The frame declares (or would produce) more bytes than the caller allows.
        case tooLarge
        /// Bytes follow the frame; a checkpoint file holds exactly one frame.
        case trailingData
        /// A compression parameter was rejected (level, workers).
        case parameter
        /// Allocation or another library-side failure.
        case library
    }

    /// Coarse classification of the failure.
    public let kind: Kind
    /// The zstd C function (or check) that failed, e.g. `ZSTD_decompressDCtx`.
    public let call: String
    /// The Swift call site, `file:line`.
    public let site: String
    /// zstd's error name (`ZSTD_getErrorName`) or this module's own reason.
    public let reason: String
    /// What the caller should do about it.
    public let hint: String

    public init(kind: Kind, call: String, site: String, reason: String, hint: String) {
        self.kind = kind; self.call = call; self.site = site; self.reason = reason; self.hint = hint
    }

    public var description: String { "\(call) failed at \(site): \(reason); \(hint)" }
}
