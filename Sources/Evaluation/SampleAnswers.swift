// Sample answers for the report: a few harmful and benign prompts, answered by the reference and by
// every model, with the refusal classifier's mark.

import Foundation

/// One prompt and every model's answer to it.
public struct SampleAnswer: Codable, Equatable, Sendable {
    public var set: String
    public var label: String
    public var prompt: String
    public var answers: [Answer]

    public struct Answer: Codable, Equatable, Sendable {
        public var model: String
        public var response: String
        public var refused: Bool
        public var reward: Double
        public var cost: Double
    }
}

extension SampleAnswer {
    /// Picks `harmful` prompts labelled `unsafe` and `benign` prompts labelled `safe`, taking the sets
    /// in turn (the first unused prompt of each set, in set order) so every set is shown; the same
    /// prompts for every model. `responses` are (model name, responses in prompt order), the reference first.
    public static func pick(prompts: [EvaluationPrompt], responses: [(String, [EvaluatedResponse])],
                            harmful: Int = 5, benign: Int = 5) -> [SampleAnswer] {
        func choose(_ wanted: (EvaluationPrompt) -> Bool, _ count: Int) -> [Int] {
            var bySet: [(String, [Int])] = []
            for (i, p) in prompts.enumerated() where wanted(p) {
                if let k = bySet.firstIndex(where: { $0.0 == p.set }) { bySet[k].1.append(i) } else { bySet.append((p.set, [i])) }
            }
            var out: [Int] = [], round = 0
            while out.count < count && bySet.contains(where: { round < $0.1.count }) {
                for (_, idx) in bySet where round < idx.count && out.count < count { out.append(idx[round]) }
                round += 1
            }
            return out
        }
        let chosen = choose(\.isHarmful, harmful) + choose(\.isBenign, benign)
        return chosen.map { i in
            SampleAnswer(set: prompts[i].set, label: prompts[i].label, prompt: prompts[i].text, answers: responses.compactMap { name, rs in
                guard rs.indices.contains(i) else { return nil }
                return Answer(model: name, response: rs[i].response, refused: rs[i].refused, reward: rs[i].reward, cost: rs[i].cost)
            })
        }
    }
}
