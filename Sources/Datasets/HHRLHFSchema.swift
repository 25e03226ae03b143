// Anthropic HH-RLHF dialogues: split the shared prompt from the differing last Assistant turns.

import Foundation
import Tokenizers

/// The `hh-rlhf` schema: `{"chosen": dialogue, "rejected": dialogue}` rows where each dialogue
/// is `\n\nHuman: …\n\nAssistant: …` text.
///
/// The prompt is the longest common prefix of the two dialogues that ends in `\n\nAssistant:`
/// (it includes that marker); the responses are the rest of each dialogue, whitespace-trimmed.
/// The prompt is also parsed into alternating user/assistant messages for chat templates.
/// Pairs are of aspect `harmlessness` (use `aspect` in the options to override for helpful splits).
public enum HHRLHFSchema {
    /// The marker that opens an assistant turn.
    public static let assistantMarker = "\n\nAssistant:"
    /// The marker that opens a human turn.
    public static let humanMarker = "\n\nHuman:"

    /// Loads `paths` (JSONL, optionally gzip).
    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .hhRLHF)
        var report = LoadReport()
        let aspect: PreferenceAspect = options.aspect == .general ? .harmlessness : options.aspect
        let c = options.columns
        try RowLoop.forEachRow(in: paths, options: options, report: &report) { row, report in
            let chosenDialogue = try row.string(c.chosen)
            let rejectedDialogue = try row.string(c.rejected)
            if chosenDialogue == rejectedDialogue, options.dropIdenticalResponses {
                report.droppedIdenticalResponses += 1
                return
            }
            guard let parts = split(chosen: chosenDialogue, rejected: rejectedDialogue) else {
                throw row.error(.invalidValue, field: c.chosen,
                                "chosen and rejected share no prefix ending in \"\\n\\nAssistant:\", so the prompt cannot be found; each dialogue must be \\n\\nHuman: …\\n\\nAssistant: … text that differs only after the last shared Assistant marker")
            }
            let chosen = RowLoop.trimmed(parts.chosen), rejected = RowLoop.trimmed(parts.rejected)
            guard RowLoop.keepPair(chosen: chosen, rejected: rejected, options: options, report: &report) else { return }
            dataset.pairs.append(PreferencePair(
                id: RowLoop.rowID(row, column: c.id), prompt: messages(fromPrompt: parts.prompt),
                promptText: parts.prompt, chosen: chosen, rejected: rejected, aspect: aspect, source: row.location))
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }

    /// Splits two dialogues at their longest common prefix that ends in `\n\nAssistant:`.
    ///
    /// - Returns: the prompt (ending with the marker) and the two raw continuations, or nil when the
    ///   dialogues share no such prefix.
    public static func split(chosen: String, rejected: String) -> (prompt: String, chosen: String, rejected: String)? {
        let a = Array(chosen.utf8), b = Array(rejected.utf8)
        let marker = Array(assistantMarker.utf8)
        var common = 0
        let limit = min(a.count, b.count)
        while common < limit, a[common] == b[common] { common += 1 }
        var end = common
        while end >= marker.count {
            if a[(end - marker.count)..<end].elementsEqual(marker) {
                let prompt = String(decoding: a[..<end], as: UTF8.self)
                return (prompt, String(decoding: a[end...], as: UTF8.self), String(decoding: b[end...], as: UTF8.self))
            }
            end -= 1
        }
        return nil
    }

    /// Parses HH-RLHF dialogue text into chat messages.
    ///
    /// Text before the first marker becomes a system message (if not blank); each `\n\nHuman:` /
    /// `\n\nAssistant:` turn becomes a user / assistant message with trimmed content; a final empty
    /// assistant turn (the generation marker ending a prompt) is dropped.
    public static func messages(fromPrompt text: String) -> [ChatMessage] {
        var messages: [ChatMessage] = []
        var position = text.startIndex
        var role: ChatMessage.Role?
        func emit(upTo end: String.Index) {
            let content = RowLoop.trimmed(String(text[position..<end]))
            if let role {
                messages.append(ChatMessage(role: role, content: content))
            } else if !content.isEmpty {
                messages.append(.system(content))
            }
        }
        while true {
            let human = text.range(of: humanMarker, range: position..<text.endIndex)
            let assistant = text.range(of: assistantMarker, range: position..<text.endIndex)
            let next: (Range<String.Index>, ChatMessage.Role)?
            switch (human, assistant) {
            case let (h?, a?): next = h.lowerBound <= a.lowerBound ? (h, .user) : (a, .assistant)
            case let (h?, nil): next = (h, .user)
            case let (nil, a?): next = (a, .assistant)
            case (nil, nil): next = nil
            }
            guard let (range, nextRole) = next else { break }
            emit(upTo: range.lowerBound)
            role = nextRole
            position = range.upperBound
        }
        emit(upTo: text.endIndex)
        if let last = messages.last, last.role == .assistant, last.content.isEmpty {
            messages.removeLast()
        }
        return messages
    }
}
