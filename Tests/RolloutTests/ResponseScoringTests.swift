// Scoring (prompt, response) rows with a score head: equal to the model's own forward on each row,
// independent of batching and of the number of ranks, with JSONL rows passed through.

import Foundation
import XCTest
import Models
import Tokenizers
import Distributed
@testable import Rollout

final class ResponseScoringTests: XCTestCase {
    /// A byte-level vocabulary (256 byte tokens, a few merges) with ChatML's control tokens.
    func tokenizer() throws -> BPETokenizer {
        var tokens = ByteLevel.scalarForByte.map { String($0) }
        let merges = ["Ġ t", "h e", "Ġt he", "i n", "in g", "Ġ a", "e r"]
        for rule in merges {
            let parts = rule.split(separator: " ")
            tokens.append(String(parts[0] + parts[1]))
        }
        var types = Array(repeating: 1, count: tokens.count)
        for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
            tokens.append(special)
            types.append(3)
        }
        return try BPETokenizer(tokens: tokens, merges: merges, tokenTypes: types, preTokenizer: .gpt2,
                                bosTokenID: tokens.firstIndex(of: "<|im_start|>"), eosTokenID: tokens.firstIndex(of: "<|im_end|>"),
                                padTokenID: tokens.firstIndex(of: "<|im_end|>"), unknownTokenID: tokens.firstIndex(of: "<|endoftext|>"))
    }

    func scoreModel(vocab: Int) throws -> Transformer {
        let c = ModelConfig(vocabSize: vocab, hiddenSize: 16, intermediateSize: 32, numLayers: 2, numHeads: 4, numKVHeads: 2,
                            maxPositions: 256, scoreHead: true)
        let m = try Transformer(config: c, trainable: false)
        m.initializeRandomly(seed: 5, std: 0.3)
        return m
    }

    func scorer(batchSize: Int = 16, maxLength: Int? = nil) throws -> ResponseScorer {
        let tok = try tokenizer()
        let template = try ChatTemplate(kind: .chatML, tokenizer: tok, defaultSystemPrompt: "You are helpful")
        return ResponseScorer(model: try scoreModel(vocab: tok.vocabularySize), template: template, batchSize: batchSize, maxLength: maxLength)
    }

    let rows = [
        ScoringRow(prompt: "How do I boil an egg?", response: "Put the egg in boiling water for nine minutes."),
        ScoringRow(prompt: "hi", response: "Hello!"),
        ScoringRow(prompt: "Tell me something interesting about the sea", response: "It covers most of the planet."),
        ScoringRow(prompt: "Write a haiku", response: "Leaves fall in the wind / the river keeps its secrets / winter is coming"),
        ScoringRow(prompt: "x", response: "y"),
    ]

    func testScoreEqualsForwardAndScoreHeadOnTheRowAlone() throws {
        let s = try scorer()
        let scored = try s.scoreShard(rows, rank: 0, size: 1)
        XCTAssertEqual(scored.map(\.index), Array(rows.indices))
        for (i, row) in rows.enumerated() {
            let rendered = s.template.render([.user(row.prompt)], response: row.response).tokens
            let seq = try s.sequence(row)
            XCTAssertEqual(seq, rendered.map(Int32.init), "row \(i) renders as in training")
            XCTAssertEqual(seq.last, Int32(s.template.endOfTurnID))
            s.model.forward(TokenBatch(sequences: [seq]))
            let alone = s.model.scores()
            XCTAssertEqual(alone.count, 1)
            XCTAssertEqual(scored[i].score, alone[0], accuracy: 1e-5, "row \(i)")
        }
        XCTAssertGreaterThan(Set(scored.map(\.score)).count, 1, "a random head should give different scores")
    }

    func testBatchingAndPaddingDoNotChangeScores() throws {
        let one = try scorer(batchSize: 1).scoreShard(rows, rank: 0, size: 1).map(\.score)
        for b in [2, 3, 16] {
            let batched = try scorer(batchSize: b).scoreShard(rows, rank: 0, size: 1).map(\.score)
            for (x, y) in zip(batched, one) { XCTAssertEqual(x, y, accuracy: 1e-5, "batch size \(b)") }
        }
        // Token level: a short sequence padded to a long one's length scores as it does alone.
        let s = try scorer()
        let short: [Int32] = [3, 4, 5], long: [Int32] = Array(10..<40)
        let both = s.scoreTokens([short, long])
        XCTAssertEqual(both[0], s.scoreTokens([short])[0], accuracy: 1e-5)
        XCTAssertEqual(both[1], s.scoreTokens([long])[0], accuracy: 1e-5)
    }

    func testTwoLocalRanksGatherTheSameScoresInInputOrder() throws {
        let single = LocalCommunicator.run(size: 1) { comm in try self.scorer(batchSize: 2).scoreAll(self.rows, communicator: comm) }
        let reference = try XCTUnwrap(try single[0].get())
        XCTAssertEqual(reference.count, rows.count)
        let results = LocalCommunicator.run(size: 2) { comm in try self.scorer(batchSize: 2).scoreAll(self.rows, communicator: comm) }
        let root = try XCTUnwrap(try results[0].get())
        XCTAssertNil(try results[1].get(), "only rank 0 gets the scores")
        XCTAssertEqual(root.count, rows.count)
        // The batches are the same on 1 and 2 ranks, so the scores are equal to the last bit.
        XCTAssertEqual(root, reference, "scores on 2 ranks vs 1 rank")
        // The shards really are split: rows sorted longest first, batches of 2, batch c on rank c mod 2.
        let s = try scorer(batchSize: 2)
        let lengths = try rows.map { try s.sequence($0).count }
        let order = rows.indices.sorted { (lengths[$0], $1) > (lengths[$1], $0) }
        XCTAssertEqual(try s.scoreShard(rows, rank: 0, size: 2).map(\.index), [order[0], order[1], order[4]].sorted())
        XCTAssertEqual(try s.scoreShard(rows, rank: 1, size: 2).map(\.index), [order[2], order[3]].sorted())
    }

    func testGatherRejectsMissingRows() throws {
        let results = LocalCommunicator.run(size: 1) { comm in try ResponseScorer.gather([(index: 0, score: 1)], count: 2, communicator: comm) }
        XCTAssertThrowsError(try results[0].get()) { XCTAssertTrue("\($0)".contains("row 1"), "\($0)") }
    }

    func testLongResponsesAreTruncatedAndOverlongPromptsNamed() throws {
        let s = try scorer(maxLength: 60)
        let long = ScoringRow(prompt: "hi", response: String(repeating: "the thing ", count: 50), lineNumber: 4)
        XCTAssertEqual(try s.sequence(long).count, 60)
        let tooLong = ScoringRow(prompt: String(repeating: "word ", count: 80), response: "ok", lineNumber: 7)
        XCTAssertThrowsError(try s.sequence(tooLong, source: "rows.jsonl")) { error in
            XCTAssertTrue("\(error)".hasPrefix("rows.jsonl:7:"), "\(error)")
            XCTAssertTrue("\(error)".contains("--max-length"), "\(error)")
        }
    }

    func testJSONLRowsPassThroughWithScoreAdded() throws {
        let text = """
        {"prompt": "a/b", "response": "c", "prompt_index": 3, "sample": 1, "tokens": [1, 2]}

        {"response":"r","prompt":"p","score":9}
        """
        let parsed = try ScoringFile.parse(text, source: "in.jsonl")
        XCTAssertEqual(parsed.map(\.prompt), ["a/b", "p"])
        XCTAssertEqual(parsed.map(\.lineNumber), [1, 3])
        let first = ScoringFile.outputLine(parsed[0], score: 0.5)
        XCTAssertEqual(first, #"{"prompt": "a/b", "response": "c", "prompt_index": 3, "sample": 1, "tokens": [1, 2], "score": 0.5}"#)
        let second = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ScoringFile.outputLine(parsed[1], score: -1.25).utf8)) as? [String: Any])
        XCTAssertEqual(second["score"] as? Double, -1.25)
        XCTAssertEqual(second["prompt"] as? String, "p")
        XCTAssertThrowsError(try ScoringFile.parse("{\"prompt\": \"p\"}\n{\"prompt\": \"p\", \"response\": 3}", source: "bad.jsonl")) { error in
            XCTAssertTrue("\(error)".hasPrefix("bad.jsonl:1:") && "\(error)".contains("\"response\" is missing"), "\(error)")
        }
        XCTAssertThrowsError(try ScoringFile.parse("\n", source: "empty.jsonl"))
        // Scores round-trip through the written line exactly.
        let score: Float = 0.1 + 1e-7
        let line = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ScoringFile.outputLine(parsed[0], score: score).utf8)) as? [String: Any])
        XCTAssertEqual(Float(line["score"] as! Double), score)
    }
}
