// The trl schema: text rows, conversational rows with and without the prompt, implicit prompts.

import Datasets
import Tokenizers
import XCTest

final class TRLSchemaTests: XCTestCase {
    func testStandardTextRows() throws {
        let dir = try TempDirectory()
        let path = try dir.write("p.jsonl", """
        {"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}
        {"id": "x7", "prompt": "2+2=", "chosen": "4", "rejected": "5"}
        """)
        let d = try DatasetLoader.load(.trl, paths: [path])
        XCTAssertEqual(d.pairs.count, 2)
        XCTAssertEqual(d.pairs[0].prompt, [.user("The sky is")])
        XCTAssertEqual(d.pairs[0].promptText, "The sky is")
        XCTAssertEqual(d.pairs[0].chosen, "blue.")
        XCTAssertEqual(d.pairs[0].rejected, "green.")
        XCTAssertEqual(d.pairs[0].id, "p.jsonl:1")
        XCTAssertEqual(d.pairs[0].source, SourceLocation(file: path, line: 1))
        XCTAssertEqual(d.pairs[1].id, "x7")
        XCTAssertEqual(d.pairs[1].aspect, .general)
        XCTAssertEqual(d.report.rows, 2)
        XCTAssertEqual(d.report.pairs, 2)
    }

    func testConversationalWithPromptAndReplyOnly() throws {
        let dir = try TempDirectory()
        let path = try dir.write("c.jsonl", """
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}], "chosen": [{"role": "assistant", "content": "Hello."}], "rejected": [{"role": "assistant", "content": "Go away."}]}
        """)
        let p = try XCTUnwrap(DatasetLoader.load(.trl, paths: [path]).pairs.first)
        XCTAssertEqual(p.prompt, [.system("Be brief."), .user("Hi?")])
        XCTAssertNil(p.promptText)
        XCTAssertEqual(p.chosen, "Hello.")
        XCTAssertEqual(p.rejected, "Go away.")
    }

    func testConversationalCompletionsThatRepeatThePrompt() throws {
        let dir = try TempDirectory()
        let path = try dir.write("c.jsonl", """
        {"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A1"}], "rejected": [{"role": "assistant", "content": "A2"}]}
        {"prompt": "Q2", "chosen": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "B1"}], "rejected": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "B2"}]}
        """)
        let d = try DatasetLoader.load(.trl, paths: [path])
        XCTAssertEqual(d.pairs.map(\.chosen), ["A1", "B1"])
        XCTAssertEqual(d.pairs.map(\.rejected), ["A2", "B2"])
        XCTAssertEqual(d.pairs[1].prompt, [.user("Q2")])
    }

    func testImplicitPromptFromSharedLeadingMessages() throws {
        let dir = try TempDirectory()
        let path = try dir.write("i.jsonl", """
        {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}, {"role": "user", "content": "Joke?"}, {"role": "assistant", "content": "Knock knock."}], "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}, {"role": "user", "content": "Joke?"}, {"role": "assistant", "content": "No."}]}
        """)
        let p = try XCTUnwrap(DatasetLoader.load(.trl, paths: [path]).pairs.first)
        XCTAssertEqual(p.prompt, [.user("Hi"), .assistant("Hey"), .user("Joke?")])
        XCTAssertEqual(p.chosen, "Knock knock.")
        XCTAssertEqual(p.rejected, "No.")
    }

    func testInvalidShapesAreRowErrors() throws {
        let dir = try TempDirectory()
        let twoReplies = try dir.write("a.jsonl", """
        {"prompt": "Q", "chosen": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}], "rejected": "c"}
        """)
        let e1 = expectDatasetError(try DatasetLoader.load(.trl, paths: [twoReplies]))
        XCTAssertEqual(e1?.field, "chosen")
        XCTAssertEqual(e1?.line, 1)

        let textWithoutPrompt = try dir.write("b.jsonl", "{\"chosen\": \"a\", \"rejected\": \"b\"}\n")
        let e2 = expectDatasetError(try DatasetLoader.load(.trl, paths: [textWithoutPrompt]))
        XCTAssertEqual(e2?.kind, .missingField)
        XCTAssertEqual(e2?.field, "prompt")
        XCTAssertTrue(e2?.message.contains("hh-rlhf") ?? false)

        let userReply = try dir.write("c.jsonl", """
        {"prompt": "Q", "chosen": [{"role": "user", "content": "a"}], "rejected": "c"}
        """)
        XCTAssertTrue(expectDatasetError(try DatasetLoader.load(.trl, paths: [userReply]))?.message.contains("'assistant'") ?? false)
    }

