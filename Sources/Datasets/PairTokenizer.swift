// Rendering pairs with a chat template and truncating them as TRL does.

import Tokenizers

/// Why tokenization dropped a pair.
public enum TokenizationDrop: String, Error, Sendable, Equatable {
    /// A response has no token left (besides the end-of-turn token) — its text was empty.
    case emptyResponse
    /// The prompt (after left-truncation to `maxPromptLength`) leaves no room for a response
    /// within `maxLength`.
    case promptTooLong
}

/// Truncation limits, in tokens (a config section; both optional).
public struct TruncationLimits: Equatable, Sendable, Codable {
    /// Maximum prompt + response length (nil: unlimited).
    public var maxLength: Int?
    /// Maximum prompt length; longer prompts keep their END (nil: only `maxLength` applies).
    public var maxPromptLength: Int?

    public init(maxLength: Int? = nil, maxPromptLength: Int? = nil) {
        self.maxLength = maxLength
        self.maxPromptLength = maxPromptLength
    }

    /// Checks the limits, naming the one to change.
    public func validate() throws {
        if let maxLength, maxLength < 2 {
            throw DatasetError(.invalidConfiguration, file: "truncation", field: "maxLength",
                               "maxLength is \(maxLength); it must be at least 2 (one prompt and one response token), typically 512 or 1024")
        }
        if let maxPromptLength, maxPromptLength < 1 {
            throw DatasetError(.invalidConfiguration, file: "truncation", field: "maxPromptLength",
                               "maxPromptLength is \(maxPromptLength); use a positive number or leave it out")
        }
        if let maxLength, let maxPromptLength, maxPromptLength >= maxLength {
            throw DatasetError(.invalidConfiguration, file: "truncation", field: "maxPromptLength",
                               "maxPromptLength (\(maxPromptLength)) must be smaller than maxLength (\(maxLength)) to leave room for the response; TRL's defaults are 128 and 512")
        }
    }
}

/// Tokenizes pairs with a chat template and applies TRL's truncation rules:
///
/// 1. A prompt longer than `maxPromptLength` keeps its last `maxPromptLength` tokens
///    (left truncation: the latest turns and the assistant opening survive; BOS and the system
///    prompt may be cut, as in TRL).
/// 2. If the prompt then leaves no room for one response token within `maxLength`, the pair is
///    dropped (`promptTooLong`).
/// 3. Each response keeps its first `maxLength − promptLength` tokens (right truncation; the
///    end-of-turn token is lost when a response is cut).
/// 4. A pair with a response that has no token besides the end-of-turn token is dropped
///    (`emptyResponse`).
/// Both responses of a pair share the same (truncated) prompt.
public struct PairTokenizer: Sendable {
    public let template: ChatTemplate
    public let limits: TruncationLimits

    /// - Throws: `DatasetError.invalidConfiguration` for invalid limits.
    public init(template: ChatTemplate, limits: TruncationLimits = TruncationLimits()) throws {
        try limits.validate()
        self.template = template
        self.limits = limits
    }

    /// The outcome of truncating one prompt with its responses.
    public struct Truncated: Equatable, Sendable {
        public var prompt: [Int]
        public var responses: [[Int]]
        public var promptWasTruncated: Bool
        public var responseWasTruncated: Bool
    }

    /// Applies the truncation rules to token ids. `responses` are the full response tokens
    /// including the end-of-turn token (as `ChatTemplate.responseTokens` returns them).
    public func truncate(prompt: [Int], responses: [[Int]]) -> Result<Truncated, TokenizationDrop> {
        var prompt = prompt
        var promptWasTruncated = false
        if let maxPrompt = limits.maxPromptLength, prompt.count > maxPrompt {
            prompt = Array(prompt.suffix(maxPrompt))
            promptWasTruncated = true
        }
        var responses = responses
        var responseWasTruncated = false
        if let maxLength = limits.maxLength {
            let budget = maxLength - prompt.count
            guard budget >= 1 else { return .failure(.promptTooLong) }
            for i in responses.indices where responses[i].count > budget {
                responses[i] = Array(responses[i].prefix(budget))
                responseWasTruncated = true
            }
        }
        let eot = template.endOfTurnID
        for r in responses {
            let content = r.last == eot ? r.count - 1 : r.count
            if content <= 0 { return .failure(.emptyResponse) }
        }
        return .success(Truncated(prompt: prompt, responses: responses,
                                  promptWasTruncated: promptWasTruncated, responseWasTruncated: responseWasTruncated))
    }

