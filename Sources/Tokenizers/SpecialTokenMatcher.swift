// Finds special-token strings (control and user-defined tokens) in UTF-8 text.

/// Matches a fixed set of token strings in bytes: at each position the longest match wins.
struct SpecialTokenMatcher: Sendable {
    /// Candidates grouped by first byte, longest first.
    private var byFirstByte: [[(bytes: [UInt8], id: Int)]] = Array(repeating: [], count: 256)
    /// Whether any token is registered.
    private(set) var isEmpty = true

    init(_ tokens: [(text: String, id: Int)]) {
        for (text, id) in tokens {
            let bytes = Array(text.utf8)
            guard let first = bytes.first else { continue }
            byFirstByte[Int(first)].append((bytes, id))
            isEmpty = false
        }
        for i in 0..<256 where byFirstByte[i].count > 1 {
            byFirstByte[i].sort { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
        }
    }

    /// The longest token whose bytes start at `i` in `text[..<end]`, as (id, byte length).
    @inline(__always)
    func match(_ text: UnsafeBufferPointer<UInt8>, at i: Int, end: Int) -> (id: Int, length: Int)? {
        let candidates = byFirstByte[Int(text[i])]
        if candidates.isEmpty { return nil }
        for c in candidates where c.bytes.count <= end - i {
            var equal = true
            for k in 1..<c.bytes.count where text[i + k] != c.bytes[k] {
                equal = false
                break
            }
            if equal { return (c.id, c.bytes.count) }
        }
        return nil
    }
}