    func testCSVWithRenamedColumnsAndAspect() throws {
        let dir = try TempDirectory()
        let path = try dir.write("r.csv", "question,good,bad\n\"Why, though?\",Because.,\"No \"\"reason\"\".\"\n")
        var options = DatasetOptions()
        options.columns.prompt = "question"
        options.columns.chosen = "good"
        options.columns.rejected = "bad"
        options.aspect = .helpfulness
        let p = try XCTUnwrap(DatasetLoader.load(.trl, paths: [path], options: options).pairs.first)
        XCTAssertEqual(p.prompt, [.user("Why, though?")])
        XCTAssertEqual(p.chosen, "Because.")
        XCTAssertEqual(p.rejected, "No \"reason\".")
        XCTAssertEqual(p.aspect, .helpfulness)
        XCTAssertEqual(p.source.line, 2)
    }

    func testEmptyAndIdenticalResponsesAreDroppedAndCounted() throws {
        let dir = try TempDirectory()
        let path = try dir.write("e.jsonl", """
        {"prompt": "Q", "chosen": "  ", "rejected": "x"}
        {"prompt": "Q", "chosen": "same", "rejected": "same "}
        {"prompt": "Q", "chosen": "a", "rejected": "b"}
        """)
        let d = try DatasetLoader.load(.trl, paths: [path])
        XCTAssertEqual(d.pairs.count, 1)
        XCTAssertEqual(d.report.droppedEmptyResponse, 1)
        XCTAssertEqual(d.report.droppedIdenticalResponses, 1)
        var keep = DatasetOptions()
        keep.dropEmptyResponses = false
        keep.dropIdenticalResponses = false
        XCTAssertEqual(try DatasetLoader.load(.trl, paths: [path], options: keep).pairs.count, 3)
    }

    func testSchemaConfigNames() throws {
        XCTAssertEqual(DatasetSchema.allCases.map(\.rawValue),
                       ["trl", "hh-rlhf", "pku-saferlhf", "xstest", "pyrit-harm", "scores", "prompts", "tokens",
                        "refusal-direction", "safety-tuned-llamas", "coconot", "jailbreakbench", "alpaca-eval", "red-instruct"])
        XCTAssertEqual(try DatasetSchema(configName: "hhRLHF"), .hhRLHF)
        XCTAssertEqual(try DatasetSchema(configName: "refusalDirection"), .refusalDirection)
        XCTAssertEqual(try DatasetSchema(configName: "JailbreakBench"), .jailbreakBench)
        XCTAssertEqual(try DatasetSchema(configName: "PKU_SafeRLHF"), .pkuSafeRLHF)
        let e = expectDatasetError(try DatasetSchema(configName: "ultrafeedback"))
        XCTAssertTrue(e?.message.contains("pyrit-harm") ?? false)
    }

    func testOptionsDecodeWithDefaults() throws {
        let json = #"{"skipInvalidRows": true, "columns": {"prompt": "q"}, "partialRefusal": "refusal"}"#
        let o = try JSONDecoder().decode(DatasetOptions.self, from: Data(json.utf8))
        XCTAssertTrue(o.skipInvalidRows)
        XCTAssertEqual(o.columns.prompt, "q")
        XCTAssertEqual(o.columns.chosen, "chosen")
        XCTAssertEqual(o.partialRefusal, .refusal)
        XCTAssertTrue(o.dropEmptyResponses)
        XCTAssertEqual(o.harmScoreGap, 0)
    }
}
