// The error for a failed file-system call (open, write, fsync, rename, read) on checkpoint storage.

import Foundation

/// A file-system call that failed: the path, the operation, the OS reason and what to do.
public struct CheckpointIOError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file or directory involved.
    public let path: String
    /// What was attempted, e.g. `fsync` or `rename to model.safetensors.zst`.
    public let operation: String
    /// The `errno` value reported by the OS (0 when the failure was not an OS error).
    public let code: Int32
    /// The OS's reason (`strerror`) or this module's own.
    public let reason: String

    /// Describes a failed OS call from its `errno`.
    public init(path: String, operation: String, errno code: Int32) {
        self.path = path; self.operation = operation; self.code = code
        self.reason = String(cString: strerror(code))
    }

    /// Describes a failure that is not an OS error.
    public init(path: String, operation: String, reason: String) {
        self.path = path; self.operation = operation; self.code = 0; self.reason = reason
    }

    /// What to do about it.
    public var hint: String {
        switch code {
        case ENOSPC, EDQUOT: return "the file system is full or over quota; free space or move the run directory"
        case EACCES, EPERM, EROFS: return "check the permissions of the run directory (and that it is mounted read-write)"
        case ENOENT: return "the file or directory does not exist; check the path"
        case EIO: return "the storage reported an I/O error; check the shared file system"
        default: return "check the run directory and the shared storage"
        }
    }

    public var description: String { "\(path): \(operation) failed: \(reason); \(hint)" }
}
