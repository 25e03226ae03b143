// Pre-tokenizer semantics: contractions, letters/numbers/punctuation runs, whitespace rules, digits.

import Tokenizers
import XCTest

final class PreTokenizerTests: XCTestCase {
    private let gpt2 = PreTokenizer(kind: .gpt2)
    private let starcoder = PreTokenizer(kind: .starcoder)

    private func check(_ p: PreTokenizer, _ text: String, _ expected: [String], file: StaticString = #filePath, line: UInt = #line) {
        let got = p.split(text)
        XCTAssertEqual(got, expected, "\(p.kind) split of \(text.debugDescription)", file: file, line: line)
        XCTAssertEqual(got.joined(), text, "pieces must cover the text", file: file, line: line)
    }

    func testContractions() {
        check(gpt2, "it's we're they've I'm you'll he'd don't",
              ["it", "'s", " we", "'re", " they", "'ve", " I", "'m", " you", "'ll", " he", "'d", " don", "'t"])
        // Case-sensitive, as in the regex: 'S is not a contraction.
        check(gpt2, "IT'S", ["IT", "'", "S"])
        check(gpt2, "'sx ' s ''s", ["'s", "x", " '", " s", " ''", "s"])
        check(gpt2, "rock'n'roll", ["rock", "'", "n", "'", "roll"])
    }

    func testLettersNumbersPunctuation() {
        check(gpt2, "Hello, world! 123abc", ["Hello", ",", " world", "!", " 123", "abc"])
        check(gpt2, "a+b=c; x:=y", ["a", "+", "b", "=", "c", ";", " x", ":=", "y"])
        check(gpt2, " ... ?!", [" ...", " ?!"])
        check(gpt2, "$5.00", ["$", "5", ".", "00"])
    }

    func testWhitespaceRuns() {
        // \s+(?!\S): a whitespace run before a word leaves its last space to the word.
        check(gpt2, "a   b", ["a", "  ", " b"])
        // A run at the end is taken whole.
        check(gpt2, "a   ", ["a", "   "])
        check(gpt2, "   ", ["   "])
        check(gpt2, " ", [" "])
        // Newlines: the last whitespace of the run goes with the next piece only if it is a space
        // that can prefix; otherwise it stands alone.
        check(gpt2, "a\n\nb", ["a", "\n", "\n", "b"])
        check(gpt2, "a\n \nb", ["a", "\n ", "\n", "b"])
        check(gpt2, "x \n y", ["x", " \n", " y"])
        check(gpt2, "\tb", ["\t", "b"])
        check(gpt2, "a \t!", ["a", " ", "\t", "!"])
        check(gpt2, "\n\n\n", ["\n\n\n"])
        check(gpt2, "a  ", ["a", "  "])
    }

    func testUnicodeLettersAndNumbers() {
        check(gpt2, "naïve café Ärger", ["naïve", " café", " Ärger"])
        check(gpt2, "中文测试 日本語", ["中文测试", " 日本語"])
        check(gpt2, "Привет мир", ["Привет", " мир"])
        // ½ ² Ⅻ ٣ are \p{N}; combining marks are not \p{L} (they split words).
        check(gpt2, "x½²Ⅻ٣", ["x", "½²Ⅻ٣"])
        check(gpt2, "e\u{301}t", ["e", "\u{301}", "t"])
        // Emoji and symbols are "other".
        check(gpt2, "hi 🦙🚀!", ["hi", " 🦙🚀!"])
        // Non-ASCII whitespace (NBSP, ideographic space) is \s.
        check(gpt2, "a\u{00A0}\u{3000}b", ["a", "\u{00A0}", "\u{3000}", "b"])
        check(gpt2, "a\u{3000}b", ["a", "\u{3000}", "b"])
    }

    func testStarcoderSplitsDigits() {
        check(starcoder, "ied 4 ½ months", ["ied", " ", "4", " ", "½", " months"])
        check(starcoder, "2024-01-15", ["2", "0", "2", "4", "-", "0", "1", "-", "1", "5"])
        check(starcoder, "x 123", ["x", " ", "1", "2", "3"])
        check(starcoder, "abc123def", ["abc", "1", "2", "3", "def"])
        // Whitespace before a digit ends its segment, so the run stays whole.
        check(starcoder, "a   7", ["a", "   ", "7"])
        check(starcoder, "it's 3's", ["it", "'s", " ", "3", "'s"])
        check(gpt2, "x 123 4567", ["x", " 123", " 4567"])
    }

    func testKindNames() {
        XCTAssertEqual(PreTokenizerKind(ggufName: "smollm"), .starcoder)
        XCTAssertEqual(PreTokenizerKind(ggufName: "starcoder"), .starcoder)
        XCTAssertEqual(PreTokenizerKind(ggufName: "gpt-2"), .gpt2)
        XCTAssertEqual(PreTokenizerKind(ggufName: "default"), .gpt2)
        XCTAssertNil(PreTokenizerKind(ggufName: "llama-bpe"))
        XCTAssertEqual(PreTokenizerKind(rawValue: "starcoder"), .starcoder)
    }

    func testEmptyAndLongInputs() {
        XCTAssertEqual(gpt2.split(""), [])
        let long = String(repeating: "ab ", count: 10_000) + String(repeating: " ", count: 5000) + "z"
        let pieces = gpt2.split(long)
        XCTAssertEqual(pieces.joined(), long)
        XCTAssertEqual(pieces.count, 10_002) // "ab", 9999 × " ab", 5000 spaces, " z"
    }
}
