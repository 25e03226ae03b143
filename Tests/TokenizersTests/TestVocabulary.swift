// Test support: tiny byte-level BPE vocabularies and a naive GPT-2 reference BPE.

import Foundation
import Tokenizers

/// A small byte-level vocabulary: 256 byte tokens (ids 0...255 in byte order), merged tokens,
/// then `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (control) and `<tool>` (user-defined).
struct TestVocabulary {
    var tokens: [String]
    var merges: [String]
    var types: [Int]

    /// Merges given as byte-level "left right" strings (spaces written as 'Ġ').
    init(merges rules: [String]) {
        tokens = ByteLevel.scalarForByte.map { String($0) }
        merges = []
        for rule in rules {
            let parts = rule.split(separator: " ").map(String.init)
            merges.append(rule)
            let merged = parts[0] + parts[1]
            if !tokens.contains(merged) { tokens.append(merged) }
        }
        types = Array(repeating: 1, count: tokens.count)
        for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
            tokens.append(special)
            types.append(3)
        }
        tokens.append("<tool>")
        types.append(4)
    }

    static let english = TestVocabulary(merges: [
        "Ġ t", "h e", "Ġt he", "i n", "in g", "Ġ a", "e r", "Ġ w", "o r", "l d", "Ġw or", "Ġwor ld",
        "H e", "l l", "He ll", "Hell o", "Ġ s", "Ġs t", "Ġst r", "Ġstr ing", "Ċ Ċ", "Ġ Ġ",
    ])

    func tokenizer(_ pre: PreTokenizerKind = .gpt2, addBOS: Bool = false) throws -> BPETokenizer {
        try BPETokenizer(tokens: tokens, merges: merges, tokenTypes: types, preTokenizer: pre,
                         bosTokenID: tokens.firstIndex(of: "<|im_start|>"),
                         eosTokenID: tokens.firstIndex(of: "<|im_end|>"),
                         padTokenID: tokens.firstIndex(of: "<|im_end|>"),
                         unknownTokenID: tokens.firstIndex(of: "<|endoftext|>"), addBOS: addBOS)
    }
}

/// GPT-2's original `bpe()` on one pre-tokenized piece: repeatedly merge every occurrence of the
/// lowest-ranked adjacent pair. Equivalent to leftmost-first heap merging for merge lists in which
/// every merge creates a new token.
func referenceBPE(_ piece: [UInt8], ranks: [String: Int]) -> [String] {
    var word = piece.map { String(ByteLevel.scalarForByte[Int($0)]) }
    while word.count > 1 {
        var best: (rank: Int, first: String, second: String)?
        for i in 0..<word.count - 1 {
            if let r = ranks[word[i] + " " + word[i + 1]], r < (best?.rank ?? Int.max) {
                best = (r, word[i], word[i + 1])
            }
        }
        guard let (_, first, second) = best else { break }
        var merged: [String] = []
        var i = 0
        while i < word.count {
            if i < word.count - 1 && word[i] == first && word[i + 1] == second {
                merged.append(first + second)
                i += 2
            } else {
                merged.append(word[i])
                i += 1
            }
        }
        word = merged
    }
    return word
}