    /// Tokenizes one pair, or tells why it is dropped.
    public func tokenize(_ pair: PreferencePair) -> Result<TokenizedPair, TokenizationDrop> {
        tokenize(pair, chosenIsSafe: nil, rejectedIsSafe: nil).map(\.pair)
    }

    /// Tokenizes pairs, dropping and counting those the rules reject, and counting truncations in `report`.
    public func tokenize(_ pairs: [PreferencePair], report: inout LoadReport) -> [TokenizedPair] {
        collect(pairs.map { tokenize($0, chosenIsSafe: nil, rejectedIsSafe: nil) }, report: &report)
    }

    /// Tokenizes safety pairs (chosen = safer, with both safety labels).
    public func tokenize(_ pairs: [SafetyPair], report: inout LoadReport) -> [TokenizedPair] {
        collect(pairs.map { tokenize($0.preferencePair, chosenIsSafe: $0.saferIsSafe, rejectedIsSafe: $0.unsaferIsSafe,
                                     ranked: $0.ranked) }, report: &report)
    }

    /// Tokenizes scored responses with the same rules (one response per prompt).
    public func tokenize(_ responses: [ScoredResponse], report: inout LoadReport) -> [TokenizedResponse] {
        var out: [TokenizedResponse] = []
        for r in responses {
            let prompt = template.renderPrompt(r.prompt).tokens
            switch truncate(prompt: prompt, responses: [template.responseTokens(r.response)]) {
            case .failure(let drop): count(drop, report: &report)
            case .success(let t):
                if t.promptWasTruncated { report.truncatedPrompts += 1 }
                if t.responseWasTruncated { report.truncatedResponses += 1 }
                out.append(TokenizedResponse(id: r.id, promptTokens: t.prompt, responseTokens: t.responses[0],
                                             reward: r.reward, cost: r.cost, isSafe: r.isSafe, source: r.source))
            }
        }
        report.scoredResponses = out.count
        return out
    }

    private struct Flagged {
        var pair: TokenizedPair
        var promptWasTruncated: Bool
        var responseWasTruncated: Bool
    }

    private func tokenize(_ pair: PreferencePair, chosenIsSafe: Bool?, rejectedIsSafe: Bool?,
                          ranked: Bool = true) -> Result<Flagged, TokenizationDrop> {
        let prompt = template.renderPrompt(pair.prompt).tokens
        let responses = [template.responseTokens(pair.chosen), template.responseTokens(pair.rejected)]
        return truncate(prompt: prompt, responses: responses).map { t in
            Flagged(pair: TokenizedPair(id: pair.id, promptTokens: t.prompt, chosenTokens: t.responses[0],
                                        rejectedTokens: t.responses[1], aspect: pair.aspect,
                                        chosenIsSafe: chosenIsSafe, rejectedIsSafe: rejectedIsSafe, ranked: ranked,
                                        source: pair.source),
                    promptWasTruncated: t.promptWasTruncated, responseWasTruncated: t.responseWasTruncated)
        }
    }

    private func collect(_ results: [Result<Flagged, TokenizationDrop>], report: inout LoadReport) -> [TokenizedPair] {
        var out: [TokenizedPair] = []
        for r in results {
            switch r {
            case .failure(let drop): count(drop, report: &report)
            case .success(let f):
                if f.promptWasTruncated { report.truncatedPrompts += 1 }
                if f.responseWasTruncated { report.truncatedResponses += 1 }
                out.append(f.pair)
            }
        }
        report.pairs = out.count
        return out
    }

    private func count(_ drop: TokenizationDrop, report: inout LoadReport) {
        switch drop {
        case .emptyResponse: report.droppedEmptyResponse += 1
        case .promptTooLong: report.droppedPromptTooLong += 1
        }
    }
}
