// Token ids of a preference pair (or a scored response) ready for the model.

/// A tokenized preference pair: the prompt rendered with a chat template and both responses.
///
/// The model input for the chosen side is `promptTokens + chosenTokens`; log-probabilities are
/// summed over the response positions `responseStart ..< responseStart + chosenTokens.count`.
/// Response tokens end with the template's end-of-turn token unless truncation cut it off.
public struct TokenizedPair: Equatable, Sendable {
    public var id: String
    public var promptTokens: [Int]
    public var chosenTokens: [Int]
    public var rejectedTokens: [Int]
    public var aspect: PreferenceAspect
    /// For safety pairs: the chosen (safer) response's label, else nil.
    public var chosenIsSafe: Bool?
    /// For safety pairs: the rejected (less safe) response's label, else nil.
    public var rejectedIsSafe: Bool?
    /// For safety pairs: false when neither response is less harmful (cost-model sign terms only).
    public var ranked: Bool
    public var source: SourceLocation

    public init(id: String, promptTokens: [Int], chosenTokens: [Int], rejectedTokens: [Int],
                aspect: PreferenceAspect = .general, chosenIsSafe: Bool? = nil, rejectedIsSafe: Bool? = nil,
                ranked: Bool = true, source: SourceLocation) {
        self.id = id
        self.promptTokens = promptTokens
        self.chosenTokens = chosenTokens
        self.rejectedTokens = rejectedTokens
        self.aspect = aspect
        self.chosenIsSafe = chosenIsSafe
        self.rejectedIsSafe = rejectedIsSafe
        self.ranked = ranked
        self.source = source
    }

    /// The index of the first response token in either full sequence.
    public var responseStart: Int { promptTokens.count }
    /// `promptTokens + chosenTokens`.
    public var chosenSequence: [Int] { promptTokens + chosenTokens }
    /// `promptTokens + rejectedTokens`.
    public var rejectedSequence: [Int] { promptTokens + rejectedTokens }
}

/// A tokenized scored response (reward/cost regression, KTO rows, MoCAN score tables).
public struct TokenizedResponse: Equatable, Sendable {
    public var id: String
    public var promptTokens: [Int]
    public var responseTokens: [Int]
    public var reward: Double?
    public var cost: Double?
    public var isSafe: Bool?
    public var source: SourceLocation

    public init(id: String, promptTokens: [Int], responseTokens: [Int], reward: Double? = nil,
                cost: Double? = nil, isSafe: Bool? = nil, source: SourceLocation) {
        self.id = id
        self.promptTokens = promptTokens
        self.responseTokens = responseTokens
        self.reward = reward
        self.cost = cost
        self.isSafe = isSafe
        self.source = source
    }

    /// The index of the first response token in `sequence`.
    public var responseStart: Int { promptTokens.count }
    /// `promptTokens + responseTokens`.
    public var sequence: [Int] { promptTokens + responseTokens }
}
