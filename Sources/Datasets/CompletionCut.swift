// Cutting generated completions that run on: first paragraph, first repetition, unfinished sentence.

/// How a run-on model completion is shortened before it becomes training text.
///
/// refusal-direction's completions were sampled to a fixed length without an end-of-turn, so many
/// end mid-word and some loop ("I cannot … I cannot …", "ever, ever, ever"). A 135M model trained
/// on them learns to ramble; `firstParagraph` keeps what a short answer would say.
public enum CompletionCut: String, Sendable, Codable, CaseIterable {
    /// Keep the text as it is (trimmed).
    case none
    /// The first paragraph — extended over following paragraphs while it is only a lead-in (ends with
    /// ':' or has no sentence end yet, e.g. a title) — then cut before the first repeated sentence or
    /// word loop, then, if the text was cut or ends unfinished, back to its last complete sentence.
    case firstParagraph

    /// `text` cut by this rule.
    public func apply(_ text: String) -> String {
        let trimmed = RowLoop.trimmed(text)
        switch self {
        case .none: return trimmed
        case .firstParagraph: return Self.cutFirstParagraph(trimmed)
        }
    }

    /// A repeated sentence counts only if it has at least this many words (not "1." or "Sure!").
    static let minimumRepeatedWords = 4
    /// A word loop is this many consecutive copies of the same 1–3 words.
    static let loopCopies = 4

    static func cutFirstParagraph(_ text: String) -> String {
        var chars = Array(text)
        // 1. Paragraphs: stop at the first blank line unless what is kept is only a lead-in.
        var end = 0
        while end < chars.count {
            let next = paragraphEnd(chars, from: end)
            end = next
            let kept = String(chars[..<end]).trimmingCharacters(in: .whitespacesAndNewlines)
            let leadIn = kept.hasSuffix(":") || sentenceEnds(Array(kept)).isEmpty
            if !leadIn { break }
        }
        var cut = end < chars.count
        chars = Array(chars[..<end])
        // 2. Repetition: a sentence seen before, or a word loop.
        if let r = firstRepetition(chars), r < chars.count {
            chars = Array(chars[..<r])
            cut = true
        }
        var result = String(chars).trimmingCharacters(in: .whitespacesAndNewlines)
        // 3. An unfinished last sentence (the sample's length limit, or our cut) goes.
        let resultChars = Array(result)
        let ends = sentenceEnds(resultChars)
        // What may follow the last sentence end of a finished text: closing quotes, brackets, emphasis.
        let closers: Set<Character> = ["\"", "'", ")", "]", "*", "_", "\u{201D}", "\u{2019}"]
        if let last = ends.last {
            var close = last + 1
            while close < resultChars.count, closers.contains(resultChars[close]) { close += 1 }
            let finished = close == resultChars.count
            if cut || !finished { result = String(resultChars[..<close]) }
        }
        return result.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The index just past the paragraph starting at `start` (a blank line ends it), or the end.
    static func paragraphEnd(_ chars: [Character], from start: Int) -> Int {
        var i = start
        // Skip the blank lines that open this paragraph.
        while i < chars.count, chars[i].isWhitespace { i += 1 }
        while i < chars.count {
            if chars[i] == "\n" {
                var j = i + 1
                while j < chars.count, chars[j] == " " || chars[j] == "\t" || chars[j] == "\r" { j += 1 }
                if j < chars.count, chars[j] == "\n" { return i }
            }
            i += 1
        }
        return chars.count
    }

    /// Indices of sentence-ending marks: `.`, `!`, `?` followed by the end, whitespace, a quote or
    /// bracket, or an upper-case letter (models that omit the space: "assistance.I am"), and not a
    /// list number ("2.") or an initial ("U.S.").
    static func sentenceEnds(_ chars: [Character]) -> [Int] {
        var ends: [Int] = []
        for i in chars.indices where chars[i] == "." || chars[i] == "!" || chars[i] == "?" {
            if i + 1 < chars.count {
                let n = chars[i + 1]
                let closes = n.isWhitespace || n == "\"" || n == "'" || n == ")" || n == "*" || n == "\u{201D}"
                guard closes || n.isUppercase else { continue }
                if n.isUppercase && chars[i] == "." && i >= 1 && chars[i - 1].isUppercase { continue }   // "U.S."
            }
            if chars[i] == "." {
                // The token before the dot: digits (a list number) or a single letter (an initial).
                var j = i - 1
                while j >= 0, !chars[j].isWhitespace { j -= 1 }
                let token = chars[(j + 1)..<i]
                if !token.isEmpty, token.allSatisfy(\.isNumber) { continue }
                // Initials: "A." or "U.S." (single letters separated by dots).
                if !token.isEmpty, token.split(separator: ".").allSatisfy({ $0.count == 1 && $0.first!.isLetter }) { continue }
            }
            ends.append(i)
        }
        return ends
    }

    /// Where the first repeated sentence or word loop starts (the index to cut at), or nil.
    static func firstRepetition(_ chars: [Character]) -> Int? {
        var best: Int?
        // Sentences (split at sentence ends and line breaks), keyed by their words.
        var seen = Set<String>()
        var start = 0
        var boundaries = sentenceEnds(chars).map { $0 + 1 }
        boundaries += chars.indices.filter { chars[$0] == "\n" }
        boundaries.sort()
        for b in boundaries + [chars.count] where b > start {
            let words = normalizedWords(chars[start..<b])
            if words.count >= minimumRepeatedWords {
                let key = words.joined(separator: " ")
                if !seen.insert(key).inserted {
                    var s = start
                    while s < b, chars[s].isWhitespace { s += 1 }
                    best = s
                    break
                }
            }
            start = b
        }
        // Word loops: the same 1-3 words `loopCopies` times in a row; keep the first copy.
        var tokens: [(text: String, start: Int)] = []
        var i = 0
        while i < chars.count {
            while i < chars.count, chars[i].isWhitespace { i += 1 }
            let s = i
            while i < chars.count, !chars[i].isWhitespace { i += 1 }
            if i > s { tokens.append((String(chars[s..<i]).lowercased(), s)) }
        }
        search: for p in tokens.indices {
            if let best, tokens[p].start >= best { break }
            for n in 1...3 where p + n * loopCopies <= tokens.count {
                var loops = true
                for copy in 1..<loopCopies where loops {
                    for k in 0..<n where tokens[p + k].text != tokens[p + copy * n + k].text { loops = false; break }
                }
                if loops {
                    best = tokens[p + n].start
                    break search
                }
            }
        }
        return best
    }

    /// Lower-case alphanumeric words of a span.
    static func normalizedWords(_ span: ArraySlice<Character>) -> [String] {
        String(span).lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init)
    }
}
