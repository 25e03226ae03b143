// Typed errors for everything a user can get wrong in a data file or a data configuration.

/// An error in a dataset file or in the options used to read it.
///
/// The message names the file, the 1-based line (of the row's first line for a CSV record that
/// spans several lines), the field, what is wrong and what to do about it.
public struct DatasetError: Error, Equatable, CustomStringConvertible, Sendable {
    /// What kind of problem it is.
    public enum Kind: String, Equatable, Sendable {
        /// The file does not exist or cannot be opened.
        case fileNotFound
        /// Reading the file failed.
        case io
        /// The gzip stream is corrupt or truncated.
        case decompression
        /// A row is not valid JSON / CSV, or not a JSON object.
        case malformedRow
        /// A required field is absent (or the CSV header lacks the column).
        case missingField
        /// A field has the wrong type or an out-of-range value.
        case invalidValue
        /// Labels in one row contradict each other (a "safer" answer labelled unsafe while the other is safe).
        case inconsistentLabels
        /// The options are invalid (bad batch sizes, missing companion file, unknown schema).
        case invalidConfiguration
        /// The file format is not supported for this schema.
        case unsupportedFormat
    }

    public let kind: Kind
    /// The file the problem is in (as given), or a short name of the component for configuration errors.
    public let file: String
    /// The 1-based line of the row, if the problem is in one row.
    public let line: Int?
    /// The field (JSON key or CSV column), if one field is at fault.
    public let field: String?
    /// What is wrong and what to do.
    public let message: String

    public init(_ kind: Kind, file: String, line: Int? = nil, field: String? = nil, _ message: String) {
        self.kind = kind
        self.file = file
        self.line = line
        self.field = field
        self.message = message
    }

    /// `file:line: field 'name': message`.
    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        s += ": "
        if let field { s += "field '\(field)': " }
        return s + message
    }

    /// Whether the error concerns one row only, so `skipInvalidRows` may skip it.
    public var isRowLevel: Bool {
        guard line != nil else { return false }
        switch kind {
        case .malformedRow, .missingField, .invalidValue, .inconsistentLabels: return true
        case .fileNotFound, .io, .decompression, .invalidConfiguration, .unsupportedFormat: return false
        }
    }
}
