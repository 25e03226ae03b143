// What `excludeHeldOutPrompts` leaves out, counted over every kind of record a reader yields.

@testable import Datasets
import Tokenizers
import XCTest

final class HeldOutSplitFilterTests: XCTestCase {
    /// Prompts that appear only in scored responses (or only in prompt records) are counted like the rest:
    /// the report's records and distinct prompts match a direct count.
    func testEveryRecordKindIsCountedOnce() throws {
        let split = try HeldOutSplit(fraction: 0.5, seed: 3)
        let texts = (0..<40).map { "question number \($0)?" }
        let location = SourceLocation(file: "memory", line: 1)
        var d = LoadedDataset(schema: .scores)
        // Prompts 0..<20 as scored responses (two each), 20..<40 as prompt records; 10..<30 also as scored ones.
        for (i, t) in texts.enumerated() where i < 30 {
            for k in 0..<(i < 20 ? 2 : 1) {
                d.scoredResponses.append(ScoredResponse(id: "s\(i).\(k)", prompt: [.user(t)], response: "r\(k)", reward: 1, source: location))
            }
        }
        for (i, t) in texts.enumerated() where i >= 20 {
            d.prompts.append(PromptRecord(id: "p\(i)", prompt: [.user("  " + t + "\n")], promptText: t, source: location))
        }
        let total = d.scoredResponses.count + d.prompts.count
        let heldOut = Set(texts.filter { split.isHeldOut($0) })
        let expectedRecords = d.scoredResponses.filter { heldOut.contains($0.prompt[0].content) }.count
            + d.prompts.filter { heldOut.contains($0.prompt[0].content.trimmingCharacters(in: .whitespacesAndNewlines)) }.count
        XCTAssertGreaterThan(heldOut.count, 5, "the split holds some prompts out")

        var options = DatasetOptions()
        options.excludeHeldOutPrompts = split
        d.applyFilters(options)
        XCTAssertEqual(d.report.heldOutSplitPrompts, heldOut.count, "distinct held-out prompts, whatever records ask them")
        XCTAssertEqual(d.report.leftOutByHeldOutSplit, expectedRecords, "records left out")
        XCTAssertEqual(d.scoredResponses.count + d.prompts.count, total - expectedRecords, "what is kept")
        XCTAssertTrue(d.scoredResponses.allSatisfy { !heldOut.contains($0.prompt[0].content) })
    }
}
