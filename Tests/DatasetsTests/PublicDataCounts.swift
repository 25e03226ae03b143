// Test support: the counts Tests/fixtures/count_public_data.py measured on the data root with Python.

import Foundation
import XCTest

/// `Tests/fixtures/public_data_counts.json`: what each public source yields, counted independently of
/// the Swift readers (Python's json/csv/yaml and the documented rules), for the pinned files of
/// `launch/data.sha256`.
enum PublicDataCounts {
    static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/public_data_counts.json")

    static let all: [String: Any] = {
        guard let data = try? Data(contentsOf: url),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return object
    }()

    /// The counts of one source (`refusal-direction`, `coconot`, …).
    static func source(_ name: String) throws -> [String: Any] {
        guard let s = all[name] as? [String: Any] else {
            XCTFail("\(url.path) has no '\(name)'; run Tests/fixtures/count_public_data.py")
            throw XCTSkip("no counts for \(name)")
        }
        return s
    }

    /// An integer count of a source.
    static func int(_ name: String, _ key: String) throws -> Int {
        guard let n = try source(name)[key] as? Int else {
            XCTFail("\(url.path): '\(name).\(key)' is not a number")
            throw XCTSkip("no count \(name).\(key)")
        }
        return n
    }

    /// The evaluation-overlap counts of a source: set → kind → distinct prompts.
    static func overlap(_ name: String, key: String = "overlap") throws -> [String: [String: Int]] {
        (try source(name)[key] as? [String: [String: Int]]) ?? [:]
    }
}
