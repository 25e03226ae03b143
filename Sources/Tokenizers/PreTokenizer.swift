// Pre-tokenizers: split text into pieces before BPE, implemented by hand over Unicode properties.
//
// gpt2:      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// starcoder: first isolate every \p{N} scalar (digits one by one), then apply the gpt2 pattern to
//            each resulting segment (SmolLM2's `smollm` pre-tokenizer is the same).
// \p{L} = Lu Ll Lt Lm Lo, \p{N} = Nd Nl No, \s = White_Space; contractions are case-sensitive.

/// Which pre-tokenization rule a byte-level BPE vocabulary uses.
public enum PreTokenizerKind: String, Sendable, CaseIterable, Codable {
    /// GPT-2's regex.
    case gpt2
    /// Digits split one by one, then GPT-2's regex (StarCoder, SmolLM/SmolLM2).
    case starcoder

    /// The kind for a GGUF `tokenizer.ggml.pre` name, or nil if it is not supported.
    ///
    /// `default` (or an absent key) means GPT-2's regex in llama.cpp.
    public init?(ggufName: String) {
        switch ggufName {
        case "gpt-2", "gpt2", "default", "phi-2", "mpt", "olmo", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de":
            self = .gpt2
        case "smollm", "starcoder", "refact", "codeshell", "command-r", "exaone", "minerva-7b":
            self = .starcoder
        default:
            return nil
        }
    }
}

/// Splits UTF-8 text into pre-tokenizer pieces.
public struct PreTokenizer: Sendable {
    /// The rule this pre-tokenizer applies.
    public let kind: PreTokenizerKind

    public init(kind: PreTokenizerKind) { self.kind = kind }

    // Scalar classes. Exactly one applies to each scalar.
    static let other: UInt8 = 0, letter: UInt8 = 1, number: UInt8 = 2, space: UInt8 = 3

