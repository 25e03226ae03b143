// The checkpoint protocol over a run directory: layout, starting a checkpoint, and finalizing it.

import Foundation
import Formats

/// Checkpoints on (shared) storage: `<run>/step-00001200/` directories made complete by a `DONE` marker.
///
/// A checkpoint directory holds the caller's files, `manifest.json` (every file's size and XXH64 plus the
/// caller's free-form fields) and, written last, `DONE` (which records the manifest's XXH64). Every file is
/// written to `<name>.tmp-<pid>`, fsynced, renamed and the directory fsynced (`DurableFile`), so a crash at
/// any point leaves either a complete checkpoint or a directory without `DONE`, which readers ignore.
///
/// Writing, with MPI (the caller owns the communicator; this type knows nothing of MPI):
/// 1. every rank: `let pending = try store.beginCheckpoint(step: s)` (creating the directory is idempotent);
/// 2. every rank writes its own files (distinct names): `pending.writeFile(name:bytes:)` or
///    `pending.writeArchive(name:tensors:…)`;
/// 3. **barrier** — every rank's files are renamed into place before anyone finalizes;
/// 4. rank 0 only: `store.finalize(step: s, files: allNames, fields: …)`: checksums the files as stored,
///    writes `manifest.json`, then `DONE`, then applies keep-last-k retention;
/// 5. barrier again if other ranks may read checkpoints next.
///
/// Resuming: rank 0 calls `latestValidCheckpoint()`, logs `problems`, broadcasts the step, and calls
/// `discardCheckpoints(after:)` so checkpoints from the abandoned future (corrupt, or newer than the
/// resume point) cannot be mistaken for current ones; `beginCheckpoint` refuses to reopen a complete step.
///
/// Retention never deletes the previous complete checkpoint before the new one has `DONE`: it runs only at
/// the end of `finalize`, keeps the newest `keepLast` complete checkpoints, and removes incomplete
/// directories older than the newest complete one. Deletion removes `DONE` first.
public struct CheckpointStore: Sendable {
    /// The run directory holding the `step-…` directories.
    public let runDirectory: URL
    /// How many complete checkpoints retention keeps (at least 1).
    public let keepLast: Int

    /// The completion marker's file name.
    public static let doneMarker = "DONE"
    /// The manifest's file name.
    public static let manifestName = "manifest.json"

    /// A store over `runDirectory` (created on the first `beginCheckpoint`).
    public init(runDirectory: URL, keepLast: Int = 2) throws {
        guard keepLast >= 1 else {
            throw CheckpointStoreError(path: runDirectory.path, message: "keepLast is \(keepLast); keep at least 1 checkpoint")
        }
        self.runDirectory = runDirectory
        self.keepLast = keepLast
    }

    // MARK: - Layout

    /// `step-` and the step zero-padded to 8 digits (more digits past 99,999,999).
    public static func directoryName(step: Int) -> String {
        let digits = String(step)
        return "step-" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    /// The step a directory name encodes, or nil if it is not a checkpoint directory name.
    public static func step(fromDirectoryName name: String) -> Int? {
        guard name.hasPrefix("step-") else { return nil }
        let digits = name.dropFirst(5)
        guard digits.count >= 8, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }

    /// The directory of checkpoint `step`.
    public func directory(step: Int) -> URL {
        runDirectory.appendingPathComponent(Self.directoryName(step: step), isDirectory: true)
    }

    /// Whether `name` may be used for a checkpoint file: a plain name that is not reserved or temporary.
    public static func isValidFileName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0")
            && name != doneMarker && name != manifestName && !DurableFile.isTemporaryName(name)
    }

    /// One checkpoint directory found in the run directory.
    public struct Listing: Sendable, Equatable {
        public let step: Int
        public let directory: URL
        /// Whether `DONE` exists (not whether the files are intact; see `verify(step:)`).
        public let isComplete: Bool
    }

