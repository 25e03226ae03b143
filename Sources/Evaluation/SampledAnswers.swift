// Sampled evaluation: how answers are drawn (greedy, or K samples per prompt at a temperature and
// top-p) and the per-prompt answers every metric is computed from. With K answers per prompt, each
// per-prompt quantity is the mean over its K answers (reward, cost, refusal fraction, safe fraction),
// and prompts stay the unit of every interval: the K answers of one prompt are not independent draws.

import Foundation

/// How `dualign eval` draws answers when it samples: K answers per prompt at a temperature and top-p,
/// answer k of prompt i from its own generator keyed by (seed, i·K + k) (`PromptSampler`), so the
/// answers do not depend on the number of ranks or on the batch size. Greedy answers have no value of
/// this type (`EvaluationSettings.sampling` is nil).
public struct AnswerSampling: Codable, Equatable, Sendable {
    /// K: answers per prompt from every policy, the reference included.
    public var samplesPerPrompt: Int
    /// Softmax temperature (> 0).
    public var temperature: Double
    /// Nucleus mass p in (0, 1] (1: the whole distribution).
    public var topP: Double
    /// Base seed of the generators.
    public var seed: UInt64

    public init(samplesPerPrompt: Int, temperature: Double, topP: Double = 1, seed: UInt64 = 0) {
        self.samplesPerPrompt = samplesPerPrompt; self.temperature = temperature; self.topP = topP; self.seed = seed
    }

    /// "4 sampled answers per prompt (temperature 1, top-p 1, seed 0)".
    public var summary: String {
        let answers = samplesPerPrompt == 1 ? "1 sampled answer" : "\(samplesPerPrompt) sampled answers"
        return "\(answers) per prompt (temperature \(Self.number(temperature)), top-p \(Self.number(topP)), seed \(seed))"
    }

    /// A setting as the user typed it: 1 → "1", 0.9 → "0.9".
    static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
    }
}

/// One prompt's judged answers (K ≥ 1, one per sample), the unit of every interval.
public struct PromptAnswers: Equatable, Sendable {
    /// The prompt set's name.
    public var set: String
    /// `unsafe`, `safe` or `unlabelled`.
    public var label: String
    /// Reward-model score of each answer.   // (K)
    public var rewards: [Double]
    /// Cost-model score of each answer.   // (K)
    public var costs: [Double]
    /// The refusal classifier's mark of each answer.   // (K)
    public var refusals: [Bool]

    /// One prompt's answers; every record must answer a prompt of the same set and label.
    public init(answers: [EvalRecord]) {
        precondition(!answers.isEmpty, "PromptAnswers needs at least one answer")
        precondition(answers.allSatisfy { $0.set == answers[0].set && $0.label == answers[0].label },
                     "the answers of one PromptAnswers must share its set and label")
        set = answers[0].set; label = answers[0].label
        rewards = answers.map(\.reward); costs = answers.map(\.cost); refusals = answers.map(\.refused)
    }

    /// A prompt with one answer (greedy evaluation).
    public init(_ record: EvalRecord) { self.init(answers: [record]) }

    /// K.
    public var samples: Int { rewards.count }
    public var isHarmful: Bool { label == "unsafe" }
    public var isBenign: Bool { label == "safe" }

    /// The mean of per-answer values; with one answer, that value itself (bit for bit, −0 included).
    static func mean(_ xs: [Double]) -> Double { xs.count == 1 ? xs[0] : xs.reduce(0, +) / Double(xs.count) }

    /// Mean reward over the K answers.
    public var meanReward: Double { Self.mean(rewards) }
    /// Mean cost over the K answers.
    public var meanCost: Double { Self.mean(costs) }
    /// Fraction of the K answers refused.
    public var refusalFraction: Double { Self.mean(refusals.map { $0 ? 1 : 0 }) }
    /// Whether each answer is safe by the cost model (cost ≤ 0).   // (K)
    public var safe: [Bool] { costs.map { $0 <= 0 } }
}

extension EvaluatedResponse {
    /// One model's responses, in (prompt, sample) order with K per prompt, grouped by prompt.
    ///
    /// - Throws: `EvaluationMetricsError` when the count is not a multiple of K, or a group's answers
    ///   are not samples 0..<K of one prompt.
    public static func promptAnswers(_ responses: [EvaluatedResponse], samplesPerPrompt K: Int) throws -> [PromptAnswers] {
        guard K >= 1, responses.count % K == 0 else {
            throw EvaluationMetricsError(message: "\(responses.count) responses do not split into groups of \(K) samples per prompt; every prompt needs exactly \(K) answers")
        }
        return try stride(from: 0, to: responses.count, by: K).map { start in
            let group = responses[start..<start + K]
            for (k, r) in group.enumerated() where (r.sample ?? 0) != k || r.prompt != group.first!.prompt {
                throw EvaluationMetricsError(message: "response \(start + k) is sample \(r.sample ?? 0) of '\(r.prompt.text.prefix(60))', expected sample \(k) of '\(group.first!.prompt.text.prefix(60))'; responses must come in (prompt, sample) order")
            }
            return PromptAnswers(answers: group.map(\.record))
        }
    }

    /// The first answer of each prompt (all of them when greedy), for the report's sample answers.
    public static func firstSamples(_ responses: [EvaluatedResponse]) -> [EvaluatedResponse] {
        responses.filter { ($0.sample ?? 0) == 0 }
    }
}
