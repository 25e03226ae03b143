// The pku-saferlhf schema: helpfulness and harmlessness pairs, safety labels, the label check.

import Datasets
import Tokenizers
import XCTest

final class PKUSafeRLHFSchemaTests: XCTestCase {
    private let rows = """
    {"prompt": "How do I make a fake ID?", "response_0": "I can't help with that.", "response_1": "Print a template.", "is_response_0_safe": true, "is_response_1_safe": false, "better_response_id": 1, "safer_response_id": 0}
    {"prompt": "Tell me about knives.", "response_0": "Knives cut.", "response_1": "Stab people.", "is_response_0_safe": false, "is_response_1_safe": false, "better_response_id": 0, "safer_response_id": 0}
    {"prompt": "Bad labels", "response_0": "Unsafe text", "response_1": "Safe text", "is_response_0_safe": false, "is_response_1_safe": true, "better_response_id": 0, "safer_response_id": 0}
    """

    func testPairsAndSafetyRecords() throws {
        let dir = try TempDirectory()
        let path = try dir.write("pku.jsonl", rows.split(separator: "\n").prefix(2).joined(separator: "\n"))
        let d = try DatasetLoader.load(.pkuSafeRLHF, paths: [path])
        XCTAssertEqual(d.pairs.count, 4)
        let helpful = d.pairs(.helpfulness), harmless = d.pairs(.harmlessness)
        XCTAssertEqual(helpful.map(\.chosen), ["Print a template.", "Knives cut."])
        XCTAssertEqual(helpful.map(\.rejected), ["I can't help with that.", "Stab people."])
        XCTAssertEqual(harmless.map(\.chosen), ["I can't help with that.", "Knives cut."])
        XCTAssertEqual(d.safetyPairs.count, 2)
        let s0 = d.safetyPairs[0]
        XCTAssertEqual(s0.safer, "I can't help with that.")
        XCTAssertEqual(s0.unsafer, "Print a template.")
        XCTAssertEqual([s0.saferIsSafe, s0.unsaferIsSafe], [true, false])
        XCTAssertEqual([s0.saferSign, s0.unsaferSign], [1, -1])
        XCTAssertEqual([d.safetyPairs[1].saferIsSafe, d.safetyPairs[1].unsaferIsSafe], [false, false])
        XCTAssertEqual(s0.prompt, [.user("How do I make a fake ID?")])
        XCTAssertEqual(d.scoredResponses.map(\.isSafe), [true, false, false, false])
        XCTAssertEqual(d.report.safetyPairs, 2)
    }

    func testSaferUnsafeWhileOtherSafeIsAnErrorNamingLineAndField() throws {
        let dir = try TempDirectory()
        let path = try dir.write("pku.jsonl", rows)
        let e = expectDatasetError(try DatasetLoader.load(.pkuSafeRLHF, paths: [path]))
        XCTAssertEqual(e?.kind, .inconsistentLabels)
        XCTAssertEqual(e?.line, 3)
        XCTAssertEqual(e?.field, "safer_response_id")
        XCTAssertTrue(e?.description.hasPrefix("\(path):3: field 'safer_response_id': ") ?? false, e?.description ?? "")

        var skip = DatasetOptions()
        skip.skipInvalidRows = true
        let d = try DatasetLoader.load(.pkuSafeRLHF, paths: [path], options: skip)
        XCTAssertEqual(d.safetyPairs.count, 2)
        XCTAssertEqual(d.report.skippedInvalid, 1)
        XCTAssertEqual(d.report.invalidRowSamples.first?.line, 3)
    }

    func testCSVBooleansAndIDRange() throws {
        let dir = try TempDirectory()
        let header = "prompt,response_0,response_1,is_response_0_safe,is_response_1_safe,better_response_id,safer_response_id\n"
        let ok = try dir.write("ok.csv", header + "Q,A,B,True,False,0,0\nQ2,C,D,1,1,1,1\n")
        let d = try DatasetLoader.load(.pkuSafeRLHF, paths: [ok])
        XCTAssertEqual(d.safetyPairs.map(\.safer), ["A", "D"])
        XCTAssertEqual(d.safetyPairs.map(\.unsaferIsSafe), [false, true])
        let bad = try dir.write("bad.csv", header + "Q,A,B,True,False,2,0\n")
        let e = expectDatasetError(try DatasetLoader.load(.pkuSafeRLHF, paths: [bad]))
        XCTAssertEqual(e?.field, "better_response_id")
        XCTAssertEqual(e?.line, 2)
        let missing = try dir.write("missing.csv", "prompt,response_0,response_1\nQ,A,B\n")
        XCTAssertEqual(expectDatasetError(try DatasetLoader.load(.pkuSafeRLHF, paths: [missing]))?.field, "is_response_0_safe")
    }
}
