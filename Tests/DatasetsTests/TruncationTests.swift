// Tokenization with a chat template and TRL's truncation rules, with a byte-per-token toy tokenizer.

import Datasets
import Tokenizers
import XCTest

final class TruncationTests: XCTestCase {
    private func pair(_ prompt: String, _ chosen: String, _ rejected: String) -> PreferencePair {
        PreferencePair(id: "p", prompt: [.user(prompt)], chosen: chosen, rejected: rejected,
                       source: SourceLocation(file: "mem", line: 1))
    }

    func testToyTokenizerIsOneTokenPerByte() throws {
        let t = try ToyTokenizer.template(.chatML)
        // <|im_start|> "user\nhi" <|im_end|> "\n" <|im_start|> "assistant\n"
        let prompt = t.renderPrompt([.user("hi")])
        XCTAssertEqual(prompt.tokens.count, 1 + 7 + 1 + 1 + 1 + 10)
        XCTAssertEqual(prompt.tokens.first, ToyTokenizer.imStart)
        XCTAssertEqual(t.responseTokens("abc").count, 4)
        XCTAssertEqual(t.responseTokens("abc").last, ToyTokenizer.imEnd)
    }

    func testNoLimitsKeepsEverything() throws {
        let t = try ToyTokenizer.template(.chatML)
        let tp = try PairTokenizer(template: t).tokenize(pair("hi", "yes", "no")).get()
        XCTAssertEqual(tp.promptTokens, t.renderPrompt([.user("hi")]).tokens)
        XCTAssertEqual(tp.responseStart, 21)
        XCTAssertEqual(tp.chosenTokens, t.responseTokens("yes"))
        XCTAssertEqual(tp.rejectedTokens, t.responseTokens("no"))
        XCTAssertEqual(tp.chosenSequence, t.render([.user("hi")], response: "yes").tokens)
    }

    func testPromptKeepsItsEndAndResponsesKeepTheirStart() throws {
        let t = try ToyTokenizer.template(.chatML)
        let long = String(repeating: "abcdefghij", count: 10) // 100 bytes
        let full = t.renderPrompt([.user(long)]).tokens       // 114 tokens
        let tokenizer = try PairTokenizer(template: t, limits: TruncationLimits(maxLength: 40, maxPromptLength: 30))
        var report = LoadReport()
        let out = tokenizer.tokenize([pair(long, "the chosen answer", "no")], report: &report)
        let tp = try XCTUnwrap(out.first)
        XCTAssertEqual(tp.promptTokens, Array(full.suffix(30)), "left truncation keeps the end of the prompt")
        XCTAssertEqual(Array(tp.promptTokens.suffix(11)), [ToyTokenizer.imStart] + Array("assistant\n".utf8).map { t.tokenizer.encode(String(UnicodeScalar($0)))[0] })
        XCTAssertEqual(tp.chosenTokens, Array(t.responseTokens("the chosen answer").prefix(10)), "right truncation keeps the start")
        XCTAssertEqual(tp.rejectedTokens, t.responseTokens("no"), "a short response is untouched (keeps its end-of-turn)")
        XCTAssertLessThanOrEqual(tp.chosenSequence.count, 40)
        XCTAssertEqual(tp.chosenSequence.count, 40)
        XCTAssertEqual(report.truncatedPrompts, 1)
        XCTAssertEqual(report.truncatedResponses, 1)
        XCTAssertEqual(report.pairs, 1)
    }

    func testShortPromptIsNotTruncatedAndResponseGetsTheRest() throws {
        let t = try ToyTokenizer.template(.chatML)
        let tokenizer = try PairTokenizer(template: t, limits: TruncationLimits(maxLength: 30, maxPromptLength: 25))
        let tp = try tokenizer.tokenize(pair("hi", String(repeating: "z", count: 50), "ok")).get()
        XCTAssertEqual(tp.promptTokens.count, 21)
        XCTAssertEqual(tp.chosenTokens.count, 9)
        XCTAssertEqual(tp.rejectedTokens, t.responseTokens("ok"))
    }

