// JailbreakBench artifacts: judged responses, not-jailbroken ≻ jailbroken pairs on one goal, row errors.

@testable import Datasets
import XCTest

final class JailbreakBenchSchemaTests: XCTestCase {
    private var unfiltered: DatasetOptions {
        var o = DatasetOptions()
        o.excludeEvaluationPrompts = false
        return o
    }

    func testRealArtifacts() throws {
        let dir = try SharedData.require("jailbreakbench-artifacts")
        let d = try DatasetLoader.load(.jailbreakBench, paths: [dir], options: unfiltered)
        let name = "jailbreakbench"
        XCTAssertEqual(d.report.files, try PublicDataCounts.int(name, "files"), "18 artifacts; test-artifact placeholders left out")
        XCTAssertEqual(d.scoredResponses.count, try PublicDataCounts.int(name, "scoredResponses"))
        XCTAssertEqual(d.report.skippedUnlabelled, try PublicDataCounts.int(name, "skippedUnlabelled"), "PAIR rows with no submitted prompt")
        XCTAssertEqual(d.pairs.count, try PublicDataCounts.int(name, "pairs"))
        XCTAssertEqual(d.safetyPairs.count, d.pairs.count)
        XCTAssertEqual(d.prompts.count, try PublicDataCounts.int(name, "prompts"))
        XCTAssertTrue(d.prompts.allSatisfy { $0.label == "unsafe" && $0.category != nil })

        // Pairs: one goal, chosen judged not jailbroken, rejected jailbroken, each jailbroken response once.
        let scored = Dictionary(d.scoredResponses.map { ($0.source, $0) }, uniquingKeysWith: { a, _ in a })
        var rejectedSeen = Set<SourceLocation>()
        for p in d.pairs {
            let good = try XCTUnwrap(scored[p.source]), bad = try XCTUnwrap(scored[try XCTUnwrap(p.rejectedSource)])
            XCTAssertEqual(good.promptText, p.promptText)
            XCTAssertEqual(bad.promptText, p.promptText)
            XCTAssertEqual(good.isSafe, true, p.id)
            XCTAssertEqual(bad.isSafe, false, p.id)
            XCTAssertTrue(rejectedSeen.insert(bad.source).inserted, "a jailbroken response is rejected once: \(p.id)")
        }
        XCTAssertEqual(d.pairs.first?.aspect, .harmlessness)
    }

    func testRowErrorsAndNullResponses() throws {
        let dir = try TempDirectory()
        let text = """
        {"parameters": {"method": "PAIR", "model": "m"},
         "jailbreaks": [
          {"index": 0, "goal": "G", "category": "c", "prompt": "p", "response": "I'm sorry.", "jailbroken": false},
          {"index": 1, "goal": "G", "category": "c", "prompt": "p", "response": "Sure: step 1.", "jailbroken": true},
          {"index": 2, "goal": "G", "category": "c", "prompt": null, "response": null, "jailbroken": false},
          {"index": 3, "goal": "G", "category": "c", "prompt": "p", "response": "Also sure.", "jailbroken": "maybe"},
          {"index": 4, "goal": "G", "category": "c", "prompt": "p", "response": "And sure.", "jailbroken": true}
         ]}
        """
        let path = try dir.write("PAIR/black_box/m.json", text)
        let e = try XCTUnwrap(expectDatasetError(try DatasetLoader.load(.jailbreakBench, paths: [dir.url.path], options: unfiltered)))
        XCTAssertEqual(e.file, path)
        XCTAssertEqual(e.line, 6)
        XCTAssertEqual(e.field, "jailbroken")
        var skip = unfiltered
        skip.skipInvalidRows = true
        let d = try DatasetLoader.load(.jailbreakBench, paths: [dir.url.path], options: skip)
        XCTAssertEqual(d.report.skippedInvalid, 1)
        XCTAssertEqual(d.report.skippedUnlabelled, 1, "a null response is the source's 'nothing submitted'")
        XCTAssertEqual(d.scoredResponses.map(\.isSafe), [true, false, false])
        // Both jailbroken responses are paired with the one refusal (round robin).
        XCTAssertEqual(d.pairs.map(\.chosen), ["I'm sorry.", "I'm sorry."])
        XCTAssertEqual(d.pairs.map(\.rejected), ["Sure: step 1.", "And sure."])
        // A method or attack-type folder is searched the same way.
        XCTAssertEqual(try DatasetLoader.load(.jailbreakBench, paths: [dir.url.appendingPathComponent("PAIR").path], options: skip).pairs, d.pairs)
        // Not an artifact file: no jailbreaks array.
        let other = try dir.write("x.json", #"{"models": {}}"#)
        XCTAssertEqual(expectDatasetError(try DatasetLoader.load(.jailbreakBench, paths: [other], options: unfiltered))?.field, "jailbreaks")
    }
}
