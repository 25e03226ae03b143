// A prompt and one response with numeric scores and/or a safety label.

import Tokenizers

/// One response with its scores: for reward/cost regression, KTO-style rows, and MoCAN's offline
/// score tables. Any of `reward`, `cost`, `isSafe` may be absent.
public struct ScoredResponse: Equatable, Sendable {
    public var id: String
    public var prompt: [ChatMessage]
    public var promptText: String?
    public var response: String
    /// Helpfulness reward (higher is better).
    public var reward: Double?
    /// Harm cost (higher is more harmful; PyRIT: the mean human harm score in [0, 1]).
    public var cost: Double?
    /// Safety label (PKU `is_response_i_safe`, or a `is_safe` column).
    public var isSafe: Bool?
    public var source: SourceLocation

    public init(id: String, prompt: [ChatMessage], promptText: String? = nil, response: String,
                reward: Double? = nil, cost: Double? = nil, isSafe: Bool? = nil, source: SourceLocation) {
        self.id = id
        self.prompt = prompt
        self.promptText = promptText
        self.response = response
        self.reward = reward
        self.cost = cost
        self.isSafe = isSafe
        self.source = source
    }
}
