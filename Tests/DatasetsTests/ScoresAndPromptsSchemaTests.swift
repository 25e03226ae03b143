// The scores and prompts schemas.

import Datasets
import Tokenizers
import XCTest

final class ScoresAndPromptsSchemaTests: XCTestCase {
    func testScoresWithRewardCostAndSafety() throws {
        let dir = try TempDirectory()
        let path = try dir.write("s.jsonl", """
        {"prompt": "Q", "response": "A", "reward": 1.5, "cost": -0.5, "is_safe": true}
        {"prompt": [{"role": "user", "content": "Q2"}], "response": "B", "reward": 0.25}
        {"prompt": "Q3", "response": "C", "cost": "2"}
        """)
        let d = try DatasetLoader.load(.scores, paths: [path])
        XCTAssertEqual(d.scoredResponses.map(\.reward), [1.5, 0.25, nil])
        XCTAssertEqual(d.scoredResponses.map(\.cost), [-0.5, nil, 2])
        XCTAssertEqual(d.scoredResponses.map(\.isSafe), [true, nil, nil])
        XCTAssertEqual(d.scoredResponses[1].prompt, [.user("Q2")])
        XCTAssertEqual(d.distinctPrompts.count, 3)
    }

    func testScoresConfiguredColumnsAndMissingScore() throws {
        let dir = try TempDirectory()
        let path = try dir.write("s.csv", "question,answer,helpful,harm\nQ,A,0.5,\nQ,B,,\n")
        var options = DatasetOptions()
        options.columns.prompt = "question"
        options.columns.response = "answer"
        options.columns.reward = "helpful"
        options.columns.cost = "harm"
        let e = expectDatasetError(try DatasetLoader.load(.scores, paths: [path], options: options))
        XCTAssertEqual(e?.line, 3)
        XCTAssertEqual(e?.kind, .missingField)
        options.skipInvalidRows = true
        let d = try DatasetLoader.load(.scores, paths: [path], options: options)
        XCTAssertEqual(d.scoredResponses.count, 1)
        XCTAssertEqual(d.scoredResponses[0].reward, 0.5)
        XCTAssertNil(d.scoredResponses[0].cost)
        XCTAssertEqual(d.report.skippedInvalid, 1)
    }

    func testPromptsSchema() throws {
        let dir = try TempDirectory()
        let path = try dir.write("p.csv", "id,prompt,label\n7,How do I bake bread?,safe\n8,\"Multi\nline\",unsafe\n")
        let d = try DatasetLoader.load(.prompts, paths: [path])
        XCTAssertEqual(d.prompts.map(\.id), ["7", "8"])
        XCTAssertEqual(d.prompts.map(\.label), ["safe", "unsafe"])
        XCTAssertEqual(d.prompts[1].prompt, [.user("Multi\nline")])
    }

    func testRealXSTestPromptsFileAsPrompts() throws {
        let path = try SharedData.require("xstest/xstest_prompts.csv")
        let d = try DatasetLoader.load(.prompts, paths: [path])
        XCTAssertEqual(d.prompts.count, 450)
        XCTAssertEqual(d.prompts.filter { $0.label == "safe" }.count, 250)
    }
}

final class DatasetSpecTests: XCTestCase {
    func testFlattenedConfigDecodesAndLoadsRelativePaths() throws {
        let dir = try TempDirectory()
        try dir.write("data/p.jsonl", "{\"prompt\": \"Q\", \"chosen\": \"A\", \"rejected\": \"B\"}\n")
        let json = #"{"schema": "trl", "paths": "data/p.jsonl", "skipInvalidRows": true, "evalFraction": 0.1, "splitSeed": 3}"#
        let spec = try JSONDecoder().decode(DatasetSpec.self, from: Data(json.utf8))
        XCTAssertEqual(spec.schema, .trl)
        XCTAssertEqual(spec.paths, ["data/p.jsonl"])
        XCTAssertTrue(spec.options.skipInvalidRows)
        XCTAssertEqual(try spec.heldOutSplit(), try HeldOutSplit(fraction: 0.1, seed: 3))
        XCTAssertEqual(try spec.load(relativeTo: dir.url).pairs.count, 1)
        let again = try JSONDecoder().decode(DatasetSpec.self, from: JSONEncoder().encode(spec))
        XCTAssertEqual(again, spec)
        let bad = #"{"schema": "parquet-thing", "paths": []}"#
        XCTAssertEqual(expectDatasetError(try JSONDecoder().decode(DatasetSpec.self, from: Data(bad.utf8)))?.field, "schema")
    }
}
