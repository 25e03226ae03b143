// A prompt with a preferred and a dispreferred response.

import Tokenizers

/// Which property a preference is about.
public enum PreferenceAspect: String, Sendable, Codable, CaseIterable {
    /// Unspecified (TRL files and anything that does not say).
    case general
    /// More helpful ≻ less helpful (PKU `better_response_id`; XSTest safe prompts: compliance ≻ refusal).
    case helpfulness
    /// Less harmful ≻ more harmful (HH-RLHF harmless, PKU `safer_response_id`, XSTest unsafe prompts, PyRIT).
    case harmlessness
}

/// One preference: `chosen` ≻ `rejected` for the conversation `prompt`.
public struct PreferencePair: Equatable, Sendable {
    /// A stable identifier (file name and line, or the source's own ids), used for held-out splits.
    public var id: String
    /// The conversation before the response, ending with a user turn (plain-text prompts become one user message).
    public var prompt: [ChatMessage]
    /// The prompt as plain text when the source gives it so (HH-RLHF: the dialogue up to and
    /// including the last `\n\nAssistant:`; TRL/PKU text prompts), else nil.
    public var promptText: String?
    /// The preferred response (assistant text, surrounding whitespace trimmed).
    public var chosen: String
    /// The dispreferred response.
    public var rejected: String
    /// What the preference is about.
    public var aspect: PreferenceAspect
    /// The row of the chosen response.
    public var source: SourceLocation
    /// The row of the rejected response when it comes from another row (XSTest, PyRIT), else nil.
    public var rejectedSource: SourceLocation?
    /// The source's category of the prompt (CoCoNot's subcategory, JailbreakBench's category), else nil.
    public var category: String?

    public init(id: String, prompt: [ChatMessage], promptText: String? = nil, chosen: String, rejected: String,
                aspect: PreferenceAspect = .general, source: SourceLocation, rejectedSource: SourceLocation? = nil,
                category: String? = nil) {
        self.id = id
        self.prompt = prompt
        self.promptText = promptText
        self.chosen = chosen
        self.rejected = rejected
        self.aspect = aspect
        self.source = source
        self.rejectedSource = rejectedSource
        self.category = category
    }

    /// A key that is equal for pairs with the same prompt (used to keep a prompt's pairs in one split).
    public var promptKey: String { promptText ?? PromptRecord.key(for: prompt) }
}
