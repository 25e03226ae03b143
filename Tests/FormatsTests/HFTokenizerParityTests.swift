// SmolLM2 tokenization against ids produced by Hugging Face `tokenizers` (fixture file).
//
// Tests/fixtures/smollm2_tokenizer_cases.json is written by Tests/fixtures/generate_tokenizer_cases.py.

import Foundation
import Tokenizers
import XCTest
import Formats

final class HFTokenizerParityTests: XCTestCase {
    func testSmolLM2MatchesHuggingFaceTokenizers() throws {
        try TestAssets.require(TestAssets.modelURL, installing: "model")
        let tokenizer = try BPETokenizer(gguf: GGUFFile(contentsOf: TestAssets.modelURL))
        let url = TestAssets.packageRoot.appendingPathComponent("Tests/fixtures/smollm2_tokenizer_cases.json")
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any],
                                 "\(url.path) is not a JSON object")
        let cases = try XCTUnwrap(root["cases"] as? [[String: Any]], "\(url.path) has no 'cases' array")
        XCTAssertGreaterThan(cases.count, 100)
        var passed = 0
        for (i, c) in cases.enumerated() {
            guard let text = c["text"] as? String, let ids = c["ids"] as? [Int] else {
                XCTFail("case \(i) lacks 'text' or 'ids'")
                continue
            }
            let allowSpecial = c["allowSpecial"] as? Bool ?? false
            let got = tokenizer.encode(text, allowSpecial: allowSpecial)
            if got == ids {
                passed += 1
            } else {
                XCTFail("case \(i) \(text.debugDescription) (allowSpecial \(allowSpecial)): HF \(ids), ours \(got)")
            }
            XCTAssertEqual(tokenizer.decode(got), Array(text.utf8), "case \(i): decode(encode(x)) != x")
        }
        print("Hugging Face parity (SmolLM2): \(passed)/\(cases.count) cases passed")
    }
}
