// Sampling K continuations of many prompts, sharded over ranks: prompt i runs on rank i mod N;
// rank 0 gathers every sample and writes them in prompt order, so the output does not depend on N.

import Foundation
import Models
import Tokenizers
import Distributed
import Datasets

/// One sampled response, as written to JSONL.
public struct PromptSample: Codable, Equatable, Sendable {
    public var promptIndex: Int
    public var sample: Int
    public var prompt: String
    public var response: String
    public var tokens: [Int32]
    /// log π(response | prompt) under the sampling model (temperature 1, untruncated).
    public var logprob: Double
    public var tokenLogprobs: [Float]
    public var stopped: Bool

    enum CodingKeys: String, CodingKey {
        case promptIndex = "prompt_index", sample, prompt, response, tokens, logprob
        case tokenLogprobs = "token_logprobs", stopped
    }
}

extension PromptSample {
    /// Samples as JSON Lines (sorted keys), the format `dualign generate --prompts` and the pipelines write.
    public static func jsonLines(_ samples: [PromptSample]) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try samples.map { String(decoding: try enc.encode($0), as: UTF8.self) + "\n" }.joined()
    }

    /// Reads a JSON Lines file of samples; a missing file is an error that says how to recompute it.
    public static func read(jsonLines url: URL) throws -> [PromptSample] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw InputFileError(file: url.path, "the samples file is missing; delete its stage directory and rerun to sample again")
        }
        return try data.split(separator: UInt8(ascii: "\n")).map { try JSONDecoder().decode(PromptSample.self, from: Data($0)) }
    }
}

/// Samples responses to prompts with a model and its chat template.
public struct PromptSampler {
    public let model: Transformer
    public let tokenizer: BPETokenizer
    /// Renders prompts as chat turns when set; plain text otherwise.
    public let template: ChatTemplate?
    public var options: SamplingOptions
    /// Sequences decoded together.
    public var batchSize = 16

    public init(model: Transformer, tokenizer: BPETokenizer, template: ChatTemplate?, options: SamplingOptions) {
        self.model = model; self.tokenizer = tokenizer; self.template = template; self.options = options
    }

    /// Prompt tokens: the chat template's rendering, or the plain encoding.
    public func promptTokens(_ prompt: String) -> [Int32] {
        if let template { return template.renderPrompt([.user(prompt)]).tokens.map(Int32.init) }
        return tokenizer.encode(prompt).map(Int32.init)
    }

    /// Tokens that end a response.
    public var stopTokens: Set<Int32> {
        var s = Set<Int32>()
        if let template { s.insert(Int32(template.endOfTurnID)) }
        if let eos = tokenizer.eosTokenID { s.insert(Int32(eos)) }
        return s
    }

    /// The samples of the batches this rank owns, in (prompt, sample) order: the (prompt, sample) jobs are
    /// cut by `RankBatches.ranges`, so every sampled token is the same whatever the number of ranks.
    public func sampleShard(_ prompts: [String], samplesPerPrompt K: Int, rank: Int, size: Int) -> [PromptSample] {
        let all = prompts.indices.flatMap { i in (0..<K).map { (i, $0) } }
        var out: [PromptSample] = []
        for batch in RankBatches.ranges(count: all.count, batchSize: batchSize, rank: rank, size: size) {
            let chunk = Array(all[batch])
            let generated = model.generate(prompts: chunk.map { promptTokens(prompts[$0.0]) }, options: options, stopTokens: stopTokens,
                                           sampleIDs: chunk.map { UInt64($0.0 * K + $0.1) })
            for (job, g) in zip(chunk, generated) {
                let text = tokenizer.decodeString(g.tokens.filter { !stopTokens.contains($0) }.map(Int.init))
                out.append(PromptSample(promptIndex: job.0, sample: job.1, prompt: prompts[job.0], response: text, tokens: g.tokens,
                                        logprob: g.totalLogProb, tokenLogprobs: g.logProbs, stopped: g.stopped))
            }
        }
        return out
    }

    /// Every rank samples its shard; rank 0 returns all samples in (prompt, sample) order, others nil.
    public func sampleAll(_ prompts: [String], samplesPerPrompt K: Int, communicator: Communicator) throws -> [PromptSample]? {
        let mine = sampleShard(prompts, samplesPerPrompt: K, rank: communicator.rank, size: communicator.size)
        let payload = Array(try JSONEncoder().encode(mine))
        guard let all = try communicator.gather(payload, root: 0) else { return nil }
        let samples = try all.flatMap { try JSONDecoder().decode([PromptSample].self, from: Data($0)) }
        return samples.sorted { ($0.promptIndex, $0.sample) < ($1.promptIndex, $1.sample) }
    }
}
