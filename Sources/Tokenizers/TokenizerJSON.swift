// Loading a byte-level BPE tokenizer from a Hugging Face `tokenizer.json` (+ `tokenizer_config.json`).

import Foundation

extension BPETokenizer {
    /// Loads `tokenizer.json` at `url`; special token names default to those in a sibling
    /// `tokenizer_config.json` (`bos_token`, `eos_token`, `pad_token`, `unk_token`, `add_bos_token`).
    public convenience init(tokenizerJSON url: URL, bosToken: String? = nil, eosToken: String? = nil,
                            padToken: String? = nil) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TokenizerError(.io, source: url.path, "cannot read the file (\(error.localizedDescription)); check the path")
        }
        let configURL = url.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json")
        var config = TokenizerJSONConfig()
        if let configData = try? Data(contentsOf: configURL),
           let root = try? JSONSerialization.jsonObject(with: configData) as? [String: Any] {
            config = TokenizerJSONConfig(root)
        }
        try self.init(tokenizerJSONData: data, source: url.path,
                      bosToken: bosToken ?? config.bos, eosToken: eosToken ?? config.eos,
                      padToken: padToken ?? config.pad, unknownToken: config.unk, addBOS: config.addBOS ?? false)
    }

    /// Parses `tokenizer.json` content. Supports `model.type == "BPE"` with a ByteLevel
    /// pre-tokenizer (GPT-2 regex) or Sequence[Digits(individual_digits), ByteLevel] (StarCoder,
    /// SmolLM2), no normalizer; merges as "a b" strings or [a, b] pairs; `added_tokens` become
    /// control tokens (special) or user-defined tokens (not special).
    public convenience init(tokenizerJSONData data: Data, source: String = "tokenizer.json",
                            bosToken: String? = nil, eosToken: String? = nil, padToken: String? = nil,
                            unknownToken: String? = nil, addBOS: Bool = false) throws {
        func fail(_ kind: TokenizerError.Kind, _ message: String) -> TokenizerError {
            TokenizerError(kind, source: source, message)
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw fail(.invalidValue, "not a JSON object; expected a Hugging Face tokenizer.json")
        }
        guard let model = root["model"] as? [String: Any] else {
            throw fail(.missingField, "member 'model' is missing")
        }
        let modelType = model["type"] as? String ?? "BPE"
        guard modelType == "BPE" else {
            throw fail(.unsupported, "model.type is '\(modelType)'; only byte-level BPE is supported")
        }
        if model["byte_fallback"] as? Bool == true {
            throw fail(.unsupported, "model.byte_fallback is true (a SentencePiece-style BPE); only byte-level BPE is supported")
        }
        if model["ignore_merges"] as? Bool == true {
            throw fail(.unsupported, "model.ignore_merges is true; this tokenizer variant is not supported")
        }
        if let normalizer = root["normalizer"], !(normalizer is NSNull) {
            throw fail(.unsupported, "a normalizer is set (\(Self.describe(normalizer))); only tokenizers without one are supported")
        }
        let pre = try Self.preTokenizerKind(root["pre_tokenizer"], fail)

        guard let vocab = model["vocab"] as? [String: Any] else {
            throw fail(.missingField, "model.vocab is missing or not an object")
        }
        var byID: [Int: (String, TokenType)] = [:]
        for (token, value) in vocab {
            guard let id = (value as? NSNumber)?.intValue, id >= 0, id < 10_000_000 else {
                throw fail(.invalidValue, "model.vocab['\(token)'] is \(value); expected a token id 0...9999999")
            }
            byID[id] = (token, .normal)
        }
        for (i, entry) in ((root["added_tokens"] as? [[String: Any]]) ?? []).enumerated() {
            guard let id = (entry["id"] as? NSNumber)?.intValue, id >= 0, id < 10_000_000,
                  let content = entry["content"] as? String else {
                throw fail(.invalidValue, "added_tokens[\(i)] lacks an integer 'id' or a string 'content'")
            }
            byID[id] = (content, (entry["special"] as? Bool ?? false) ? .control : .userDefined)
        }
        let count = (byID.keys.max() ?? -1) + 1
        guard count > 0 else { throw fail(.missingField, "model.vocab is empty") }
        var tokens: [String] = []
        var types: [Int] = []
        tokens.reserveCapacity(count)
        types.reserveCapacity(count)
        for id in 0..<count {
            let (token, type) = byID[id] ?? ("<unused_\(id)>", .unused)
            tokens.append(token)
            types.append(type.rawValue)
        }

        var pairs: [(String, String)] = []
        let rawMerges = model["merges"] as? [Any] ?? []
        pairs.reserveCapacity(rawMerges.count)
        for (rank, m) in rawMerges.enumerated() {
            if let pair = m as? [String], pair.count == 2 {
                pairs.append((pair[0], pair[1]))
            } else if let rule = m as? String, let space = rule.firstIndex(of: " "), space != rule.startIndex {
                pairs.append((String(rule[..<space]), String(rule[rule.index(after: space)...])))
            } else {
                throw fail(.invalidValue, "model.merges[\(rank)] is \(Self.describe(m)); expected \"left right\" or [left, right]")
            }
        }

        func idOf(_ name: String?, _ what: String) throws -> Int? {
            guard let name else { return nil }
            guard let id = tokens.firstIndex(of: name) else {
                throw fail(.invalidValue, "the \(what) token '\(name)' is not in the vocabulary")
            }
            return id
        }
        try self.init(tokens: tokens, mergePairs: pairs, tokenTypes: types, preTokenizer: pre,
                      bosTokenID: try idOf(bosToken, "bos"), eosTokenID: try idOf(eosToken, "eos"),
                      padTokenID: try idOf(padToken, "pad"), unknownTokenID: try idOf(unknownToken, "unknown"),
                      addBOS: addBOS, source: source)
    }

    /// Recognises the supported pre-tokenizer configurations.
    private static func preTokenizerKind(_ value: Any?, _ fail: (TokenizerError.Kind, String) -> TokenizerError) throws -> PreTokenizerKind {
        func isByteLevel(_ v: Any?) -> Bool {
            guard let d = v as? [String: Any], d["type"] as? String == "ByteLevel" else { return false }
            return (d["add_prefix_space"] as? Bool ?? false) == false && (d["use_regex"] as? Bool ?? true)
        }
        if isByteLevel(value) { return .gpt2 }
        if let d = value as? [String: Any], d["type"] as? String == "Sequence",
           let list = d["pretokenizers"] as? [Any], list.count == 2,
           let digits = list[0] as? [String: Any], digits["type"] as? String == "Digits",
           digits["individual_digits"] as? Bool == true, isByteLevel(list[1]) {
            return .starcoder
        }
        throw fail(.unsupported, "pre_tokenizer \(describe(value ?? NSNull())) is not supported; supported: ByteLevel(add_prefix_space: false) and Sequence[Digits(individual_digits: true), ByteLevel]")
    }

    private static func describe(_ value: Any) -> String {
        if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]),
           let s = String(data: data, encoding: .utf8) {
            return s.count > 200 ? String(s.prefix(200)) + "..." : s
        }
        return String(describing: value)
    }
}

/// Special-token names from a Hugging Face `tokenizer_config.json`.
struct TokenizerJSONConfig {
    var bos: String?
    var eos: String?
    var pad: String?
    var unk: String?
    var addBOS: Bool?

    init() {}

    init(_ root: [String: Any]) {
        func name(_ key: String) -> String? {
            if let s = root[key] as? String { return s }
            if let d = root[key] as? [String: Any] { return d["content"] as? String }
            return nil
        }
        bos = name("bos_token")
        eos = name("eos_token")
        pad = name("pad_token")
        unk = name("unk_token")
        addBOS = root["add_bos_token"] as? Bool
    }
}
