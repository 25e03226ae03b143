// Byte-level BPE tokenizer (GPT-2 family): vocabulary, merges, special tokens, encode and decode.

import Foundation

/// The role of a vocabulary entry (GGUF `tokenizer.ggml.token_type` values).
public enum TokenType: Int, Sendable {
    case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

/// A byte-level BPE tokenizer.
///
/// Text is split by the pre-tokenizer, each piece's UTF-8 bytes become byte-level symbols, and
/// merges apply by rank. Control tokens (`<|im_start|>`) are recognised in text only when
/// `encode(_:allowSpecial:)` is asked to; user-defined tokens always are. `decode` returns exact bytes.
/// Thread-safe: encoding from several threads shares one cache.
public final class BPETokenizer: @unchecked Sendable {
    /// Token strings by id, as the vocabulary stores them (byte-level characters for normal tokens).
    public let tokens: [String]
    /// Token roles by id.
    public let tokenTypes: [TokenType]
    /// The pre-tokenizer.
    public let preTokenizer: PreTokenizer
    /// Beginning-of-sequence token id, if any.
    public let bosTokenID: Int?
    /// End-of-sequence token id, if any (also the end-of-turn token of ChatML vocabularies).
    public let eosTokenID: Int?
    /// Padding token id, if any.
    public let padTokenID: Int?
    /// Unknown token id, if any.
    public let unknownTokenID: Int?
    /// Whether `encode(_:allowSpecial:addBOS:)` with `addBOS: nil` prepends the BOS token.
    public let addBOSByDefault: Bool
    /// Bytes that have no single-byte token; they are dropped when encoding (as llama.cpp does), so
    /// text containing them (rare control characters, some 4-byte characters) does not round-trip.
    public let missingByteTokens: [UInt8]
    /// How many merges were dropped because a part or the result is not in the vocabulary.
    public let skippedMerges: Int

    /// The number of tokens.
    public var vocabularySize: Int { tokens.count }

    private let tokenIDs: [String: Int]
    let mergeTable: BPEMergeTable
    private let byteTokens: [Int32]
    private let controlMatcher: SpecialTokenMatcher
    private let userDefinedMatcher: SpecialTokenMatcher
    private let decodeBytes: [UInt8]
    private let decodeOffsets: [Int]
    private let cache = BPECache()

    /// Builds a tokenizer from plain vocabulary arrays (as stored in GGUF metadata).
    ///
    /// - Parameters:
    ///   - tokens: token strings by id (`tokenizer.ggml.tokens`).
    ///   - merges: "left right" merge rules, highest priority first (`tokenizer.ggml.merges`).
    ///   - tokenTypes: `TokenType` raw values by id (`tokenizer.ggml.token_type`); empty means all
    ///     normal; unknown values count as normal.
    ///   - preTokenizer: the pre-tokenization rule (`PreTokenizerKind(ggufName:)` of `tokenizer.ggml.pre`).
    ///   - source: names the vocabulary in error messages.
    /// - Throws: `TokenizerError` if a byte has no single-byte token, a merge rule is malformed,
    ///   a special token id is out of range, or `tokenTypes` has the wrong length.
    public convenience init(tokens: [String], merges: [String], tokenTypes: [Int] = [], preTokenizer: PreTokenizerKind,
                            bosTokenID: Int? = nil, eosTokenID: Int? = nil, padTokenID: Int? = nil,
                            unknownTokenID: Int? = nil, addBOS: Bool = false, source: String = "vocabulary") throws {
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(merges.count)
        for (rank, rule) in merges.enumerated() {
            // Split at the first space after the first byte (a part is never empty; a space byte
            // never occurs inside a multi-byte character).
            let utf8 = rule.utf8
            guard !utf8.isEmpty,
                  let space = utf8[utf8.index(after: utf8.startIndex)...].firstIndex(of: UInt8(ascii: " ")) else {
                throw TokenizerError(.invalidValue, source: source,
                                     "merge \(rank) '\(rule)' is not of the form 'left right'")
            }
            pairs.append((String(decoding: utf8[..<space], as: UTF8.self),
                          String(decoding: utf8[utf8.index(after: space)...], as: UTF8.self)))
        }
        try self.init(tokens: tokens, mergePairs: pairs, tokenTypes: tokenTypes, preTokenizer: preTokenizer,
                      bosTokenID: bosTokenID, eosTokenID: eosTokenID, padTokenID: padTokenID,
                      unknownTokenID: unknownTokenID, addBOS: addBOS, source: source)
    }

