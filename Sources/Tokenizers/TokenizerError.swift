// Typed errors of tokenizer loading and chat-template rendering.

/// A vocabulary, tokenizer file or chat template could not be used.
///
/// The message names the source (file or metadata key), the field and what to do.
public struct TokenizerError: Error, Equatable, CustomStringConvertible, Sendable {
    /// What went wrong, coarsely.
    public enum Kind: String, Equatable, Sendable {
        /// A required field (metadata key, JSON member) is missing.
        case missingField
        /// A field has the wrong type or an invalid value.
        case invalidValue
        /// The tokenizer uses a model or pre-tokenizer this module does not implement.
        case unsupported
        /// A file could not be read.
        case io
    }

    /// The coarse failure class.
    public let kind: Kind
    /// Where the problem is: a file path, `gguf metadata` or `chat template`.
    public let source: String
    /// What was expected or found, and what to do about it.
    public let message: String

    public init(_ kind: Kind, source: String, _ message: String) {
        self.kind = kind
        self.source = source
        self.message = message
    }

    public var description: String { "tokenizer \(source): \(message)" }
}
