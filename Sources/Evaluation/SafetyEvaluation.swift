// Generating greedy responses to evaluation prompts and judging them (reward model, cost model,
// refusal classifier), sharded over ranks: prompts go in chunks of `batchSize` in index order, chunk
// c to rank c mod N; each rank generates and scores its chunks with the same batches whatever N is;
// rank 0 gathers every response in prompt order, so results do not depend on the number of ranks.

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

    public init(prompts: [EvaluationPrompt], reward: ResponseScorer, cost: ResponseScorer, batchSize: Int = 8,
                maxNewTokens: Int = 64, classifier: RefusalClassifier = RefusalClassifier()) {
        self.prompts = prompts; self.reward = reward; self.cost = cost
        self.batchSize = batchSize; self.maxNewTokens = maxNewTokens; self.classifier = classifier
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

    /// One response as it travels between ranks (scores as exact float bits).
    struct Shard: Codable {
        var index: Int
        var response: String
        var rewardBits: UInt32
        var costBits: UInt32
        var tokens: Int
        var stopped: Bool
    }

    /// Generates and scores this rank's chunks.
    func evaluateShard(sampler: PromptSampler, rank: Int, size: Int) throws -> [Shard] {
        var out: [Shard] = []
        for chunk in RankBatches.ranges(count: prompts.count, batchSize: batchSize, rank: rank, size: size) {
            let texts = chunk.map { prompts[$0].text }
            let samples = sampler.sampleShard(texts, samplesPerPrompt: 1, rank: 0, size: 1)
            let rewards = reward.scoreTokens(try zip(texts, samples).map { try Self.scoreSequence(reward, prompt: $0.0, response: $0.1.response) })
            let costs = cost.scoreTokens(try zip(texts, samples).map { try Self.scoreSequence(cost, prompt: $0.0, response: $0.1.response) })
            for (k, index) in chunk.enumerated() {
                out.append(Shard(index: index, response: samples[k].response, rewardBits: rewards[k].bitPattern,
                                 costBits: costs[k].bitPattern, tokens: samples[k].tokens.count, stopped: samples[k].stopped))
            }
        }
        return out
    }

    /// Greedy responses of `policy` to every prompt, judged; every rank works on its chunks and rank 0
    /// returns all responses in prompt order (other ranks nil).
    ///
    /// - Parameter template: the policy's chat template (its end-of-turn and EOS stop a response).
    public func evaluate(policy: Transformer, tokenizer: BPETokenizer, template: ChatTemplate,
                         communicator: Communicator) throws -> [EvaluatedResponse]? {
        var sampler = PromptSampler(model: policy, tokenizer: tokenizer, template: template,
                                    options: SamplingOptions(greedy: true, temperature: 1, maxNewTokens: maxNewTokens, seed: 0))
        sampler.batchSize = batchSize
        let mine = try evaluateShard(sampler: sampler, rank: communicator.rank, size: communicator.size)
        guard let all = try communicator.gather(Array(try JSONEncoder().encode(mine)), root: 0) else { return nil }
        var slots = [Shard?](repeating: nil, count: prompts.count)
        for (rank, bytes) in all.enumerated() {
            for s in try JSONDecoder().decode([Shard].self, from: Data(bytes)) {
                guard slots.indices.contains(s.index), slots[s.index] == nil else {
                    throw ResponseScoringError(file: "rank \(rank)", "sent prompt \(s.index) twice or out of range; the ranks read different prompt files")
                }
                slots[s.index] = s
            }
        }
        return try prompts.indices.map { i in
            guard let s = slots[i] else {
                throw ResponseScoringError(file: "gather", "no rank answered prompt \(i); the ranks read different prompt files")
            }
            return EvaluatedResponse(prompt: prompts[i], response: s.response,
                                     reward: Double(Float(bitPattern: s.rewardBits)), cost: Double(Float(bitPattern: s.costBits)),
                                     refused: classifier.isRefusal(s.response), tokens: s.tokens, stopped: s.stopped)
        }
    }
}
