// Checking checkpoints on load: verify one step, or find the newest one that is intact.

import Foundation
import Formats

/// A complete checkpoint whose every manifest file exists with the recorded size and checksum.
public struct ValidCheckpoint: Sendable, Equatable {
    public let step: Int
    public let directory: URL
    public let manifest: CheckpointManifest

    /// The caller's free-form manifest fields.
    public var fields: [String: ManifestValue] { manifest.fields }

    /// The location of file `name` in the checkpoint.
    public func url(for name: String) -> URL { directory.appendingPathComponent(name) }
}

/// The result of verifying one checkpoint directory.
public struct CheckpointVerification: Sendable {
    public let step: Int
    /// The checkpoint, when it is valid.
    public let checkpoint: ValidCheckpoint?
    /// Everything wrong with it (empty when valid).
    public let problems: [CheckpointProblem]
    public var isValid: Bool { checkpoint != nil }
}

/// The checkpoint to resume from, and why newer directories were passed over.
public struct CheckpointSelection: Sendable {
    /// The newest valid checkpoint, or nil (start from scratch).
    public let checkpoint: ValidCheckpoint?
    /// Problems with newer directories, each with its outcome filled in.
    public let problems: [CheckpointProblem]
    /// `problems` as log lines.
    public var logLines: [String] { problems.map(\.description) }
}

extension CheckpointStore {
    /// Verifies checkpoint `step`: `DONE` present and matching the manifest, manifest parses, and every listed
    /// file exists with the recorded size and XXH64 (reads every file). Files not in the manifest (such as
    /// stale `.tmp-` files) are ignored. Never throws: every failure is a problem naming the file.
    public func verify(step: Int) -> CheckpointVerification {
        let dir = directory(step: step)
        let fm = FileManager.default
        func result(_ problems: [CheckpointProblem], _ checkpoint: ValidCheckpoint? = nil) -> CheckpointVerification {
            CheckpointVerification(step: step, checkpoint: checkpoint, problems: problems)
        }
        func problem(_ file: String?, _ kind: CheckpointProblem.Kind) -> CheckpointProblem {
            CheckpointProblem(step: step, file: file, kind: kind)
        }
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            return result([problem(nil, .directoryMissing)])
        }
        guard let marker = fm.contents(atPath: dir.appendingPathComponent(Self.doneMarker).path) else {
            return result([problem(nil, .incomplete)])
        }
        let manifestURL = dir.appendingPathComponent(Self.manifestName)
        guard fm.fileExists(atPath: manifestURL.path) else { return result([problem(Self.manifestName, .manifestMissing)]) }
        guard let manifestBytes = fm.contents(atPath: manifestURL.path) else {
            return result([problem(Self.manifestName, .manifestUnreadable("cannot read the file; check permissions"))])
        }
        let markerText = String(decoding: marker, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let actual = XXH64.hex(XXH64.hash(manifestBytes))
        guard markerText.hasPrefix("xxh64 ") else {
            return result([problem(Self.doneMarker, .unreadable("the DONE marker does not record the manifest checksum"))])
        }
        let expected = String(markerText.dropFirst(6))
        guard expected == actual else {
            return result([problem(Self.manifestName, .manifestChecksumMismatch(expected: expected, got: actual))])
        }
        let manifest: CheckpointManifest
        do {
            manifest = try CheckpointManifest.decode(manifestBytes)
        } catch {
            return result([problem(Self.manifestName, .manifestUnreadable("not a valid manifest: \(error)"))])
        }
        guard manifest.format == CheckpointManifest.currentFormat else {
            return result([problem(Self.manifestName, .manifestUnreadable("unknown format \(manifest.format); written by a newer dualign"))])
        }
        guard manifest.step == step else { return result([problem(Self.manifestName, .stepMismatch(manifestStep: manifest.step))]) }

        var problems: [CheckpointProblem] = []
        for name in manifest.files.keys.sorted() {
            let record = manifest.files[name]!
            guard Self.isValidFileName(name) else {
                problems.append(problem(Self.manifestName, .manifestUnreadable("lists the invalid file name \(SafetensorsHeader.quote(name))")))
                continue
            }
            let url = dir.appendingPathComponent(name)
            var st = stat()
            guard stat(url.path, &st) == 0 else {
                let e = errno
                problems.append(problem(name, e == ENOENT ? .fileMissing : .unreadable(String(cString: strerror(e)))))
                continue
            }
            let size = Int(st.st_size)
            if size < record.bytes { problems.append(problem(name, .truncated(expectedBytes: record.bytes, actualBytes: size))); continue }
            if size > record.bytes { problems.append(problem(name, .sizeMismatch(expectedBytes: record.bytes, actualBytes: size))); continue }
            do {
                let sum = try FileChecksum(contentsOf: url)
                let got = XXH64.hex(sum.xxh64)
                if sum.size != record.bytes {
                    problems.append(problem(name, .sizeMismatch(expectedBytes: record.bytes, actualBytes: sum.size)))
                } else if got != record.xxh64.lowercased() {
                    problems.append(problem(name, .checksumMismatch(expected: record.xxh64, got: got)))
                }
            } catch let e as CheckpointIOError {
                problems.append(problem(name, .unreadable(e.reason)))
            } catch {
                problems.append(problem(name, .unreadable("\(error)")))
            }
        }
        guard problems.isEmpty else { return result(problems) }
        return result([], ValidCheckpoint(step: step, directory: dir, manifest: manifest))
    }

    /// The newest complete checkpoint that verifies, plus a problem (log line) for every newer directory
    /// passed over: incomplete ones, and complete ones with a missing, truncated or corrupt file.
    ///
    /// Throws only when the run directory exists but cannot be listed; a missing run directory means no
    /// checkpoint. Reads every file of each checkpoint it verifies.
    public func latestValidCheckpoint() throws -> CheckpointSelection {
        var problems: [CheckpointProblem] = []
        for entry in try listCheckpoints().reversed() {
            guard entry.isComplete else {
                problems.append(CheckpointProblem(step: entry.step, file: nil, kind: .incomplete))
                continue
            }
            let v = verify(step: entry.step)
            if let checkpoint = v.checkpoint {
                for i in problems.indices { problems[i].outcome = .fallingBackTo(step: checkpoint.step) }
                return CheckpointSelection(checkpoint: checkpoint, problems: problems)
            }
            problems += v.problems
        }
        for i in problems.indices { problems[i].outcome = .noValidCheckpoint }
        return CheckpointSelection(checkpoint: nil, problems: problems)
    }
}