    /// Builds a tokenizer from merge rules given as (left, right) pairs, highest priority first
    /// (the other parameters as in `init(tokens:merges:...)`).
    public init(tokens: [String], mergePairs: [(String, String)], tokenTypes: [Int] = [], preTokenizer: PreTokenizerKind,
                bosTokenID: Int? = nil, eosTokenID: Int? = nil, padTokenID: Int? = nil,
                unknownTokenID: Int? = nil, addBOS: Bool = false, source: String = "vocabulary") throws {
        guard !tokens.isEmpty, tokens.count < Int(Int32.max) else {
            throw TokenizerError(.invalidValue, source: source, "the vocabulary has \(tokens.count) tokens; expected 1...\(Int32.max - 1)")
        }
        guard tokenTypes.isEmpty || tokenTypes.count == tokens.count else {
            throw TokenizerError(.invalidValue, source: source,
                                 "token_type has \(tokenTypes.count) entries but there are \(tokens.count) tokens; the vocabulary is corrupt")
        }
        for (name, id) in [("bos", bosTokenID), ("eos", eosTokenID), ("pad", padTokenID), ("unknown", unknownTokenID)] {
            if let id, !(0..<tokens.count).contains(id) {
                throw TokenizerError(.invalidValue, source: source,
                                     "\(name) token id \(id) is outside the vocabulary 0..<\(tokens.count)")
            }
        }
        self.tokens = tokens
        self.tokenTypes = tokenTypes.isEmpty ? Array(repeating: .normal, count: tokens.count)
            : tokenTypes.map { TokenType(rawValue: $0) ?? .normal }
        self.preTokenizer = PreTokenizer(kind: preTokenizer)
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
        self.padTokenID = padTokenID
        self.unknownTokenID = unknownTokenID
        self.addBOSByDefault = addBOS

        var ids: [String: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = i }
        tokenIDs = ids

        // A byte without a single-character token (SmolLM2 lacks 0x04, 0x06, 0x13, 0x14, 0x16, 0x1D,
        // C0, C1, F1, F2, F5...FF; StarCoder similar) is dropped when encoding, as llama.cpp does;
        // `missingByteTokens` lists them.
        var bytesTable = [Int32](repeating: -1, count: 256)
        var missing: [UInt8] = []
        for b in 0..<256 {
            if let id = ids[String(ByteLevel.scalarForByte[b])] {
                bytesTable[b] = Int32(id)
            } else {
                missing.append(UInt8(b))
            }
        }
        guard missing.count <= 64 else {
            throw TokenizerError(.invalidValue, source: source,
                                 "\(missing.count) of 256 bytes have no single-character token (e.g. 0x\(String(missing[0], radix: 16)) '\(ByteLevel.scalarForByte[Int(missing[0])])'); this is not a byte-level BPE vocabulary")
        }
        missingByteTokens = missing
        byteTokens = bytesTable

        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(mergePairs.count)
        var skipped = 0
        for (rank, (left, right)) in mergePairs.enumerated() {
            guard let l = ids[left], let r = ids[right], let m = ids[left + right] else {
                skipped += 1
                continue
            }
            let key = BPEMergeTable.key(Int32(l), Int32(r))
            if table[key] == nil { table[key] = UInt64(rank) << 32 | UInt64(m) }
        }
        mergeTable = BPEMergeTable(table)
        skippedMerges = skipped

        var control: [(String, Int)] = []
        var userDefined: [(String, Int)] = []
        var flat: [UInt8] = []
        var offsets: [Int] = [0]
        offsets.reserveCapacity(tokens.count + 1)
        for (i, t) in tokens.enumerated() {
            switch self.tokenTypes[i] {
            case .control, .unknown:
                control.append((t, i))
                flat.append(contentsOf: t.utf8)
            case .userDefined:
                userDefined.append((t, i))
                flat.append(contentsOf: t.utf8)
            case .unused:
                flat.append(contentsOf: t.utf8)
            case .normal, .byte:
                // Byte-level characters map back to bytes; anything else is kept as UTF-8.
                for s in t.unicodeScalars {
                    if let b = ByteLevel.byte(for: s) { flat.append(b) } else { flat.append(contentsOf: String(s).utf8) }
                }
            }
            offsets.append(flat.count)
        }
        controlMatcher = SpecialTokenMatcher(control)
        userDefinedMatcher = SpecialTokenMatcher(userDefined)
        decodeBytes = flat
        decodeOffsets = offsets
    }

    /// The id of `token` (exact vocabulary string), or nil.
    public func id(of token: String) -> Int? { tokenIDs[token] }

