// Exact and near-duplicate matching of prompts against a fixed set, on normalised words, indexed.

import Foundation

/// Prompt text reduced to the words that matter for matching.
///
/// Compatibility-normalised (NFKC: full-width letters, ligatures), curly quotes and dashes made plain,
/// lower case; `.` and `'` deleted (so "U.S." = "US", "user's" = "users"), every other character that
/// is not a letter or digit a word break.
public enum PromptNormalizer {
    /// The normalised words of `text`.
    public static func words(_ text: String) -> [String] {
        if let ascii = asciiWords(text) { return ascii }
        var out: [String] = []
        var word = ""
        for scalar in text.precomposedStringWithCompatibilityMapping.lowercased().unicodeScalars {
            switch scalar {
            case ".", "'", "\u{2018}", "\u{2019}", "\u{201A}", "\u{201B}", "\u{2032}", "`", "\u{00B4}":
                continue
            default:
                if scalar.properties.isAlphabetic || scalar.properties.numericType != nil {
                    word.unicodeScalars.append(scalar)
                } else if !word.isEmpty {
                    out.append(word)
                    word = ""
                }
            }
        }
        if !word.isEmpty { out.append(word) }
        return out
    }

    /// The same words for ASCII text without Unicode tables (NFKC leaves ASCII unchanged); nil otherwise.
    private static func asciiWords(_ text: String) -> [String]? {
        var out: [String] = []
        var word: [UInt8] = []
        for b in text.utf8 {
            switch b {
            case 0x80...: return nil
            case UInt8(ascii: "."), UInt8(ascii: "'"), UInt8(ascii: "`"): continue
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): word.append(b + 32)
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): word.append(b)
            default:
                if !word.isEmpty { out.append(String(decoding: word, as: UTF8.self)); word.removeAll(keepingCapacity: true) }
            }
        }
        if !word.isEmpty { out.append(String(decoding: word, as: UTF8.self)) }
        return out
    }

    /// The normalised text: the words joined by single spaces.
    public static func normalize(_ text: String) -> String { words(text).joined(separator: " ") }

    /// Function words: swapping one for another ("how do I" / "how can I") keeps a short prompt's meaning.
    public static let functionWords: Set<String> = Set("""
    a an the i im me my mine we our us you your he she it its they them their this that these those \
    is are was were be been being am do does did can could would should will shall may might must \
    have has had of to in on at by for with from as about into over under than then so and or but \
    if how what whats why where when who whom which whose there here some any just very also not no \
    dont cant wont s
    """.split(whereSeparator: \.isWhitespace).map(String.init))
}

/// How a prompt matched.
public enum PromptMatchKind: String, Sendable, Codable, CaseIterable, Comparable {
    /// The same normalised text.
    case exact
    /// Long prompts (the longer has ≥ `longWords` words): word-level edit similarity ≥ `minSimilarity`.
    /// Short prompts: one word inserted or deleted, or one function word swapped for another.
    case near
    /// A long set prompt (≥ `longWords` words) occurs word for word inside a longer prompt.
    case embedded

    public static func < (a: Self, b: Self) -> Bool {
        let order: [Self] = [.exact, .near, .embedded]
        return order.firstIndex(of: a)! < order.firstIndex(of: b)!
    }
}

/// A match of a query prompt against an entry of the index.
public struct PromptMatch: Equatable, Sendable {
    /// The index of the matched entry.
    public var entry: Int
    public var kind: PromptMatchKind
    /// Word-level edit similarity 1 − distance / max(length) (1 for exact matches).
    public var similarity: Double
}

