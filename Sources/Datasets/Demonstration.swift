// A prompt with one response to imitate (supervised fine-tuning).

import Tokenizers

/// A response worth imitating: a safe answer to a harmful instruction (safety-tuned-llamas), a helpful
/// answer (AlpacaEval outputs, CoCoNot's chosen answers). Supervised fine-tuning learns `response`.
public struct Demonstration: Equatable, Sendable {
    public var id: String
    public var prompt: [ChatMessage]
    public var promptText: String?
    public var response: String
    /// Who wrote the response (AlpacaEval's generator, the source's model), when the source says.
    public var model: String?
    /// A category from the source (CoCoNot's subcategory, AlpacaEval's dataset).
    public var category: String?
    public var source: SourceLocation

    public init(id: String, prompt: [ChatMessage], promptText: String? = nil, response: String, model: String? = nil,
                category: String? = nil, source: SourceLocation) {
        self.id = id
        self.prompt = prompt
        self.promptText = promptText
        self.response = response
        self.model = model
        self.category = category
        self.source = source
    }
}
