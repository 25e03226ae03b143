// Optional: the real HH-RLHF pairs through SmolLM2's tokenizer and ChatML template, with truncation.

import Datasets
import Foundation
import Tokenizers
import XCTest
import Formats


final class SmolLM2TokenizationTests: XCTestCase {
    /// Runs when `${DUALIGN_CACHE:-~/.cache/dualign}/SmolLM2-135M-Instruct.Q4_1.gguf` is cached
    /// (`launch/assets.sh model`); skipped otherwise.
    func testRealHHPairsWithSmolLM2ChatML() throws {
        let model = SharedData.cacheDirectory.appendingPathComponent("SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: model.path) else {
            throw XCTSkip("\(model.path) is not cached; run launch/assets.sh model")
        }
        let data = try SharedData.require("hh-rlhf/harmless-base-test.jsonl.gz")
        let gguf = try GGUFFile(contentsOf: model)
        let tokenizer = try BPETokenizer(gguf: gguf, source: model.path)
        let system = gguf.metadataString("tokenizer.chat_template").flatMap(ChatTemplate.defaultSystemPrompt(fromJinja:))
        let template = try ChatTemplate(kind: .chatML, tokenizer: tokenizer, defaultSystemPrompt: system)
        let loaded = try DatasetLoader.load(.hhRLHF, paths: [data])
        var report = loaded.report
        let pairs = try PairTokenizer(template: template, limits: TruncationLimits(maxLength: 512, maxPromptLength: 128))
            .tokenize(loaded.pairs, report: &report)
        print("hh-rlhf with SmolLM2 ChatML, maxLength 512, maxPromptLength 128: \(report)")
        XCTAssertEqual(pairs.count + report.droppedPromptTooLong + report.droppedEmptyResponse - loaded.report.droppedEmptyResponse,
                       loaded.pairs.count)
        for p in pairs {
            XCTAssertLessThanOrEqual(p.promptTokens.count, 128)
            XCTAssertLessThanOrEqual(p.chosenSequence.count, 512)
            XCTAssertLessThanOrEqual(p.rejectedSequence.count, 512)
            XCTAssertEqual(Array(p.promptTokens.suffix(3)), Array(template.renderPrompt([]).tokens.suffix(3)),
                           "every prompt ends with the assistant opening")
        }
        let first = try XCTUnwrap(pairs.first)
        let text = tokenizer.decodeString(first.chosenSequence)
        XCTAssertTrue(text.contains("<|im_start|>assistant\n"), text)
    }
}
