// A model's response with the source's own refusal (and harm) verdicts, for judging a refusal classifier.

import Tokenizers

/// One model completion labelled by its source: refused or not, and, when the source judged it,
/// harmful or not. refusal-direction labels every completion by substring matching
/// (`is_jailbreak_substring_matching` = 0: a refusal phrase occurs) and harmful-prompt completions by
/// LlamaGuard 2 (`is_jailbreak_llamaguard2` = 1: unsafe).
public struct LabelledCompletion: Equatable, Sendable {
    public var id: String
    public var prompt: [ChatMessage]
    public var promptText: String?
    /// The response as the labels judged it (not cut).
    public var response: String
    /// The model that wrote it.
    public var model: String
    /// How it was produced (refusal-direction: `baseline`, `ablation`, `actadd`).
    public var intervention: String
    /// Whether the prompt is harmful (refusal-direction: JailbreakBench behaviours) or benign (Alpaca).
    public var promptIsHarmful: Bool
    /// The source's refusal verdict.
    public var refused: Bool
    /// The source's harm verdict, when it gives one.
    public var harmful: Bool?
    /// The prompt's category, when the source gives one.
    public var category: String?
    public var source: SourceLocation

    public init(id: String, prompt: [ChatMessage], promptText: String? = nil, response: String, model: String,
                intervention: String, promptIsHarmful: Bool, refused: Bool, harmful: Bool? = nil,
                category: String? = nil, source: SourceLocation) {
        self.id = id
        self.prompt = prompt
        self.promptText = promptText
        self.response = response
        self.model = model
        self.intervention = intervention
        self.promptIsHarmful = promptIsHarmful
        self.refused = refused
        self.harmful = harmful
        self.category = category
        self.source = source
    }
}