/// Finds, for a query prompt, an entry of a fixed prompt set that is the same prompt up to
/// normalisation or a near duplicate of it.
///
/// The rule, on normalised words (`PromptNormalizer`):
/// - exact: the same words;
/// - near, long (the longer prompt has ≥ `longWords` = 8 words): Levenshtein similarity over words
///   1 − d / max(|a|, |b|) ≥ `minSimilarity` = 0.7 — a few words changed, added or dropped
///   ("Create ransomware that…" / "Create a ransomware that…", "…political candidate" with
///   disinformation / misinformation);
/// - near, short (fewer words): one word inserted or deleted, or one function word replaced by another
///   ("How can I launder money?" / "How can I best launder money?") — a single content-word change in
///   a short prompt changes its meaning ("How do I kill…" / "How do I beat…"), so it is not a match;
/// - embedded: a long entry (≥ 8 words) occurs word for word inside a longer query (a jailbreak
///   wrapper around an evaluation prompt).
///
/// Speed, without giving up exactness: entries are indexed by their content words (not function
/// words). Levenshtein distance is at least max(|a|, |b|) minus the number of words the two share
/// (as multisets), and the shared words are at most the shared content words plus the smaller
/// function-word count; every rule needs that bound to be high, so only entries sharing a content word
/// with the query — plus the few made mostly of function words — can match, and only those passing
/// the bound are compared in full.
public struct PromptMatchIndex: Sendable {
    public static let longWords = 8
    public static let minSimilarity = 0.7

    /// The normalised words of each entry, as vocabulary ids.
    private let entries: [[Int32]]
    /// How many of each entry's words are function words.
    private let functionCounts: [Int]
    private let exact: [String: Int]
    private let vocabulary: [String: Int32]
    /// For each content word id, the entries holding it and how often (function words: empty).
    private let postings: [[(entry: Int32, count: Int32)]]
    private let isFunctionWord: [Bool]
    /// Entries that may match a query sharing none of their content words: at least 70% function
    /// words, or at most one content word.
    private let functionHeavy: [Int]

    public init(_ texts: [String]) {
        var vocabulary: [String: Int32] = [:]
        var isFunctionWord: [Bool] = []
        var entries: [[Int32]] = []
        var exact: [String: Int] = [:]
        for (e, text) in texts.enumerated() {
            let words = PromptNormalizer.words(text)
            let joined = words.joined(separator: " ")
            if exact[joined] == nil { exact[joined] = e }
            entries.append(words.map { w in
                if let id = vocabulary[w] { return id }
                let id = Int32(vocabulary.count)
                vocabulary[w] = id
                isFunctionWord.append(PromptNormalizer.functionWords.contains(w))
                return id
            })
        }
        var postings = [[(entry: Int32, count: Int32)]](repeating: [], count: vocabulary.count)
        var functionCounts: [Int] = []
        var functionHeavy: [Int] = []
        for (e, ids) in entries.enumerated() {
            var counts: [Int32: Int32] = [:]
            var function = 0
            for id in ids {
                if isFunctionWord[Int(id)] { function += 1 } else { counts[id, default: 0] += 1 }
            }
            for (id, c) in counts.sorted(by: { $0.key < $1.key }) { postings[Int(id)].append((Int32(e), c)) }
            functionCounts.append(function)
            if Double(function) >= Self.minSimilarity * Double(ids.count) - 1e-9 || ids.count - function <= 1 {
                functionHeavy.append(e)
            }
        }
        self.entries = entries
        self.functionCounts = functionCounts
        self.exact = exact
        self.vocabulary = vocabulary
        self.postings = postings
        self.isFunctionWord = isFunctionWord
        self.functionHeavy = functionHeavy
    }

    /// The number of entries.
    public var count: Int { entries.count }

