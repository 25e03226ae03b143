// Chat templates: render conversations to prompt token ids and mark where the response starts.
//
// chatml     <|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n
//            (SmolLM2's template inserts a default system message when the first message is not one)
// safe-rlhf  BEGINNING OF CONVERSATION: USER: {prompt} ASSISTANT:
// hh-rlhf    \n\nHuman: {prompt}\n\nAssistant:
// The response follows the prompt and ends with the end-of-turn token (`<|im_end|>` for ChatML,
// EOS otherwise). For safe-rlhf and hh-rlhf a response that does not start with whitespace gets
// one leading space, as in the datasets ("ASSISTANT: Sure", "Assistant: Sure"). Earlier assistant
// turns are followed by EOS in safe-rlhf (as in the Safe-RLHF code base) and by nothing in hh-rlhf.

import Foundation

/// Which conversation format to render (raw values are the names used in configs).
public enum ChatTemplateKind: String, Sendable, CaseIterable, Codable {
    case chatML = "chatml"
    case safeRLHF = "safe-rlhf"
    case hhRLHF = "hh-rlhf"
}

/// One message of a conversation.
public struct ChatMessage: Equatable, Sendable {
    /// The speaker.
    public enum Role: String, Sendable, Codable { case system, user, assistant }
    public var role: Role
    public var content: String

    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ text: String) -> ChatMessage { ChatMessage(role: .system, content: text) }
    public static func user(_ text: String) -> ChatMessage { ChatMessage(role: .user, content: text) }
    public static func assistant(_ text: String) -> ChatMessage { ChatMessage(role: .assistant, content: text) }
}

/// Renders conversations with one tokenizer in one format.
///
/// Template markers are inserted as token ids; message text is encoded with
/// `allowSpecial: false`, so a user cannot inject control tokens by typing them.
public struct ChatTemplate: Sendable {
    /// SmolLM2-Instruct's default system prompt (from its GGUF `tokenizer.chat_template`).
    public static let smolLM2DefaultSystemPrompt = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

    public let kind: ChatTemplateKind
    public let tokenizer: BPETokenizer
    /// The system prompt inserted when the conversation does not start with a system message
    /// (ChatML only; nil inserts none).
    public let defaultSystemPrompt: String?
    /// The token that ends an assistant turn.
    public let endOfTurnID: Int
    private let imStart: Int?
    private let imEnd: Int?

    /// Creates a template.
    ///
    /// - Throws: `TokenizerError` if ChatML is asked for and the vocabulary lacks `<|im_start|>` /
    ///   `<|im_end|>`, or another format is asked for and the vocabulary has no EOS token.
    public init(kind: ChatTemplateKind, tokenizer: BPETokenizer, defaultSystemPrompt: String? = nil) throws {
        self.kind = kind
        self.tokenizer = tokenizer
        self.defaultSystemPrompt = defaultSystemPrompt
        switch kind {
        case .chatML:
            guard let s = tokenizer.id(of: "<|im_start|>"), let e = tokenizer.id(of: "<|im_end|>") else {
                throw TokenizerError(.unsupported, source: "chat template",
                                     "chatml needs the tokens <|im_start|> and <|im_end|>, which this vocabulary lacks; choose safe-rlhf or hh-rlhf")
            }
            imStart = s
            imEnd = e
            endOfTurnID = e
        case .safeRLHF, .hhRLHF:
            guard let eos = tokenizer.eosTokenID else {
                throw TokenizerError(.missingField, source: "chat template",
                                     "\(kind.rawValue) ends responses with the EOS token, but the vocabulary has none")
            }
            imStart = nil
            imEnd = nil
            endOfTurnID = eos
        }
    }

    /// Extracts the default system prompt from a Jinja ChatML template such as SmolLM2's
    /// (`... '<|im_start|>system\nYOU ARE ...<|im_end|>\n' ...`), or nil if it has none.
    public static func defaultSystemPrompt(fromJinja template: String) -> String? {
        // The newline may be a real newline or a Jinja escape (backslash, n).
        for marker in ["<|im_start|>system\n", "<|im_start|>system\\n"] {
            guard let start = template.range(of: marker),
                  let end = template.range(of: "<|im_end|>", range: start.upperBound..<template.endIndex) else { continue }
            let text = String(template[start.upperBound..<end.lowerBound])
            return text.isEmpty ? nil : text
        }
        return nil
    }

    private enum Segment { case text(String), token(Int) }

    /// Renders `messages` followed by the assistant's turn opening.
    ///
    /// - Returns: the prompt tokens; `responseStart` is the index where a response's tokens
    ///   begin (equal to `tokens.count`).
    public func renderPrompt(_ messages: [ChatMessage]) -> (tokens: [Int], responseStart: Int) {
        var segments: [Segment] = []
        switch kind {
        case .chatML:
            guard let imStart, let imEnd else { break }
            var all = messages
            if let system = defaultSystemPrompt, all.first?.role != .system {
                all.insert(.system(system), at: 0)
            }
            for m in all {
                segments += [.token(imStart), .text(m.role.rawValue + "\n" + m.content), .token(imEnd), .text("\n")]
            }
            segments += [.token(imStart), .text("assistant\n")]
        case .safeRLHF:
            var text = "BEGINNING OF CONVERSATION: "
            for m in messages {
                switch m.role {
                case .system: text += m.content + " "
                case .user: text += "USER: " + m.content + " "
                case .assistant:
                    segments.append(.text(text + "ASSISTANT:" + Self.spaced(m.content)))
                    segments.append(.token(endOfTurnID))
                    text = ""
                }
            }
            segments.append(.text(text + "ASSISTANT:"))
        case .hhRLHF:
            var text = ""
            for m in messages {
                switch m.role {
                case .system: text += m.content
                case .user: text += "\n\nHuman: " + m.content
                case .assistant: text += "\n\nAssistant:" + Self.spaced(m.content)
                }
            }
            segments.append(.text(text + "\n\nAssistant:"))
        }
        var tokens: [Int] = []
        if tokenizer.addBOSByDefault, let bos = tokenizer.bosTokenID { tokens.append(bos) }
        for s in segments {
            switch s {
            case .text(let t): tokens += tokenizer.encode(t, allowSpecial: false, addBOS: false)
            case .token(let id): tokens.append(id)
            }
        }
        return (tokens, tokens.count)
    }

    /// The tokens of an assistant response: its text then the end-of-turn token
    /// (`<|im_end|>` for ChatML, EOS otherwise). Append them to a rendered prompt.
    public func responseTokens(_ response: String) -> [Int] {
        let text = kind == .chatML ? response : Self.spaced(response)
        return tokenizer.encode(text, allowSpecial: false, addBOS: false) + [endOfTurnID]
    }

    /// A full training sequence: prompt + response + end-of-turn, and the response start index.
    public func render(_ messages: [ChatMessage], response: String) -> (tokens: [Int], responseStart: Int) {
        let prompt = renderPrompt(messages)
        return (prompt.tokens + responseTokens(response), prompt.responseStart)
    }

    /// Prefixes a space unless the text is empty or already starts with whitespace.
    private static func spaced(_ text: String) -> String {
        guard let first = text.unicodeScalars.first, !first.properties.isWhitespace else { return text }
        return " " + text
    }
}
