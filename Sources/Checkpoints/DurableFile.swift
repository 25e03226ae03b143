// Crash-safe file writes: write to `<name>.tmp-<pid>`, fsync, rename over `<name>`, fsync the directory.

import Foundation

/// Atomic, durable file replacement on local or shared storage.
///
/// A reader sees either the old file or the complete new one, never a partial write: bytes go to
/// `<name>.tmp-<pid>` first, are fsynced, the temporary is renamed over `<name>`, and the directory is
/// fsynced so the rename survives a crash. A failed write removes its temporary file; a crash leaves a
/// stale `.tmp-` file that readers ignore (`isTemporaryName`) and `CheckpointStore.finalize` removes.
public enum DurableFile {
    /// The temporary name used while writing `url`: `<name>.tmp-<pid>` in the same directory.
    public static func temporaryURL(for url: URL) -> URL {
        url.deletingLastPathComponent().appendingPathComponent("\(url.lastPathComponent).tmp-\(getpid())")
    }

    /// Whether `name` is a temporary name made by `temporaryURL(for:)` (`….tmp-<digits>`).
    public static func isTemporaryName(_ name: String) -> Bool {
        guard let r = name.range(of: ".tmp-", options: .backwards) else { return false }
        let pid = name[r.upperBound...]
        return !pid.isEmpty && pid.allSatisfy(\.isASCII) && pid.allSatisfy(\.isNumber)
    }

    /// Atomically replaces `url` with `data`.
    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { sink in try data.withUnsafeBytes { try sink.write($0) } }
    }

    /// Atomically replaces `url` with whatever `body` writes to the sink; returns `body`'s result.
    @discardableResult
    public static func write<T>(to url: URL, _ body: (FileSink) throws -> T) throws -> T {
        let tmp = temporaryURL(for: url)
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CheckpointIOError(path: tmp.path, operation: "create", errno: errno) }
        let sink = FileSink(fd: fd, path: tmp.path)
        do {
            let result = try body(sink)
            guard fsync(fd) == 0 else { throw CheckpointIOError(path: tmp.path, operation: "fsync", errno: errno) }
            sink.closed = true
            // Shared file systems may report deferred write errors only at close.
            guard close(fd) == 0 else { throw CheckpointIOError(path: tmp.path, operation: "close", errno: errno) }
            guard rename(tmp.path, url.path) == 0 else {
                throw CheckpointIOError(path: tmp.path, operation: "rename to \(url.lastPathComponent)", errno: errno)
            }
            try syncDirectory(url.deletingLastPathComponent())
            return result
        } catch {
            if !sink.closed { close(fd) }
            unlink(tmp.path)
            throw error
        }
    }

    /// Fsyncs a directory so renames and new entries in it are durable.
    ///
    /// File systems that cannot fsync a directory (`EINVAL`, `ENOTSUP`, `EBADF`) are tolerated: there
    /// the rename's own ordering is all that can be had.
    public static func syncDirectory(_ url: URL) throws {
        let fd = open(url.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointIOError(path: url.path, operation: "open directory", errno: errno) }
        defer { close(fd) }
        if fsync(fd) != 0 {
            let e = errno
            if e == EINVAL || e == ENOTSUP || e == EBADF || e == EOPNOTSUPP { return }
            throw CheckpointIOError(path: url.path, operation: "fsync directory", errno: e)
        }
    }
}

/// The open temporary file handed to `DurableFile.write(to:_:)`'s body.
public final class FileSink {
    let fd: Int32
    /// The temporary file's path (for messages).
    public let path: String
    var closed = false
    /// Bytes written so far.
    public private(set) var bytesWritten = 0

    init(fd: Int32, path: String) { self.fd = fd; self.path = path }

    /// Writes all of `bytes`, retrying short writes and `EINTR`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = posixWrite(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                throw CheckpointIOError(path: path, operation: "write", errno: errno)
            }
            p += n; left -= n; bytesWritten += n
        }
    }

    /// Writes the bytes of `data`.
    public func write(_ data: Data) throws {
        try data.withUnsafeBytes { try write($0) }
    }
}

/// `write(2)`, reachable from inside `FileSink.write` (whose name shadows it).
private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ count: Int) -> Int { write(fd, p, count) }