    func testPromptFillingTheLengthIsDropped() throws {
        let t = try ToyTokenizer.template(.chatML)
        let tokenizer = try PairTokenizer(template: t, limits: TruncationLimits(maxLength: 21))
        XCTAssertEqual(tokenizer.tokenize(pair("hi", "a", "b")), .failure(.promptTooLong)) // prompt is exactly 21
        let roomForOne = try PairTokenizer(template: t, limits: TruncationLimits(maxLength: 22))
        let tp = try roomForOne.tokenize(pair("hi", "ab", "c")).get()
        XCTAssertEqual(tp.chosenTokens, [t.tokenizer.encode("a")[0]])
        var report = LoadReport()
        XCTAssertTrue(tokenizer.tokenize([pair("hi", "a", "b"), pair("hello there", "a", "b")], report: &report).isEmpty)
        XCTAssertEqual(report.droppedPromptTooLong, 2)
        XCTAssertEqual(report.pairs, 0)
    }

    func testEmptyResponseIsDropped() throws {
        let t = try ToyTokenizer.template(.chatML)
        let tokenizer = try PairTokenizer(template: t, limits: TruncationLimits(maxLength: 64))
        XCTAssertEqual(tokenizer.tokenize(pair("hi", "", "b")), .failure(.emptyResponse))
        XCTAssertEqual(tokenizer.tokenize(pair("hi", "a", "")), .failure(.emptyResponse))
        var report = LoadReport()
        let kept = tokenizer.tokenize([pair("hi", "", "b"), pair("hi", "a", "b")], report: &report)
        XCTAssertEqual(kept.count, 1)
        XCTAssertEqual(report.droppedEmptyResponse, 1)
        XCTAssertEqual(report.droppedPromptTooLong, 0)
    }

    func testInvalidLimitsNameTheSetting() throws {
        let t = try ToyTokenizer.template(.chatML)
        let e = expectDatasetError(try PairTokenizer(template: t, limits: TruncationLimits(maxLength: 128, maxPromptLength: 128)))
        XCTAssertEqual(e?.field, "maxPromptLength")
        XCTAssertEqual(expectDatasetError(try PairTokenizer(template: t, limits: TruncationLimits(maxLength: 1)))?.field, "maxLength")
    }

    func testSafetyPairsAndScoredResponsesCarryLabels() throws {
        let t = try ToyTokenizer.template(.safeRLHF)
        let tokenizer = try PairTokenizer(template: t, limits: TruncationLimits(maxLength: 256))
        let sp = SafetyPair(id: "s", prompt: [.user("Q")], safer: "No.", unsafer: "Yes, here.", saferIsSafe: true,
                            unsaferIsSafe: false, source: SourceLocation(file: "mem", line: 2))
        var report = LoadReport()
        let tp = try XCTUnwrap(tokenizer.tokenize([sp], report: &report).first)
        XCTAssertEqual(tp.chosenIsSafe, true)
        XCTAssertEqual(tp.rejectedIsSafe, false)
        XCTAssertEqual(tp.aspect, .harmlessness)
        XCTAssertEqual(t.tokenizer.decodeString(tp.chosenSequence),
                       "BEGINNING OF CONVERSATION: USER: Q ASSISTANT: No.<|endoftext|>")
        let sr = ScoredResponse(id: "r", prompt: [.user("Q")], response: "A", reward: 1, cost: -1,
                                source: SourceLocation(file: "mem", line: 3))
        let tr = try XCTUnwrap(tokenizer.tokenize([sr], report: &report).first)
        XCTAssertEqual(tr.reward, 1)
        XCTAssertEqual(tr.cost, -1)
        XCTAssertEqual(tr.responseStart, tr.promptTokens.count)
        XCTAssertEqual(t.tokenizer.decodeString(tr.sequence), "BEGINNING OF CONVERSATION: USER: Q ASSISTANT: A<|endoftext|>")
    }

    func testHHPairsTokenizeToTheOriginalDialogue() throws {
        let t = try ToyTokenizer.template(.hhRLHF)
        let chosen = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Steal a car?\n\nAssistant: No, that's illegal."
        let rejected = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Steal a car?\n\nAssistant: Sure, first..."
        let parts = try XCTUnwrap(HHRLHFSchema.split(chosen: chosen, rejected: rejected))
        let p = PreferencePair(id: "h", prompt: HHRLHFSchema.messages(fromPrompt: parts.prompt), promptText: parts.prompt,
                               chosen: "No, that's illegal.", rejected: "Sure, first...", source: SourceLocation(file: "mem", line: 1))
        let tp = try PairTokenizer(template: t).tokenize(p).get()
        XCTAssertEqual(t.tokenizer.decodeString(tp.chosenSequence), chosen + "<|endoftext|>")
        XCTAssertEqual(t.tokenizer.decodeString(tp.rejectedSequence), rejected + "<|endoftext|>")
    }
}
