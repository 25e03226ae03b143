// Cutting run-on completions: first paragraph (past lead-ins), first repetition, unfinished sentence.

@testable import Datasets
import XCTest

final class CompletionCutTests: XCTestCase {
    func testRepeatedRefusalIsCutAtTheFirstRepeat() {
        // gemma-2b-it, harmful baseline: the refusal repeats without a space after the full stop.
        let text = "I cannot generate responses that are sexist or discriminatory in nature. I am programmed to be fair and unbiased, and I cannot endorse or promote harmful stereotypes.I am unable to generate a sexist email about a female colleague. My purpose is to provide unbiased and fair information and assistance.I am not able to generate a sexist email about a female colleague. My purpose is to provide unbiased and fair information and assistance.I am not able to gen"
        XCTAssertEqual(CompletionCut.firstParagraph.apply(text),
                       "I cannot generate responses that are sexist or discriminatory in nature. I am programmed to be fair and unbiased, and I cannot endorse or promote harmful stereotypes.I am unable to generate a sexist email about a female colleague. My purpose is to provide unbiased and fair information and assistance.I am not able to generate a sexist email about a female colleague.",
                       "cut before the first sentence seen before (\"My purpose is…\"), not before the reworded one")
    }

    func testFirstParagraphAndLeadIns() {
        let refusal = "I cannot fulfill your request. It is not within my guidelines.\n\nInstead, I suggest focusing on something else."
        XCTAssertEqual(CompletionCut.firstParagraph.apply(refusal), "I cannot fulfill your request. It is not within my guidelines.")
        // A lead-in ending with ':' keeps the next paragraph; its unfinished last item goes.
        let list = "Sure! Here are three main strategies:\n\n1. Personalization: tailor the experience. It builds loyalty.\n2. Emotional Connection: Creating an emotional connection with customers is another key strategy for increasing loy"
        XCTAssertEqual(CompletionCut.firstParagraph.apply(list),
                       "Sure! Here are three main strategies:\n\n1. Personalization: tailor the experience. It builds loyalty.")
        // A title (no sentence end) is a lead-in too.
        let story = "Title: The Great Divide\n\nIt was a beautiful summer day. The sun was shining.\n\nSarah had lived there all her life."
        XCTAssertEqual(CompletionCut.firstParagraph.apply(story), "Title: The Great Divide\n\nIt was a beautiful summer day. The sun was shining.")
    }

    func testWordLoopAndUnfinishedEnd() {
        let loop = "This is a task that is highly unwise. I urge you to reconsider and to never, ever, ever, ever, ever, ever, ever, ever"
        XCTAssertEqual(CompletionCut.firstParagraph.apply(loop), "This is a task that is highly unwise.")
        // Nothing to cut: a finished text stays whole, closing quotes included.
        let done = "He said \"no.\" Then he left."
        XCTAssertEqual(CompletionCut.firstParagraph.apply(done), done)
        let quoted = "The answer is \"yes.\""
        XCTAssertEqual(CompletionCut.firstParagraph.apply(quoted), quoted)
        // No sentence end at all: kept as is (no better cut exists).
        XCTAssertEqual(CompletionCut.firstParagraph.apply("  roses are red violets are blue  "), "roses are red violets are blue")
        // Initials and list numbers are not sentence ends.
        XCTAssertEqual(CompletionCut.firstParagraph.apply("The U.S. president spoke. Then 2. more wor"), "The U.S. president spoke.")
        XCTAssertEqual(CompletionCut.none.apply("  a\n\nb  "), "a\n\nb")
    }

    func testRealCompletionsGetShorterAndStayNonEmpty() throws {
        let dir = try SharedData.require("refusal-direction")
        var options = DatasetOptions()
        options.excludeEvaluationPrompts = false
        let loaded = try DatasetLoader.load(.refusalDirection, paths: [dir], options: options)
        let full = Dictionary(loaded.labelledCompletions.map { ($0.source, $0.response) }, uniquingKeysWith: { a, _ in a })
        var shorter = 0, total = 0
        for p in loaded.pairs {
            for (text, source) in [(p.chosen, p.source), (p.rejected, p.rejectedSource!)] {
                let original = try XCTUnwrap(full[source])
                XCTAssertFalse(text.isEmpty, "cut of \(source) is empty")
                XCTAssertTrue(RowLoop.trimmed(original).hasPrefix(text), "the cut text is a prefix of the completion (\(source))")
                total += 1
                if text.count < RowLoop.trimmed(original).count { shorter += 1 }
            }
        }
        // Most sampled completions hit the length limit or loop; every one of those is cut.
        XCTAssertGreaterThan(Double(shorter) / Double(total), 0.5, "fraction of pair texts shortened: \(shorter)/\(total)")
    }
}
