// The rule that turns the reference model's own samples into rejected answers: a sample is kept only
// when the refusal classifier and the cost model agree that it complies, and it is written as the
// rejected side of a safety pair whose chosen side is the source's safe answer (a `pku-saferlhf` row).

import Foundation

/// What became of one sample.
public enum RejectedSampleVerdict: String, Codable, CaseIterable, Sendable {
    /// Both judges agree it complies: the classifier sees no refusal and the cost is above the threshold.
    case kept
    /// The classifier sees a refusal, though the cost model rates it unsafe.
    case refusal
    /// The classifier sees no refusal, but the cost model rates it safe (cost ≤ threshold).
    case ratedSafe
    /// A refusal by the classifier and safe by the cost model.
    case refusalAndRatedSafe
    /// Empty or only whitespace (neither a refusal nor an answer; never judged).
    case empty
    /// The source's own safe answer, word for word (it would make a pair of two equal texts).
    case sameAsChosen
    /// Both judges agree it complies, but with `perPrompt: one` another sample of its prompt was kept.
    case notSelected
}

/// How many samples of one prompt may be kept.
public enum RejectedSamplesPerPrompt: String, Codable, CaseIterable, Sendable {
    /// At most one: among the samples both judges call compliant, the one the cost model rates most
    /// unsafe (ties: the lowest sample index). Every kept pair then has its own prompt, and the pair
    /// set is not weighted towards the prompts the model answers most often.
    case one
    /// Every sample both judges call compliant (pairs of one prompt share the chosen answer).
    case all
}

/// One sample of one prompt with its two judgements.
public struct JudgedSample: Equatable, Sendable {
    public var promptIndex: Int
    /// The sample's index among its prompt's K samples.
    public var sample: Int
    public var response: String
    /// The cost model's score of (prompt, response); > threshold means unsafe.
    public var cost: Double
    /// The refusal classifier's verdict.
    public var refused: Bool
    /// Generated tokens (the stop token included when one ended the response).
    public var tokens: Int
    /// Whether an end-of-turn or EOS token ended the response (else `maxNewTokens` cut it).
    public var stopped: Bool

    public init(promptIndex: Int, sample: Int, response: String, cost: Double, refused: Bool, tokens: Int = 0, stopped: Bool = true) {
        self.promptIndex = promptIndex; self.sample = sample; self.response = response
        self.cost = cost; self.refused = refused; self.tokens = tokens; self.stopped = stopped
    }
}

/// The keep/drop rule: a sample becomes a rejected answer only when the refusal classifier says it is
/// not a refusal *and* the cost model rates it unsafe (cost > `costThreshold`; the project's convention
/// is cost > 0 unsafe, cost ≤ 0 safe). Empty samples and copies of the chosen answer are dropped first.
public struct RejectedSampleRule: Equatable, Sendable {
    /// A sample is unsafe when its cost is above this.
    public var costThreshold: Double
    public var perPrompt: RejectedSamplesPerPrompt

    public init(costThreshold: Double = 0, perPrompt: RejectedSamplesPerPrompt = .one) {
        self.costThreshold = costThreshold
        self.perPrompt = perPrompt
    }

    /// The verdict on one sample by itself (never `notSelected`).
    public func verdict(response: String, cost: Double, refused: Bool, chosen: String) -> RejectedSampleVerdict {
        let text = response.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty { return .empty }
        if text == chosen.trimmingCharacters(in: .whitespacesAndNewlines) { return .sameAsChosen }
        switch (refused, cost > costThreshold) {
        case (false, true): return .kept
        case (true, true): return .refusal
        case (false, false): return .ratedSafe
        case (true, false): return .refusalAndRatedSafe
        }
    }

    /// The verdict on every sample, in the order given. With `perPrompt: one`, of the samples of one
    /// prompt that pass, only the one with the highest cost is `kept` (ties: the lowest sample index);
    /// the others are `notSelected`.
    ///
    /// - Parameter chosen: the source's safe answer of each prompt, by `promptIndex`.
    public func verdicts(_ samples: [JudgedSample], chosen: [String]) -> [RejectedSampleVerdict] {
        var out = samples.map { verdict(response: $0.response, cost: $0.cost, refused: $0.refused, chosen: chosen[$0.promptIndex]) }
        guard perPrompt == .one else { return out }
        var best: [Int: Int] = [:]     // prompt index → position in `samples` of its best kept sample
        for (i, s) in samples.enumerated() where out[i] == .kept {
            if let j = best[s.promptIndex] {
                let b = samples[j]
                if s.cost > b.cost || (s.cost == b.cost && s.sample < b.sample) { best[s.promptIndex] = i }
            } else {
                best[s.promptIndex] = i
            }
        }
        for (i, s) in samples.enumerated() where out[i] == .kept && best[s.promptIndex] != i { out[i] = .notSelected }
        return out
    }
}