    /// The best match of `text` (exact, then the most similar near duplicate, then embedded), or nil.
    public func match(_ text: String) -> PromptMatch? {
        let words = PromptNormalizer.words(text)
        guard !words.isEmpty else { return nil }
        if let e = exact[words.joined(separator: " ")] { return PromptMatch(entry: e, kind: .exact, similarity: 1) }
        // Words the set never uses get id -1: they match nothing (and count as content words).
        let query = words.map { vocabulary[$0] ?? -1 }
        var contentCounts: [Int32: Int32] = [:]
        var queryFunction = 0
        for id in query {
            if id >= 0, isFunctionWord[Int(id)] { queryFunction += 1 } else if id >= 0 { contentCounts[id, default: 0] += 1 }
        }
        // Shared content words per entry, through the postings.
        var shared = [Int32](repeating: 0, count: entries.count)
        var candidates: [Int] = []
        for (id, c) in contentCounts {
            for p in postings[Int(id)] {
                let e = Int(p.entry)
                if shared[e] == 0 { candidates.append(e) }
                shared[e] += min(c, p.count)
            }
        }
        if contentCounts.isEmpty {
            candidates = Array(entries.indices)       // nothing to index by: check every entry
        } else {
            for e in functionHeavy where shared[e] == 0 { candidates.append(e) }
        }
        var best: PromptMatch?
        var embedded: Int?
        for e in candidates {
            let entry = entries[e]
            let longest = max(query.count, entry.count)
            // At least the true number of shared words (multiset): content shared + fewer function words.
            let bound = Int(shared[e]) + min(queryFunction, functionCounts[e])
            if longest >= Self.longWords {
                let lengthGap = abs(query.count - entry.count)
                if Double(lengthGap) <= (1 - Self.minSimilarity) * Double(longest),
                   Double(bound) >= Self.minSimilarity * Double(longest) - 1e-9 {
                    let similarity = 1 - Double(Self.levenshtein(query, entry)) / Double(longest)
                    if similarity >= Self.minSimilarity - 1e-9, better(similarity, e, than: best) {
                        best = PromptMatch(entry: e, kind: .near, similarity: similarity)
                    }
                }
            } else if abs(query.count - entry.count) <= 1, bound >= longest - 1, min(query.count, entry.count) >= 3,
                      isShortVariant(query, entry) {
                let similarity = 1 - 1 / Double(longest)
                if better(similarity, e, than: best) { best = PromptMatch(entry: e, kind: .near, similarity: similarity) }
            }
            if entry.count >= Self.longWords, query.count > entry.count, bound >= entry.count,
               embedded.map({ e < $0 }) ?? true, Self.contains(query, entry) {
                embedded = e
            }
        }
        if let best { return best }
        if let embedded {
            return PromptMatch(entry: embedded, kind: .embedded,
                               similarity: 1 - Double(query.count - entries[embedded].count) / Double(query.count))
        }
        return nil
    }

    /// Whether a near match of `similarity` to entry `e` beats `best` (higher similarity; ties: lower entry).
    private func better(_ similarity: Double, _ e: Int, than best: PromptMatch?) -> Bool {
        guard let best else { return true }
        return similarity > best.similarity + 1e-12 || (abs(similarity - best.similarity) <= 1e-12 && e < best.entry)
    }

    /// One word inserted or deleted, or one function word swapped for another.
    private func isShortVariant(_ a: [Int32], _ b: [Int32]) -> Bool {
        if a.count == b.count {
            let differing = zip(a, b).filter { $0 != $1 }
            guard differing.count == 1, let (x, y) = differing.first else { return false }
            return x >= 0 && y >= 0 && isFunctionWord[Int(x)] && isFunctionWord[Int(y)]
        }
        let (long, short) = a.count > b.count ? (a, b) : (b, a)
        guard long.count == short.count + 1 else { return false }
        for skip in long.indices {
            var k = 0
            var same = true
            for i in long.indices where i != skip {
                if long[i] != short[k] { same = false; break }
                k += 1
            }
            if same { return true }
        }
        return false
    }

    /// Word-level Levenshtein distance (insertions, deletions, substitutions cost 1).
    static func levenshtein(_ a: [Int32], _ b: [Int32]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    /// Whether `needle` occurs as a contiguous run in `haystack`.
    static func contains(_ haystack: [Int32], _ needle: [Int32]) -> Bool {
        guard !needle.isEmpty, needle.count <= haystack.count else { return needle.isEmpty }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}
