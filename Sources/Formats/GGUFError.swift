// Typed errors of the GGUF reader, writer and dequantizer.

/// A GGUF file could not be read, written or dequantized.
///
/// The message names the file, the byte offset (when one applies), what was found and what to do.
/// `kind` lets callers and tests branch on the failure without parsing the message.
public struct GGUFError: Error, Equatable, CustomStringConvertible, Sendable {
    /// What went wrong, coarsely.
    public enum Kind: String, Equatable, Sendable {
        /// The file could not be opened, mapped or written.
        case io
        /// The file ended before a field that the format requires.
        case truncated
        /// The first four bytes are not `GGUF`.
        case badMagic
        /// The version is not 2 or 3 (or the file is big-endian).
        case unsupportedVersion
        /// A field holds a value the format forbids (unknown value type, bad alignment, duplicate key...).
        case invalidValue
        /// A count or length is larger than the file could possibly hold.
        case tooLarge
        /// A tensor's data lies (partly) outside the file.
        case tensorOutOfBounds
        /// The tensor type is known but this reader cannot dequantize it, or the type id is unknown.
        case unsupportedTensorType
        /// No tensor of the requested name exists.
        case tensorNotFound
        /// A writer argument is inconsistent (shape vs element count, unsupported output type).
        case invalidArgument
    }

    /// The coarse failure class.
    public let kind: Kind
    /// The file path (or a description such as `<memory>` for in-memory bytes).
    public let file: String
    /// The byte offset in the file where the problem was found, when one applies.
    public let offset: Int?
    /// What was expected or found, and what to do about it.
    public let message: String

    /// Creates an error; `message` should say what was expected and what to do.
    public init(_ kind: Kind, file: String, offset: Int? = nil, _ message: String) {
        self.kind = kind
        self.file = file
        self.offset = offset
        self.message = message
    }

    public var description: String {
        if let offset {
            return "GGUF \(file): at byte offset \(offset): \(message)"
        }
        return "GGUF \(file): \(message)"
    }
}
