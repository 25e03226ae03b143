// Split files: the assignment depends only on (key, seed, fractions), stages are disjoint and sized by their
// fractions (binomial bound), the file round-trips, and a damaged file is refused naming the field.

import Foundation
import XCTest
import Tensors
@testable import Privacy

final class PrivateSplitFileTests: XCTestCase {
    func keys(_ n: Int, seed: UInt64) -> [UInt64] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in rng.next() }
    }

    func testAssignmentIsDisjointSizedAndOrderFree() throws {
        let k = keys(20_000, seed: 1)
        let split = try PrivateSplitFile.assign(keys: k, stages: [("sft", 0.5), ("reward", 0.3), ("ppo", 0.15)], seed: 7, key: "test", template: "chatml")
        let shuffled = try PrivateSplitFile.assign(keys: k.reversed(), stages: [("sft", 0.5), ("reward", 0.3), ("ppo", 0.15)], seed: 7, key: "test",
                                                   template: "chatml")
        XCTAssertEqual(split, shuffled, "the assignment does not depend on the order of the rows")
        var seen = Set<UInt64>()
        for s in split.stages {
            XCTAssertTrue(seen.isDisjoint(with: s.rows), "stage \(s.name) shares rows with an earlier stage")
            seen.formUnion(s.rows)
            // Binomial(20000, f): within 5 standard deviations of 20000·f.
            let n = 20_000.0, mean = n * s.fraction, sd = (n * s.fraction * (1 - s.fraction)).squareRoot()
            XCTAssertLessThanOrEqual(abs(Double(s.rows.count) - mean), 5 * sd, "\(s.name): \(s.rows.count) rows, expected \(mean) ± \(5 * sd)")
        }
        let unassigned = Double(k.count - seen.count), sd = (20_000 * 0.05 * 0.95).squareRoot()
        XCTAssertLessThanOrEqual(abs(unassigned - 1000), 5 * sd, "5 % of the rows are in no stage: \(unassigned)")
        let other = try PrivateSplitFile.assign(keys: k, stages: [("sft", 0.5), ("reward", 0.3), ("ppo", 0.15)], seed: 8, key: "test", template: "chatml")
        XCTAssertNotEqual(other.stages[0].rows, split.stages[0].rows, "the seed changes the assignment")
    }

    func testRoundTripAndRefusals() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("split-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let split = try PrivateSplitFile.assign(keys: keys(50, seed: 2), stages: [("a", 0.5), ("b", 0.5)], seed: 0, key: "k", template: "t")
        let url = dir.appendingPathComponent("s.json")
        try split.write(to: url)
        XCTAssertEqual(try PrivateSplitFile.read(url), split)
        XCTAssertEqual(try split.encoded(), try PrivateSplitFile.read(url).encoded(), "the same split writes the same bytes")
        XCTAssertThrowsError(try split.rows(ofStage: "c")) { XCTAssertEqual(($0 as? PrivacyError)?.field, "stage") }

        func refused(_ edit: (inout [String: Any]) -> Void, _ field: String, file: StaticString = #filePath, line: UInt = #line) throws {
            var object = try JSONSerialization.jsonObject(with: split.encoded()) as! [String: Any]
            edit(&object)
            let bad = dir.appendingPathComponent("bad.json")
            try JSONSerialization.data(withJSONObject: object).write(to: bad)
            XCTAssertThrowsError(try PrivateSplitFile.read(bad), file: file, line: line) { error in
                XCTAssertTrue((error as? PrivacyError)?.field.hasSuffix(field) == true, "\(error) names \(field)", file: file, line: line)
            }
        }
        try refused({ $0["version"] = 2 }, "version")
        try refused({ $0["format"] = "other" }, "format")
        try refused({ o in
            var stages = o["stages"] as! [[String: Any]]
            stages[1]["rows"] = (stages[1]["rows"] as! [String]) + [(stages[0]["rows"] as! [String])[0]]
            o["stages"] = stages
        }, "rows[\(split.stages[1].rows.count)]")
        try refused({ o in
            var stages = o["stages"] as! [[String: Any]]
            stages[0]["rows"] = ["xyz"]
            o["stages"] = stages
        }, "stages[0].rows[0]")
        try refused({ o in
            var stages = o["stages"] as! [[String: Any]]
            stages[1]["name"] = "a"
            o["stages"] = stages
        }, "stages[1].name")
        XCTAssertThrowsError(try PrivateSplitFile.assign(keys: [1], stages: [("a", 0.7), ("b", 0.5)], seed: 0, key: "k", template: "t"))
    }
}
