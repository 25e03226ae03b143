// Incremental detokenization: emits text as tokens arrive, holding back incomplete UTF-8.

/// Turns a stream of token ids into text pieces, never splitting a multi-byte character.
///
/// A character whose bytes span several tokens is emitted once its last byte arrives; bytes
/// that can never form a valid character are emitted as U+FFFD.
public struct StreamingDecoder {
    private let tokenizer: BPETokenizer
    private let skipSpecial: Bool
    private var pending: [UInt8] = []

    /// Creates a decoder; `skipSpecial` drops control tokens from the output.
    public init(tokenizer: BPETokenizer, skipSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
    }

    /// Adds one token and returns the text that became complete (possibly empty).
    public mutating func push(_ id: Int) -> String {
        tokenizer.appendBytes(of: id, skipSpecial: skipSpecial, to: &pending)
        let cut = Self.completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Returns whatever is still held back (an incomplete character becomes U+FFFD) and resets.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// The bytes held back waiting for the rest of a character.
    public var pendingBytes: [UInt8] { pending }

    /// The length of the longest prefix of `bytes` that does not end inside an incomplete (but
    /// so far valid-looking) UTF-8 sequence.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        // Look back at most 3 bytes for the lead byte of the last sequence.
        var i = n - 1
        while i >= 0 && i >= n - 4 {
            let b = bytes[i]
            if b & 0xC0 != 0x80 {
                // `b` starts a sequence: ASCII, a lead byte, or an invalid byte.
                let need: Int
                switch b {
                case 0xC2...0xDF: need = 2
                case 0xE0...0xEF: need = 3
                case 0xF0...0xF4: need = 4
                default: need = 1 // ASCII or invalid: complete as far as holding back goes
                }
                return n - i < need ? i : n
            }
            i -= 1
        }
        return n // only continuation bytes at the end: invalid, nothing to wait for
    }
}
