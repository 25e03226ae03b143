// The error for a checkpoint protocol step that cannot proceed (as opposed to OS-level I/O failures).

/// A checkpoint store operation that cannot proceed: the path involved, what is wrong and what to do.
public struct CheckpointStoreError: Error, CustomStringConvertible, Sendable {
    /// The run directory, checkpoint directory or file involved.
    public let path: String
    /// What is wrong and what to do.
    public let message: String

    public init(path: String, message: String) { self.path = path; self.message = message }

    public var description: String { "\(path): \(message)" }
}
