// A checkpoint being written: where its files go and how to write them crash-safely.

import Foundation
import Formats

/// A checkpoint directory opened by `CheckpointStore.beginCheckpoint(step:)`, not yet finalized.
///
/// Each write goes to `<name>.tmp-<pid>`, is fsynced, renamed to `<name>` and the directory fsynced.
public struct PendingCheckpoint: Sendable {
    /// The step being saved.
    public let step: Int
    /// The checkpoint directory.
    public let directory: URL

    /// The final location of file `name`; throws if the name is reserved, temporary or a path.
    public func url(for name: String) throws -> URL {
        guard CheckpointStore.isValidFileName(name) else {
            throw CheckpointStoreError(path: directory.path, message: "file name \(SafetensorsHeader.quote(name)) is not allowed (empty, a path, \(CheckpointStore.doneMarker), \(CheckpointStore.manifestName) or a .tmp- name); rename the file")
        }
        return directory.appendingPathComponent(name)
    }

    /// Writes `bytes` to file `name` atomically and durably; returns its size and checksum.
    @discardableResult
    public func writeFile(name: String, bytes: Data) throws -> FileChecksum {
        try DurableFile.write(bytes, to: try url(for: name))
        return FileChecksum(size: bytes.count, xxh64: XXH64.hash(bytes))
    }

    /// Writes file `name` atomically and durably from whatever `body` writes to the sink.
    @discardableResult
    public func writeFile<T>(name: String, _ body: (FileSink) throws -> T) throws -> T {
        try DurableFile.write(to: try url(for: name), body)
    }

    /// Writes a tensor archive (`TensorArchive.write`) as file `name` atomically and durably.
    @discardableResult
    public func writeArchive(name: String, tensors: [TensorArchive.Tensor], metadata: [String: String] = [:],
                             shuffle: Bool = true, level: Int = TensorArchive.defaultLevel, workers: Int = 0) throws -> ArchiveStats {
        try TensorArchive.write(tensors: tensors, metadata: metadata, to: try url(for: name),
                                shuffle: shuffle, level: level, workers: workers)
    }
}
