// GPT-2's reversible byte ↔ unicode mapping used by byte-level BPE vocabularies.
//
// Printable Latin-1 bytes ('!'...'~', '¡'...'¬', '®'...'ÿ') map to themselves; the other 68 bytes
// map, in byte order, to U+0100, U+0101, ... so that every byte is a visible character
// (space 0x20 → 'Ġ' U+0120, newline 0x0A → 'Ċ' U+010A).

/// The GPT-2 byte-level alphabet: 256 bytes ↔ 256 unicode scalars.
public enum ByteLevel {
    /// `scalar[b]` is the character that stands for byte `b` in vocabulary strings.
    public static let scalarForByte: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if isPrintable(UInt8(b)) {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                // 256...323 are all valid scalars.
                table[b] = Unicode.Scalar(next) ?? "?"
                next += 1
            }
        }
        return table
    }()

    /// The byte a vocabulary character stands for, indexed by scalar value 0...323 (-1: none).
    private static let byteForScalarValue: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (b, s) in scalarForByte.enumerated() { table[Int(s.value)] = Int16(b) }
        return table
    }()

    private static func isPrintable(_ b: UInt8) -> Bool {
        (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
    }

    /// The byte that `scalar` stands for, or nil if it is not in the byte-level alphabet.
    @inline(__always)
    public static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let v = Int(scalar.value)
        guard v < byteForScalarValue.count else { return nil }
        let b = byteForScalarValue[v]
        return b < 0 ? nil : UInt8(b)
    }

    /// Encodes raw bytes as a byte-level string (each byte one character).
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(scalarForByte[Int(b)]) }
        return String(s)
    }

    /// Decodes a byte-level string to raw bytes, or nil if a character is outside the alphabet.
    public static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for s in text.unicodeScalars {
            guard let b = byte(for: s) else { return nil }
            out.append(b)
        }
        return out
    }
}