    /// The checkpoint directories, oldest first; empty when the run directory does not exist yet.
    public func listCheckpoints() throws -> [Listing] {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: runDirectory.path, isDirectory: &isDir) else { return [] }
        guard isDir.boolValue else {
            throw CheckpointStoreError(path: runDirectory.path, message: "the run directory is a file; point the run at a directory")
        }
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: runDirectory.path)
        } catch {
            throw CheckpointIOError(path: runDirectory.path, operation: "list directory", reason: error.localizedDescription)
        }
        var out: [Listing] = []
        for name in names {
            guard let step = Self.step(fromDirectoryName: name) else { continue }
            let dir = runDirectory.appendingPathComponent(name, isDirectory: true)
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else { continue }
            let done = fm.fileExists(atPath: dir.appendingPathComponent(Self.doneMarker).path)
            out.append(Listing(step: step, directory: dir, isComplete: done))
        }
        return out.sorted { $0.step < $1.step }
    }

    // MARK: - Writing

    /// Creates (or reopens) the directory for checkpoint `step`; every rank may call it.
    ///
    /// Throws if `step` already holds a complete checkpoint: a run that resumed from an earlier step must call
    /// `discardCheckpoints(after:)` first (or skip saving the step it resumed from).
    public func beginCheckpoint(step: Int) throws -> PendingCheckpoint {
        guard step >= 0 else {
            throw CheckpointStoreError(path: runDirectory.path, message: "step \(step) is negative; checkpoint steps start at 0")
        }
        let dir = directory(step: step)
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw CheckpointIOError(path: dir.path, operation: "create directory", reason: error.localizedDescription)
        }
        if FileManager.default.fileExists(atPath: dir.appendingPathComponent(Self.doneMarker).path) {
            throw CheckpointStoreError(path: dir.path, message: "already holds a complete checkpoint; after resuming from an earlier step call discardCheckpoints(after:) first, or skip saving this step")
        }
        try DurableFile.syncDirectory(runDirectory)
        return PendingCheckpoint(step: step, directory: dir)
    }

    /// What `finalize` did.
    public struct Finalization: Sendable {
        /// The manifest written.
        public let manifest: CheckpointManifest
        /// The checkpoint directory, now complete.
        public let directory: URL
        /// What retention removed afterwards (and any removal that failed; the new checkpoint is complete regardless).
        public let retention: RetentionReport
    }

    /// Completes checkpoint `step`: checksums `files` as stored, writes `manifest.json`, then `DONE`, then
    /// applies retention. Call on rank 0 only, after a barrier that follows every rank's writes.
    ///
    /// Stale `.tmp-<pid>` files in the directory (from an interrupted earlier attempt) are removed.
    /// - Parameter fields: the caller's free-form manifest fields (step details, config hash, world size, …).
    @discardableResult
    public func finalize(step: Int, files: [String], fields: [String: ManifestValue] = [:]) throws -> Finalization {
        let dir = directory(step: step)
        let fm = FileManager.default
        guard fm.fileExists(atPath: dir.path) else {
            throw CheckpointStoreError(path: dir.path, message: "the checkpoint directory does not exist; call beginCheckpoint(step:) and write the files first")
        }
        guard !fm.fileExists(atPath: dir.appendingPathComponent(Self.doneMarker).path) else {
            throw CheckpointStoreError(path: dir.path, message: "is already complete (DONE exists); finalize each checkpoint once, on rank 0")
        }
        var records: [String: CheckpointManifest.FileRecord] = [:]
        for name in files {
            guard Self.isValidFileName(name) else {
                throw CheckpointStoreError(path: dir.path, message: "file name \(SafetensorsHeader.quote(name)) is not allowed (reserved, temporary or a path)")
            }
            guard records[name] == nil else {
                throw CheckpointStoreError(path: dir.path, message: "file \(name) is listed twice; list each file once")
            }
            let url = dir.appendingPathComponent(name)
            guard fm.fileExists(atPath: url.path) else {
                throw CheckpointStoreError(path: url.path, message: "is listed for the manifest but does not exist; every rank must finish writing (and the caller must barrier) before rank 0 finalizes")
            }
            records[name] = CheckpointManifest.FileRecord(try FileChecksum(contentsOf: url))
        }
        removeTemporaryFiles(in: dir)
        let manifest = CheckpointManifest(step: step, files: records, fields: fields)
        let manifestBytes = try manifest.encoded()
        try DurableFile.write(manifestBytes, to: dir.appendingPathComponent(Self.manifestName))
        let marker = "xxh64 \(XXH64.hex(XXH64.hash(manifestBytes)))\n"
        try DurableFile.write(Data(marker.utf8), to: dir.appendingPathComponent(Self.doneMarker))
        try DurableFile.syncDirectory(runDirectory)
        let retention: RetentionReport
        do {
            retention = try applyRetention()
        } catch {
            retention = RetentionReport(removedSteps: [], failures: ["retention skipped: \(error)"])
        }
        return Finalization(manifest: manifest, directory: dir, retention: retention)
    }

    /// Deletes leftover `<name>.tmp-<pid>` files in `dir` (best effort).
    func removeTemporaryFiles(in dir: URL) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return }
        for name in names where DurableFile.isTemporaryName(name) {
            unlink(dir.appendingPathComponent(name).path)
        }
    }
}
