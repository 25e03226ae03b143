// A prompt without responses (for sampling, MoCAN's offline scores and evaluation).

import Tokenizers

/// A prompt to generate from, with an optional label (XSTest: `safe` / `unsafe`) and category.
public struct PromptRecord: Equatable, Sendable {
    public var id: String
    public var prompt: [ChatMessage]
    public var promptText: String?
    /// A label from the source, e.g. XSTest's `safe` / `unsafe`.
    public var label: String?
    /// A category from the source, e.g. XSTest's `type` or PyRIT's `harm_category`.
    public var category: String?
    public var source: SourceLocation

    public init(id: String, prompt: [ChatMessage], promptText: String? = nil, label: String? = nil,
                category: String? = nil, source: SourceLocation) {
        self.id = id
        self.prompt = prompt
        self.promptText = promptText
        self.label = label
        self.category = category
        self.source = source
    }

    /// A text key identifying a conversation (roles and contents joined).
    public static func key(for messages: [ChatMessage]) -> String {
        messages.map { "\($0.role.rawValue)\u{1F}\($0.content)" }.joined(separator: "\u{1E}")
    }
}
