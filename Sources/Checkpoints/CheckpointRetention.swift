// Keep-last-k retention and explicit discarding of checkpoint directories.

import Foundation

/// What a retention pass (or a discard) removed, and what it could not remove.
public struct RetentionReport: Sendable, Equatable {
    /// Steps whose directories were deleted.
    public let removedSteps: [Int]
    /// Log lines for directories that could not be deleted (the run continues; delete them by hand).
    public let failures: [String]

    public init(removedSteps: [Int], failures: [String]) { self.removedSteps = removedSteps; self.failures = failures }
}

extension CheckpointStore {
    /// Keeps the newest `keepLast` complete checkpoints and deletes older complete ones, plus incomplete
    /// directories older than the newest complete one. Deletes nothing when no checkpoint is complete.
    ///
    /// `finalize` calls this after `DONE` is durable; calling it at other times is safe (rank 0 only).
    @discardableResult
    public func applyRetention() throws -> RetentionReport {
        let listing = try listCheckpoints()
        let complete = listing.filter(\.isComplete).map(\.step)
        guard let newest = complete.max() else { return RetentionReport(removedSteps: [], failures: []) }
        let kept = Set(complete.sorted().suffix(keepLast))
        return remove(listing.filter { $0.step < newest && !kept.contains($0.step) })
    }

    /// Deletes every checkpoint directory newer than `step` (complete or not); rank 0 calls this after
    /// resuming from `step`, so corrupt or abandoned newer checkpoints cannot be picked up later.
    @discardableResult
    public func discardCheckpoints(after step: Int) throws -> RetentionReport {
        remove(try listCheckpoints().filter { $0.step > step })
    }

    /// Deletes directories, `DONE` first (made durable) so a half-deleted directory is never complete.
    private func remove(_ victims: [Listing]) -> RetentionReport {
        var removed: [Int] = [], failures: [String] = []
        for v in victims {
            let done = v.directory.appendingPathComponent(Self.doneMarker)
            if unlink(done.path) != 0 && errno != ENOENT {
                failures.append(CheckpointIOError(path: done.path, operation: "remove", errno: errno).description)
                continue
            }
            do {
                try DurableFile.syncDirectory(v.directory)
                try FileManager.default.removeItem(at: v.directory)
                removed.append(v.step)
            } catch {
                failures.append("\(v.directory.path): could not remove (\(error)); delete it by hand")
            }
        }
        if !removed.isEmpty { try? DurableFile.syncDirectory(runDirectory) }
        return RetentionReport(removedSteps: removed, failures: failures)
    }
}