    private static let asciiClasses: [UInt8] = (0..<128).map { v in
        switch UInt8(v) {
        case 0x09...0x0D, 0x20: return space
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): return letter
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return number
        default: return other
        }
    }

    /// The class of one scalar: letter (\p{L}), number (\p{N}), space (\s) or other.
    @inline(__always)
    static func classify(_ v: UInt32) -> UInt8 {
        if v < 128 { return asciiClasses[Int(v)] }
        guard let s = Unicode.Scalar(v) else { return other }
        let p = s.properties
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        default:
            return other
        }
    }

    /// The pieces of `text` as strings (convenient for tests; encoding uses `split(_:range:into:)`).
    public func split(_ text: String) -> [String] {
        let bytes = Array(text.utf8)
        var ranges: [Range<Int>] = []
        bytes.withUnsafeBufferPointer { split($0, range: 0..<bytes.count, into: &ranges) }
        return ranges.map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    /// Appends to `pieces` the byte ranges of the pieces of `bytes[range]`, which must be valid
    /// UTF-8 starting and ending at character boundaries (invalid bytes are classed as "other").
    public func split(_ bytes: UnsafeBufferPointer<UInt8>, range: Range<Int>, into pieces: inout [Range<Int>]) {
        guard !range.isEmpty, range.lowerBound >= 0, range.upperBound <= bytes.count else { return }
        // Decode scalars: value, class and starting byte offset (+ a sentinel offset).
        var cps: [UInt32] = []
        var classes: [UInt8] = []
        var starts: [Int] = []
        cps.reserveCapacity(range.count)
        classes.reserveCapacity(range.count)
        starts.reserveCapacity(range.count + 1)
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let (v, n) = Self.decodeScalar(bytes, at: i, end: end)
            cps.append(v)
            classes.append(Self.classify(v))
            starts.append(i)
            i += n
        }
        starts.append(end)
        let count = cps.count

        cps.withUnsafeBufferPointer { cp in
            classes.withUnsafeBufferPointer { cls in
                starts.withUnsafeBufferPointer { st in
                    switch kind {
                    case .gpt2:
                        Self.matchGPT2(cp, cls, st, 0, count, &pieces)
                    case .starcoder:
                        var segmentStart = 0
                        for k in 0..<count where cls[k] == Self.number {
                            if segmentStart < k { Self.matchGPT2(cp, cls, st, segmentStart, k, &pieces) }
                            pieces.append(st[k]..<st[k + 1])
                            segmentStart = k + 1
                        }
                        if segmentStart < count { Self.matchGPT2(cp, cls, st, segmentStart, count, &pieces) }
                    }
                }
            }
        }
    }

    /// Decodes one UTF-8 scalar at `i`; malformed bytes decode as U+FFFD of length 1.
    @inline(__always)
    static func decodeScalar(_ b: UnsafeBufferPointer<UInt8>, at i: Int, end: Int) -> (UInt32, Int) {
        let b0 = UInt32(b[i])
        if b0 < 0x80 { return (b0, 1) }
        @inline(__always) func cont(_ k: Int) -> UInt32? {
            guard i + k < end else { return nil }
            let c = b[i + k]
            return c & 0xC0 == 0x80 ? UInt32(c & 0x3F) : nil
        }
        if b0 >= 0xC2, b0 < 0xE0, let c1 = cont(1) {
            return ((b0 & 0x1F) << 6 | c1, 2)
        }
        if b0 >= 0xE0, b0 < 0xF0, let c1 = cont(1), let c2 = cont(2) {
            let v = (b0 & 0x0F) << 12 | c1 << 6 | c2
            if v >= 0x800, !(0xD800...0xDFFF).contains(v) { return (v, 3) }
        }
        if b0 >= 0xF0, b0 < 0xF5, let c1 = cont(1), let c2 = cont(2), let c3 = cont(3) {
            let v = (b0 & 0x07) << 18 | c1 << 12 | c2 << 6 | c3
            if v >= 0x10000, v <= 0x10FFFF { return (v, 4) }
        }
        return (0xFFFD, 1)
    }

    /// Applies the GPT-2 pattern to scalars `lo..<hi`, appending byte ranges.
    static func matchGPT2(_ cp: UnsafeBufferPointer<UInt32>, _ cls: UnsafeBufferPointer<UInt8>,
                          _ st: UnsafeBufferPointer<Int>, _ lo: Int, _ hi: Int, _ pieces: inout [Range<Int>]) {
        var pos = lo
        while pos < hi {
            let c = cp[pos]
            // 's|'t|'re|'ve|'m|'ll|'d
            if c == 0x27, pos + 1 < hi {
                let n = cp[pos + 1]
                if n == 0x73 || n == 0x74 || n == 0x6D || n == 0x64 { // s t m d
                    pieces.append(st[pos]..<st[pos + 2])
                    pos += 2
                    continue
                }
                if pos + 2 < hi {
                    let nn = cp[pos + 2]
                    if (n == 0x72 && nn == 0x65) || (n == 0x76 && nn == 0x65) || (n == 0x6C && nn == 0x6C) { // re ve ll
                        pieces.append(st[pos]..<st[pos + 3])
                        pos += 3
                        continue
                    }
                }
            }
            // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional space then a run of one class.
            let q = (c == 0x20 && pos + 1 < hi) ? pos + 1 : pos
            let k = cls[q]
            if k != space {
                var e = q + 1
                while e < hi && cls[e] == k { e += 1 }
                pieces.append(st[pos]..<st[e])
                pos = e
                continue
            }
            // '\s+(?!\S)' leaves the last whitespace of a run for the next piece when a non-space
            // follows; otherwise (end of segment, or a single whitespace) '\s+' takes the run.
            var e = pos + 1
            while e < hi && cls[e] == space { e += 1 }
            if e - pos > 1 && e < hi { e -= 1 }
            pieces.append(st[pos]..<st[e])
            pos = e
        }
    }
}