    // MARK: - Encoding

    /// Encodes `text` to token ids.
    ///
    /// - Parameters:
    ///   - allowSpecial: recognise control-token strings (`<|im_start|>`) in `text` as their ids;
    ///     when false they are encoded as ordinary text. User-defined tokens are always recognised.
    ///   - addBOS: prepend the BOS token; nil follows the vocabulary's `add_bos_token`.
    public func encode(_ text: String, allowSpecial: Bool = false, addBOS: Bool? = nil) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(text.utf8.count / 3 + 4)
        if addBOS ?? addBOSByDefault, let bos = bosTokenID { out.append(bos) }
        var text = text
        text.makeContiguousUTF8()
        text.utf8.withContiguousStorageIfAvailable { bytes in
            encodeBytes(bytes, allowSpecial: allowSpecial, into: &out)
        }
        return out
    }

    /// Encodes valid UTF-8 bytes, splitting out special tokens first.
    private func encodeBytes(_ bytes: UnsafeBufferPointer<UInt8>, allowSpecial: Bool, into out: inout [Int]) {
        let useControl = allowSpecial && !controlMatcher.isEmpty
        let useUser = !userDefinedMatcher.isEmpty
        guard useControl || useUser else {
            encodeText(bytes, 0..<bytes.count, into: &out)
            return
        }
        var segmentStart = 0
        var i = 0
        let n = bytes.count
        while i < n {
            let m = (useControl ? controlMatcher.match(bytes, at: i, end: n) : nil)
                ?? (useUser ? userDefinedMatcher.match(bytes, at: i, end: n) : nil)
            if let m {
                encodeText(bytes, segmentStart..<i, into: &out)
                out.append(m.id)
                i += m.length
                segmentStart = i
            } else {
                i += 1
            }
        }
        encodeText(bytes, segmentStart..<n, into: &out)
    }

    /// Pre-tokenizes `bytes[range]` and appends the BPE ids of every piece.
    private func encodeText(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into out: inout [Int]) {
        guard !range.isEmpty else { return }
        var pieces: [Range<Int>] = []
        pieces.reserveCapacity(range.count / 4 + 1)
        preTokenizer.split(bytes, range: range, into: &pieces)
        var scratch = BPEScratch()
        var symbols: [Int32] = []
        for piece in pieces {
            if piece.count == 1 {
                let id = byteTokens[Int(bytes[piece.lowerBound])]
                if id >= 0 { out.append(Int(id)) }
                continue
            }
            let h = BPECache.hash(bytes, piece)
            if cache.lookup(h, bytes, piece, into: &out) { continue }
            symbols.removeAll(keepingCapacity: true)
            for i in piece { symbols.append(byteTokens[Int(bytes[i])]) }
            mergeTable.merge(&symbols, scratch: &scratch)
            for id in symbols where id >= 0 { out.append(Int(id)) }
            if piece.count <= 256 {
                cache.store(h, bytes: Array(bytes[piece]), ids: symbols)
            }
        }
    }

    // MARK: - Decoding

    /// The exact bytes of `ids` concatenated. Control and unknown tokens decode to their text
    /// unless `skipSpecial`; an id outside the vocabulary decodes to U+FFFD.
    public func decode(_ ids: [Int], skipSpecial: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        for id in ids { appendBytes(of: id, skipSpecial: skipSpecial, to: &out) }
        return out
    }

    /// `decode` as a String (invalid UTF-8 becomes U+FFFD).
    public func decodeString(_ ids: [Int], skipSpecial: Bool = false) -> String {
        String(decoding: decode(ids, skipSpecial: skipSpecial), as: UTF8.self)
    }

    /// The bytes of one token.
    public func bytes(of id: Int) -> [UInt8] {
        var out: [UInt8] = []
        appendBytes(of: id, skipSpecial: false, to: &out)
        return out
    }

    /// Whether `id` is a control or unknown token (rendered only when special tokens are shown).
    public func isSpecial(_ id: Int) -> Bool {
        guard id >= 0, id < tokenTypes.count else { return false }
        return tokenTypes[id] == .control || tokenTypes[id] == .unknown
    }

    @inline(__always)
    func appendBytes(of id: Int, skipSpecial: Bool, to out: inout [UInt8]) {
        guard id >= 0, id < tokens.count else {
            out.append(contentsOf: [0xEF, 0xBF, 0xBD])
            return
        }
        if skipSpecial && isSpecial(id) { return }
        out.append(contentsOf: decodeBytes[decodeOffsets[id]..<decodeOffsets[id + 1]])
    }
}
