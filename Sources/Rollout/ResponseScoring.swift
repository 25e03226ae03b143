// Scoring (prompt, response) rows with a reward or cost model (a score head), sharded over ranks:
// rows sorted longest first are cut into batches (little padding), batch c runs on rank c mod N, and
// rank 0 gathers every score and returns them in input order, so the output does not depend on N. Each row is rendered as the score-model trainer renders it
// (chat template prompt + response + end-of-turn) and scored at its last real token.

import Foundation
import Models
import Tokenizers
import Datasets
import Distributed
import Formats

/// A problem with a scoring input or model; names the file, line or field and says what to do.
public typealias ResponseScoringError = InputFileError

/// One input row: the prompt and response to score and the original JSON line (passed through).
public struct ScoringRow: Equatable, Sendable {
    public var prompt: String
    public var response: String
    /// The row's JSON object as it appeared in the file (trimmed).
    public var line: String
    /// 1-based line number in the file.
    public var lineNumber: Int

    public init(prompt: String, response: String, line: String? = nil, lineNumber: Int = 0) {
        self.prompt = prompt
        self.response = response
        self.lineNumber = lineNumber
        if let line { self.line = line } else {
            let object: [String: Any] = ["prompt": prompt, "response": response]
            let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            self.line = String(decoding: data, as: UTF8.self)
        }
    }
}

/// Scoring files: JSONL rows with string fields "prompt" and "response" (other fields pass through).
public enum ScoringFile {
    /// Reads the rows of a JSONL file (blank lines skipped).
    public static func read(_ path: String) throws -> [ScoringRow] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ResponseScoringError(file: path, "cannot read the file; check the path given to --data")
        }
        return try parse(String(decoding: data, as: UTF8.self), source: path)
    }

    /// Parses JSONL text; `source` names it in errors.
    public static func parse(_ text: String, source: String) throws -> [ScoringRow] {
        var rows: [ScoringRow] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw ResponseScoringError(file: source, line: i + 1, "not a JSON object; each line must be {\"prompt\": \"…\", \"response\": \"…\"}")
            }
            for field in ["prompt", "response"] where !(object[field] is String) {
                throw ResponseScoringError(file: source, line: i + 1,
                                           "field \"\(field)\" is \(object[field] == nil ? "missing" : "not a string"); each line needs string fields \"prompt\" and \"response\"")
            }
            rows.append(ScoringRow(prompt: object["prompt"] as! String, response: object["response"] as! String,
                                   line: line, lineNumber: i + 1))
        }
        if rows.isEmpty { throw ResponseScoringError(file: source, "holds no rows; expected JSONL with \"prompt\" and \"response\" fields") }
        return rows
    }

    /// The row's original JSON object with `"score": score` added (replacing an existing "score").
    public static func outputLine(_ row: ScoringRow, score: Float) -> String {
        let value = Double(score).isFinite ? "\(score)" : "null"
        guard let object = try? JSONSerialization.jsonObject(with: Data(row.line.utf8)) as? [String: Any],
              object["score"] == nil, row.line.hasSuffix("}") else {
            // Rebuild the object (sorted keys) when it already has a score or is not a plain object.
            var object = (try? JSONSerialization.jsonObject(with: Data(row.line.utf8)) as? [String: Any]) ?? [:]
            object["prompt"] = row.prompt
            object["response"] = row.response
            object["score"] = Double(score).isFinite ? Double(score) : NSNull()
            let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self)
        }
        // Splice the field in before the closing brace: every other byte of the line is kept.
        return String(row.line.dropLast()) + (object.isEmpty ? "" : ", ") + "\"score\": \(value)}"
    }
}

/// Scores responses with a score-head model (a reward or cost model).
public struct ResponseScorer {
    public let model: Transformer
    /// Renders a prompt and response as the score model saw them in training.
    public let template: ChatTemplate
    /// Sequences scored together.
    public var batchSize = 16
    /// Longest sequence; longer responses are cut as in training (prompt kept, response truncated).
    public var maxLength: Int
    /// Score an empty response as the end-of-turn token alone (sampled responses can be empty) instead of failing.
    public var scoresEmptyResponses = false

    public init(model: Transformer, template: ChatTemplate, batchSize: Int = 16, maxLength: Int? = nil) {
        precondition(model.config.scoreHead, "ResponseScorer needs a model with a score head")
        self.model = model
        self.template = template
        self.batchSize = batchSize
        self.maxLength = min(maxLength ?? model.config.maxPositions, model.config.maxPositions)
    }

    /// The token sequence of a row: chat-template prompt, response, end-of-turn (truncated to `maxLength`).
    ///
    /// - Throws: `ResponseScoringError` when the prompt alone does not fit `maxLength`, or the response is empty.
    public func sequence(_ row: ScoringRow, source: String = "input") throws -> [Int32] {
        let prompt = template.renderPrompt([.user(row.prompt)]).tokens
        let tokenizer = try PairTokenizer(template: template, limits: TruncationLimits(maxLength: maxLength))
        switch tokenizer.truncate(prompt: prompt, responses: [template.responseTokens(row.response)]) {
        case .success(let t): return (t.prompt + t.responses[0]).map(Int32.init)
        case .failure(.emptyResponse) where scoresEmptyResponses:
            let end = template.responseTokens("")
            return (prompt.suffix(max(1, maxLength - end.count)) + end).map(Int32.init)
        case .failure(let drop):
            let why = drop == .promptTooLong
                ? "the prompt has \(prompt.count) tokens, leaving no room for the response within \(maxLength); shorten the prompt or raise --max-length (model limit \(model.config.maxPositions))"
                : "the response is empty after truncation (\(drop.rawValue)); remove the row"
            throw ResponseScoringError(file: source, line: row.lineNumber > 0 ? row.lineNumber : nil, why)
        }
    }

