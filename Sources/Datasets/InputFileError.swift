// The error of a user's input file that is not a dataset row: a prompt set, a file of rows to score.

/// A user's input file that cannot be used (a row to score, a prompt set): the file, the line when one
/// line is at fault, and what to do.
public struct InputFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file (or model) at fault.
    public let file: String
    /// The 1-based line of the row at fault, if one row is.
    public let line: Int?
    public let message: String

    public init(file: String, line: Int? = nil, _ message: String) {
        self.file = file; self.line = line; self.message = message
    }

    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}
