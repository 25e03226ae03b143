// Byte-level alphabet and exact byte round trips (including invalid UTF-8), streaming decoding.

import Tokenizers
import XCTest

final class ByteLevelTests: XCTestCase {
    func testAlphabetIsABijection() {
        let scalars = ByteLevel.scalarForByte
        XCTAssertEqual(Set(scalars).count, 256)
        XCTAssertEqual(scalars[0x20], "Ġ")
        XCTAssertEqual(scalars[0x0A], "Ċ")
        XCTAssertEqual(scalars[0x41], "A")
        XCTAssertEqual(scalars[0x00], "\u{100}")
        XCTAssertEqual(scalars[0xAD], "\u{143}")
        for b in 0..<256 { XCTAssertEqual(ByteLevel.byte(for: scalars[b]), UInt8(b)) }
        XCTAssertNil(ByteLevel.byte(for: " "))
        XCTAssertNil(ByteLevel.byte(for: "🦙"))
        XCTAssertNil(ByteLevel.decode("a b"))
    }

    func testRandomBytesRoundTrip() throws {
        var rng = SystemRandomNumberGenerator()
        let t = try TestVocabulary.english.tokenizer()
        for _ in 0..<200 {
            let bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            XCTAssertEqual(ByteLevel.decode(ByteLevel.encode(bytes)), bytes)
            // Byte tokens (ids 0...255 are the bytes in this vocabulary) decode to exactly those bytes,
            // whether or not they form valid UTF-8.
            XCTAssertEqual(t.decode(bytes.map { Int($0) }), bytes)
        }
        // Valid UTF-8 text round-trips through encode/decode.
        for _ in 0..<200 {
            let scalars = (0..<Int.random(in: 0...30, using: &rng)).compactMap { _ -> Character? in
                let ranges: [ClosedRange<UInt32>] = [0x20...0x7E, 0x09...0x0D, 0xA0...0x24F, 0x4E00...0x4E50, 0x1F300...0x1F340, 0x0600...0x06FF]
                return UnicodeScalar(UInt32.random(in: ranges.randomElement(using: &rng)!, using: &rng)).map(Character.init)
            }
            let text = String(scalars)
            XCTAssertEqual(t.decode(t.encode(text)), Array(text.utf8), "round trip of \(text.debugDescription)")
        }
    }

    func testStreamingDecoderHoldsIncompleteCharacters() throws {
        let t = try TestVocabulary.english.tokenizer()
        var d = StreamingDecoder(tokenizer: t)
        // "é" = C3 A9 and "🦙" = F0 9F A6 99, one byte per token.
        XCTAssertEqual(d.push(0x61), "a")
        XCTAssertEqual(d.push(0xC3), "")
        XCTAssertEqual(d.pendingBytes, [0xC3])
        XCTAssertEqual(d.push(0xA9), "é")
        for b: UInt8 in [0xF0, 0x9F, 0xA6] { XCTAssertEqual(d.push(Int(b)), "") }
        XCTAssertEqual(d.push(0x99), "🦙")
        // A multi-byte token completing a character and starting another.
        XCTAssertEqual(d.push(0xE4), "")
        XCTAssertEqual(d.push(0xB8), "")
        XCTAssertEqual(d.push(0xAD), "中")
        XCTAssertEqual(d.finish(), "")

        // Invalid bytes are not held back forever: they come out as U+FFFD.
        var e = StreamingDecoder(tokenizer: t)
        XCTAssertEqual(e.push(0xFF), "\u{FFFD}")
        XCTAssertEqual(e.push(0x80), "\u{FFFD}")
        XCTAssertEqual(e.push(0xE4), "")
        XCTAssertEqual(e.push(0x41), "\u{FFFD}A", "an interrupted sequence becomes U+FFFD")
        XCTAssertEqual(e.push(0xF0), "")
        XCTAssertEqual(e.finish(), "\u{FFFD}", "finish flushes an incomplete character")
        XCTAssertEqual(e.finish(), "")

        // Streaming a whole encoding gives the same text as decoding it at once.
        let text = "naïve 中文 🦙 text\nwith ünïcödé"
        var s = StreamingDecoder(tokenizer: t)
        var streamed = ""
        for id in t.encode(text) { streamed += s.push(id) }
        streamed += s.finish()
        XCTAssertEqual(streamed, text)
    }

    func testStreamingDecoderSkipsSpecialWhenAsked() throws {
        let v = TestVocabulary.english
        let t = try v.tokenizer()
        let end = v.tokens.firstIndex(of: "<|im_end|>")!
        var keep = StreamingDecoder(tokenizer: t)
        XCTAssertEqual(keep.push(end), "<|im_end|>")
        var skip = StreamingDecoder(tokenizer: t, skipSpecial: true)
        XCTAssertEqual(skip.push(end), "")
    }
}