    /// Scores token sequences: batches of `batchSize` (longest first, to waste little padding), one
    /// score per sequence in input order. Padding does not change a score.
    public func scoreTokens(_ sequences: [[Int32]]) -> [Float] {
        var out = [Float](repeating: 0, count: sequences.count)
        let order = sequences.indices.sorted { (sequences[$0].count, $1) > (sequences[$1].count, $0) }
        var start = 0
        while start < order.count {
            let chunk = Array(order[start..<min(start + batchSize, order.count)])
            model.forward(TokenBatch(sequences: chunk.map { sequences[$0] }))
            for (i, s) in zip(chunk, model.scores()) { out[i] = s }
            start += batchSize
        }
        return out
    }

    /// Scores this rank's share of the rows, as (row index, score) in index order. Every rank renders every
    /// row (so a bad row fails on all ranks alike); the batches are cut by `RankBatches.longestFirst`, the
    /// same for any number of ranks, so every score is the same to the last bit whatever the world size.
    public func scoreShard(_ rows: [ScoringRow], rank: Int, size: Int, source: String = "input") throws -> [(index: Int, score: Float)] {
        scoreShard(sequences: try rows.map { try sequence($0, source: source) }, rank: rank, size: size)
    }

    /// Scores this rank's share of token sequences (batches of similar lengths, longest first, dealt to
    /// ranks by `RankBatches.longestFirst`), as (index, score) in index order.
    public func scoreShard(sequences: [[Int32]], rank: Int, size: Int) -> [(index: Int, score: Float)] {
        var out: [(index: Int, score: Float)] = []
        for chunk in RankBatches.longestFirst(lengths: sequences.map(\.count), batchSize: batchSize, rank: rank, size: size) {
            for (i, score) in zip(chunk, scoreTokens(chunk.map { sequences[$0] })) { out.append((index: i, score: score)) }
        }
        return out.sorted { $0.index < $1.index }
    }

    /// Every rank scores its shard; rank 0 returns every row's score in input order, other ranks nil.
    public func scoreAll(_ rows: [ScoringRow], communicator: Communicator, source: String = "input") throws -> [Float]? {
        let mine = try scoreShard(rows, rank: communicator.rank, size: communicator.size, source: source)
        return try Self.gather(mine, count: rows.count, communicator: communicator)
    }

    /// Every rank scores its shard of token sequences; rank 0 returns every score in input order, other ranks nil.
    public func scoreAll(sequences: [[Int32]], communicator: Communicator) throws -> [Float]? {
        let mine = scoreShard(sequences: sequences, rank: communicator.rank, size: communicator.size)
        return try Self.gather(mine, count: sequences.count, communicator: communicator)
    }

    /// Collects every rank's (index, score) pairs on rank 0 and returns the scores in index order
    /// (nil on other ranks). Scores travel as their exact bits.
    /// - Throws: `ResponseScoringError` if an index is missing, repeated or out of range.
    public static func gather(_ shard: [(index: Int, score: Float)], count: Int, communicator: Communicator) throws -> [Float]? {
        var payload: [UInt8] = []
        payload.reserveCapacity(shard.count * 12)
        for (index, score) in shard {
            withUnsafeBytes(of: Int64(index).littleEndian) { payload += $0 }
            withUnsafeBytes(of: score.bitPattern.littleEndian) { payload += $0 }
        }
        guard let all = try communicator.gather(payload, root: 0) else { return nil }
        var scores = [Float?](repeating: nil, count: count)
        for (rank, bytes) in all.enumerated() {
            guard bytes.count % 12 == 0 else {
                throw ResponseScoringError(file: "rank \(rank)", "sent \(bytes.count) bytes of scores, not a multiple of 12; the ranks run different builds")
            }
            var offset = 0
            while offset < bytes.count {
                let index = Int(bytes[offset..<offset + 8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
                let bits = bytes[offset + 8..<offset + 12].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
                guard (0..<count).contains(index), scores[index] == nil else {
                    throw ResponseScoringError(file: "rank \(rank)", "sent a score for row \(index), which is out of range or already scored; the ranks read different inputs")
                }
                scores[index] = Float(bitPattern: bits)
                offset += 12
            }
        }
        if let missing = scores.firstIndex(where: { $0 == nil }) {
            throw ResponseScoringError(file: "gather", "no rank scored row \(missing); the ranks read different inputs")
        }
        return scores.map { $0! }
    }
}

extension LoadedModel {
    /// Whether the model file holds a trained score head (GGUF `cls.output.weight`,
    /// safetensors `score.weight`); a model without one gets a random head when loaded with `scoreHead`.
    public func hasScoreHeadTensor() throws -> Bool {
        if let gguf { return gguf.tensor(named: "cls.output.weight") != nil }
        let file = try SafetensorsFile(contentsOf: source.appendingPathComponent("model.safetensors"))
        return file.entries["score.weight"] != nil
    }
}