/// The counts of a rejected-samples run (written as `summary.json`).
public struct RejectedSamplesCounts: Codable, Equatable, Sendable {
    /// Prompts sampled (demonstrations of the source after its filters).
    public var prompts: Int
    public var samplesPerPrompt: Int
    public var samples: Int
    /// Pairs written.
    public var kept: Int
    /// Prompts with at least one pair.
    public var promptsWithPairs: Int
    /// Dropped: the classifier saw a refusal (the cost model rated it unsafe).
    public var droppedRefusal: Int
    /// Dropped: the cost model rated it safe (the classifier saw no refusal).
    public var droppedRatedSafe: Int
    /// Dropped: a refusal by the classifier and safe by the cost model.
    public var droppedRefusalAndRatedSafe: Int
    public var droppedEmpty: Int
    public var droppedSameAsChosen: Int
    /// Compliant by both, not kept because another sample of the prompt was (`perPrompt: one`).
    public var notSelected: Int

    public init(verdicts: [RejectedSampleVerdict], promptIndices: [Int], prompts: Int, samplesPerPrompt: Int) {
        func count(_ v: RejectedSampleVerdict) -> Int { verdicts.filter { $0 == v }.count }
        self.prompts = prompts
        self.samplesPerPrompt = samplesPerPrompt
        samples = verdicts.count
        kept = count(.kept)
        promptsWithPairs = Set(zip(verdicts, promptIndices).filter { $0.0 == .kept }.map(\.1)).count
        droppedRefusal = count(.refusal)
        droppedRatedSafe = count(.ratedSafe)
        droppedRefusalAndRatedSafe = count(.refusalAndRatedSafe)
        droppedEmpty = count(.empty)
        droppedSameAsChosen = count(.sameAsChosen)
        notSelected = count(.notSelected)
    }

    /// One line for the log.
    public var line: String {
        "\(kept) pairs from \(samples) samples of \(prompts) prompts (\(promptsWithPairs) prompts with a pair); dropped: refusal \(droppedRefusal), rated safe \(droppedRatedSafe), both \(droppedRefusalAndRatedSafe), empty \(droppedEmpty), same as chosen \(droppedSameAsChosen); not selected \(notSelected)"
    }
}

/// A kept sample as a safety pair, written as one `pku-saferlhf` row: response 0 is the source's safe
/// answer (chosen, safe, better and safer), response 1 the sample (rejected, unsafe). The reader
/// (`PKUSafeRLHFSchema`) turns it into a `SafetyPair` (safe ≻ unsafe with both labels: cost-model
/// training), a harmlessness pair and a helpfulness pair that both read chosen ≻ rejected (DPO; give
/// `aspects: [harmlessness]` to take each row once), and two labelled `ScoredResponse`s.
public struct RejectedSamplePair: Equatable, Sendable {
    /// `<source id>#<sample>`, e.g. `safety-tuned-llamas:118#1`.
    public var id: String
    public var prompt: String
    public var chosen: String
    public var rejected: String
    /// The cost model's score of the rejected sample.
    public var cost: Double
    public var sample: Int
    /// Where the prompt and chosen answer come from (`file:line`).
    public var source: String

    public init(id: String, prompt: String, chosen: String, rejected: String, cost: Double, sample: Int, source: String) {
        self.id = id; self.prompt = prompt; self.chosen = chosen; self.rejected = rejected
        self.cost = cost; self.sample = sample; self.source = source
    }

    /// The JSON object of the row (sorted keys; texts trimmed, as the reader trims them).
    public var jsonLine: String {
        let object: [String: Any] = [
            "id": id, "prompt": prompt,
            "response_0": chosen.trimmingCharacters(in: .whitespacesAndNewlines),
            "response_1": rejected.trimmingCharacters(in: .whitespacesAndNewlines),
            "is_response_0_safe": true, "is_response_1_safe": false, "better_response_id": 0, "safer_response_id": 0,
            "cost_1": cost, "sample": sample, "source": source,
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// Rows as JSON Lines.
    public static func jsonLines(_ pairs: [RejectedSamplePair]) -> String {
        pairs.map { $0.jsonLine + "\n" }.joined()
    }
}
