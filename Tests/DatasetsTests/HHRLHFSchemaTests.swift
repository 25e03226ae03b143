// The hh-rlhf schema on hand-written dialogues and on the real harmless-base test split.

import Datasets
import Tokenizers
import XCTest

final class HHRLHFSchemaTests: XCTestCase {
    func testSplitAtLastSharedAssistantMarker() throws {
        let chosen = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help with that."
        let rejected = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: How do I pick a lock?\n\nAssistant: Insert a tension wrench."
        let parts = try XCTUnwrap(HHRLHFSchema.split(chosen: chosen, rejected: rejected))
        XCTAssertEqual(parts.prompt, "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: How do I pick a lock?\n\nAssistant:")
        XCTAssertEqual(parts.chosen, " I can't help with that.")
        XCTAssertEqual(parts.rejected, " Insert a tension wrench.")
        // Responses that share a first word do not move the split past the marker.
        let same = try XCTUnwrap(HHRLHFSchema.split(chosen: "\n\nHuman: Q\n\nAssistant: I think so", rejected: "\n\nHuman: Q\n\nAssistant: I know"))
        XCTAssertEqual(same.prompt, "\n\nHuman: Q\n\nAssistant:")
        XCTAssertEqual(same.rejected, " I know")
        XCTAssertNil(HHRLHFSchema.split(chosen: "\n\nHuman: A", rejected: "\n\nHuman: B"))
    }

    func testPromptParsesIntoAlternatingTurns() {
        let prompt = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Question?\n\nAssistant:"
        XCTAssertEqual(HHRLHFSchema.messages(fromPrompt: prompt), [.user("Hi"), .assistant("Hello!"), .user("Question?")])
        XCTAssertEqual(HHRLHFSchema.messages(fromPrompt: "Context.\n\nHuman: Q\n\nAssistant:"), [.system("Context."), .user("Q")])
    }

    func testRenderingTheParsedPromptWithTheHHTemplateReproducesTheText() throws {
        let template = try ToyTokenizer.template(.hhRLHF)
        let prompt = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Question?\n\nAssistant:"
        let tokens = template.renderPrompt(HHRLHFSchema.messages(fromPrompt: prompt)).tokens
        XCTAssertEqual(template.tokenizer.decodeString(tokens), prompt)
    }

    func testLoadCountsAndErrors() throws {
        let dir = try TempDirectory()
        let path = try dir.write("hh.jsonl", """
        {"chosen": "\\n\\nHuman: Q1\\n\\nAssistant: Safe answer.", "rejected": "\\n\\nHuman: Q1\\n\\nAssistant: Harmful answer."}
        {"chosen": "\\n\\nHuman: Q2\\n\\nAssistant: Same", "rejected": "\\n\\nHuman: Q2\\n\\nAssistant: Same"}
        {"chosen": "\\n\\nHuman: Q3\\n\\nAssistant: ", "rejected": "\\n\\nHuman: Q3\\n\\nAssistant: Something."}
        {"chosen": "\\n\\nHuman: A", "rejected": "\\n\\nHuman: B"}
        """)
        let e = expectDatasetError(try DatasetLoader.load(.hhRLHF, paths: [path]))
        XCTAssertEqual(e?.line, 4)
        XCTAssertEqual(e?.field, "chosen")
        var skip = DatasetOptions()
        skip.skipInvalidRows = true
        let d = try DatasetLoader.load(.hhRLHF, paths: [path], options: skip)
        XCTAssertEqual(d.pairs.count, 1)
        XCTAssertEqual(d.pairs[0].aspect, .harmlessness)
        XCTAssertEqual(d.pairs[0].chosen, "Safe answer.")
        XCTAssertEqual(d.pairs[0].prompt, [.user("Q1")])
        XCTAssertEqual(d.report.rows, 4)
        XCTAssertEqual(d.report.droppedIdenticalResponses, 1)
        XCTAssertEqual(d.report.droppedEmptyResponse, 1)
        XCTAssertEqual(d.report.skippedInvalid, 1)
    }

    /// The real Anthropic HH-RLHF harmless-base test split (2,312 rows).
    func testRealHarmlessBaseTestSplit() throws {
        let path = try SharedData.require("hh-rlhf/harmless-base-test.jsonl.gz")
        let d = try DatasetLoader.load(.hhRLHF, paths: [path])
        print("hh-rlhf harmless-base-test: \(d.report)")
        XCTAssertEqual(d.report.rows, 2312)
        XCTAssertEqual(d.report.skippedInvalid, 0)
        // Four rows have a whitespace-only chosen response (lines 87, 517, 926, 1104).
        XCTAssertEqual(d.report.droppedEmptyResponse, 4)
        XCTAssertEqual(d.pairs.count, 2308)
        XCTAssertEqual(d.report.pairs, 2308)
        let template = try ToyTokenizer.template(.hhRLHF)
        var reproduced = 0
        for p in d.pairs {
            let text = try XCTUnwrap(p.promptText)
            XCTAssertTrue(text.hasSuffix("\n\nAssistant:"), "line \(p.source.line)")
            XCTAssertTrue(text.hasPrefix("\n\nHuman:"), "line \(p.source.line)")
            XCTAssertNotEqual(p.chosen, p.rejected, "line \(p.source.line)")
            XCTAssertFalse(p.chosen.isEmpty || p.rejected.isEmpty, "line \(p.source.line)")
            XCTAssertEqual(p.prompt.last?.role, .user, "line \(p.source.line)")
            XCTAssertEqual(p.prompt.first?.role, .user, "line \(p.source.line)")
            if template.tokenizer.decodeString(template.renderPrompt(p.prompt).tokens) == text { reproduced += 1 }
        }
        XCTAssertEqual(Set(d.pairs.map(\.source.line)).isDisjoint(with: [87, 517, 926, 1104]), true)
        print("hh-rlhf: \(reproduced) of \(d.pairs.count) prompts re-render byte-exactly with the hh-rlhf template")
        XCTAssertGreaterThan(reproduced, d.pairs.count * 9 / 10)
    }
}
