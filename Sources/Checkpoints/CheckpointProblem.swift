// One reason a checkpoint directory cannot be used, phrased as a log line.

/// Why a checkpoint directory was skipped, naming the checkpoint and (when one is to blame) the file.
///
/// `description` is a ready log line, e.g.
/// `checkpoint step-00000040: model.safetensors.zst checksum mismatch (expected 3f…, got 9a…); falling back to step-00000020`.
public struct CheckpointProblem: Sendable, Equatable, CustomStringConvertible {
    /// What is wrong.
    public enum Kind: Sendable, Equatable {
        /// The checkpoint directory does not exist.
        case directoryMissing
        /// No `DONE` marker: the write was interrupted (or is still running).
        case incomplete
        /// `DONE` exists but `manifest.json` does not.
        case manifestMissing
        /// `manifest.json` cannot be read or parsed; the reason.
        case manifestUnreadable(String)
        /// `DONE` records a manifest checksum that does not match `manifest.json`.
        case manifestChecksumMismatch(expected: String, got: String)
        /// The manifest names a different step than its directory.
        case stepMismatch(manifestStep: Int)
        /// A file listed in the manifest does not exist.
        case fileMissing
        /// A file is shorter than the manifest says (partial copy or write).
        case truncated(expectedBytes: Int, actualBytes: Int)
        /// A file is longer than the manifest says.
        case sizeMismatch(expectedBytes: Int, actualBytes: Int)
        /// A file's XXH64 differs from the manifest's.
        case checksumMismatch(expected: String, got: String)
        /// A file cannot be read; the reason.
        case unreadable(String)
    }

    /// What happened after the problem was found, when known.
    public enum Outcome: Sendable, Equatable {
        /// An older checkpoint was valid and is used instead.
        case fallingBackTo(step: Int)
        /// No complete checkpoint is valid.
        case noValidCheckpoint
    }

    /// The step of the checkpoint directory with the problem.
    public let step: Int
    /// The file to blame (`manifest.json`, `DONE` or a data file), if any.
    public let file: String?
    /// What is wrong.
    public let kind: Kind
    /// Filled in by `CheckpointStore.latestValidCheckpoint()`.
    public internal(set) var outcome: Outcome?

    public init(step: Int, file: String?, kind: Kind, outcome: Outcome? = nil) {
        self.step = step; self.file = file; self.kind = kind; self.outcome = outcome
    }

    /// The checkpoint directory's name, e.g. `step-00000040`.
    public var directoryName: String { CheckpointStore.directoryName(step: step) }

    public var description: String {
        var what: String
        switch kind {
        case .directoryMissing: what = "the directory does not exist"
        case .incomplete: what = "incomplete (no DONE marker: interrupted or still being written); ignored"
        case .manifestMissing: what = "manifest.json is missing although DONE exists"
        case .manifestUnreadable(let why): what = "manifest.json is unreadable (\(why))"
        case .manifestChecksumMismatch(let e, let g): what = "manifest.json checksum mismatch against DONE (expected \(e), got \(g))"
        case .stepMismatch(let s): what = "manifest.json is for step \(s), not this directory's step"
        case .fileMissing: what = "missing"
        case .truncated(let e, let a): what = "truncated (expected \(e) bytes, found \(a))"
        case .sizeMismatch(let e, let a): what = "size mismatch (expected \(e) bytes, found \(a))"
        case .checksumMismatch(let e, let g): what = "checksum mismatch (expected \(e), got \(g))"
        case .unreadable(let why): what = "unreadable (\(why))"
        }
        if let file, !what.hasPrefix("manifest.json") { what = "\(file) \(what)" }
        var line = "checkpoint \(directoryName): \(what)"
        switch outcome {
        case .fallingBackTo(let s): line += "; falling back to \(CheckpointStore.directoryName(step: s))"
        case .noValidCheckpoint: line += "; no earlier complete checkpoint is valid"
        case nil: break
        }
        return line
    }
}
