// Generating responses to evaluation prompts — greedy, or K sampled answers per prompt — and judging
// them (reward model, cost model, refusal classifier), sharded over ranks. Generation: the (prompt,
// sample) jobs go in chunks of `batchSize` in index order, chunk c to rank c mod N (KV-cache decoding
// pads nothing, so the order costs nothing); sample k of prompt i draws from its own generator keyed by
// (seed, i·K + k). Every rank then receives every response, and the (prompt, response) sequences are
// scored in batches of similar lengths (`RankBatches.longestFirst`, little padding), batch c on rank c
// mod N. Rank 0 gathers everything in (prompt, sample) order. Every batch is the same whatever N is, so
// results do not depend on it.

import Foundation
import Datasets
import Models
import Tokenizers
import Distributed
import Rollout

/// One judged response to one evaluation prompt.
public struct EvaluatedResponse: Equatable, Sendable {
    public var prompt: EvaluationPrompt
    public var response: String
    public var reward: Double
    public var cost: Double
    public var refused: Bool
    /// Generated tokens (the stop token included when one ended the response).
    public var tokens: Int
    /// Whether an end-of-turn or EOS token ended the response (else `maxNewTokens` did).
    public var stopped: Bool
    /// Which of the prompt's K sampled answers this is (nil for a greedy answer).
    public var sample: Int? = nil

    /// The metric view of the response.
    public var record: EvalRecord {
        EvalRecord(set: prompt.set, label: prompt.label, reward: reward, cost: cost, refused: refused)
    }
}

/// Evaluates policies on a fixed prompt list with a reward model, a cost model and a refusal classifier.
public struct SafetyEvaluator {
    public let prompts: [EvaluationPrompt]
    public let reward: ResponseScorer
    public let cost: ResponseScorer
    /// Prompts generated (and responses scored) together; also the unit of sharding.
    public var batchSize: Int
    public var maxNewTokens: Int
    public var classifier: RefusalClassifier
    /// K sampled answers per prompt at a temperature and top-p; nil: one greedy answer per prompt.
    public var sampling: AnswerSampling?

    public init(prompts: [EvaluationPrompt], reward: ResponseScorer, cost: ResponseScorer, batchSize: Int = 8,
                maxNewTokens: Int = 64, classifier: RefusalClassifier = RefusalClassifier(), sampling: AnswerSampling? = nil) {
        self.prompts = prompts; self.reward = reward; self.cost = cost
        self.batchSize = batchSize; self.maxNewTokens = maxNewTokens; self.classifier = classifier; self.sampling = sampling
    }

    /// Answers per prompt (1 when greedy).
    public var samplesPerPrompt: Int { sampling?.samplesPerPrompt ?? 1 }

    /// The decoding options: greedy, or the sampling's temperature, top-p and seed.
    public var samplingOptions: SamplingOptions {
        guard let sampling else { return SamplingOptions(greedy: true, temperature: 1, maxNewTokens: maxNewTokens, seed: 0) }
        return SamplingOptions(temperature: Float(sampling.temperature), topP: Float(sampling.topP), maxNewTokens: maxNewTokens, seed: sampling.seed)
    }

    /// The score model's token sequence of a (prompt, response), as `ResponseScorer.sequence` renders it,
    /// except that an empty response is scored as the bare end-of-turn (the model said nothing).
    ///
    /// - Throws: `ResponseScoringError` when the prompt alone leaves no room within `maxLength`.
    public static func scoreSequence(_ scorer: ResponseScorer, prompt: String, response: String) throws -> [Int32] {
        var scorer = scorer
        scorer.scoresEmptyResponses = true
        return try scorer.sequence(ScoringRow(prompt: prompt, response: response), source: "prompt '\(prompt.prefix(60))'")
    }

    /// One generated response as it travels between ranks.
    struct Generation: Codable {
        /// The prompt's index.
        var index: Int
        /// Which of the prompt's K answers (0 when greedy).
        var sample: Int
        var response: String
        var tokens: Int
        var stopped: Bool
    }

    /// Generates this rank's chunks: greedy, chunks of prompts; sampled, chunks of (prompt, sample) jobs
    /// cut by `PromptSampler.sampleShard`, which keys sample k of prompt i by i·K + k.
    func generateShard(sampler: PromptSampler, rank: Int, size: Int) -> [Generation] {
        if sampling != nil {
            return sampler.sampleShard(prompts.map(\.text), samplesPerPrompt: samplesPerPrompt, rank: rank, size: size).map {
                Generation(index: $0.promptIndex, sample: $0.sample, response: $0.response, tokens: $0.tokens.count, stopped: $0.stopped)
            }
        }
        var out: [Generation] = []
        for chunk in RankBatches.ranges(count: prompts.count, batchSize: batchSize, rank: rank, size: size) {
            let samples = sampler.sampleShard(chunk.map { prompts[$0].text }, samplesPerPrompt: 1, rank: 0, size: 1)
            for (index, sample) in zip(chunk, samples) {
                out.append(Generation(index: index, sample: 0, response: sample.response, tokens: sample.tokens.count, stopped: sample.stopped))
            }
        }
        return out
    }

    /// The responses of `policy` to every prompt (greedy, or K samples each), judged; every rank works
    /// on its chunks and rank 0 returns all responses in (prompt, sample) order (other ranks nil).
    ///
    /// - Parameter template: the policy's chat template (its end-of-turn and EOS stop a response).
    public func evaluate(policy: Transformer, tokenizer: BPETokenizer, template: ChatTemplate,
                         communicator: Communicator) throws -> [EvaluatedResponse]? {
        var sampler = PromptSampler(model: policy, tokenizer: tokenizer, template: template, options: samplingOptions)
        sampler.batchSize = batchSize
        let K = samplesPerPrompt
        let mine = generateShard(sampler: sampler, rank: communicator.rank, size: communicator.size)
        var slots = [Generation?](repeating: nil, count: prompts.count * K)   // (prompts, K)
        for (rank, bytes) in try communicator.allGather(Array(try JSONEncoder().encode(mine))).enumerated() {
            for g in try JSONDecoder().decode([Generation].self, from: Data(bytes)) {
                let slot = g.index * K + g.sample
                guard prompts.indices.contains(g.index), (0..<K).contains(g.sample), slots[slot] == nil else {
                    throw ResponseScoringError(file: "rank \(rank)", "sent answer \(g.sample) of prompt \(g.index) twice or out of range; the ranks read different prompt files")
                }
                slots[slot] = g
            }
        }
        let generations = try slots.indices.map { j in
            guard let g = slots[j] else {
                throw ResponseScoringError(file: "gather", "no rank sent answer \(j % K) of prompt \(j / K); the ranks read different prompt files")
            }
            return g
        }
        let rewards = try reward.scoreAll(sequences: try generations.map {
            try Self.scoreSequence(reward, prompt: prompts[$0.index].text, response: $0.response)
        }, communicator: communicator)
        let costs = try cost.scoreAll(sequences: try generations.map {
            try Self.scoreSequence(cost, prompt: prompts[$0.index].text, response: $0.response)
        }, communicator: communicator)
        guard let rewards, let costs else { return nil }
        return generations.indices.map { j in
            let g = generations[j]
            return EvaluatedResponse(prompt: prompts[g.index], response: g.response, reward: Double(rewards[j]), cost: Double(costs[j]),
                                     refused: classifier.isRefusal(g.response), tokens: g.tokens, stopped: g.stopped,
                                     sample: sampling == nil ? nil : g.sample)
        }
    }
}
