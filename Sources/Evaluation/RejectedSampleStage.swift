// The rejected-samples stage: sample K responses per harmful prompt from the reference model, score
// each with the cost model and the refusal classifier, and keep the ones both call compliant as the
// rejected side of safety pairs. Sampling: the (prompt, sample) jobs are cut into batches the same way
// for any number of ranks (`PromptSampler`, each draw seeded by its prompt and sample index); every
// rank receives every sample, the cost model scores batches of similar lengths dealt to ranks
// (`ResponseScorer`), and rank 0 gathers the scores. Nothing depends on the number of ranks.

import Foundation
import Datasets
import Models
import Tokenizers
import Distributed
import Rollout

/// A harmful prompt with the source's safe answer.
public struct RejectedSamplePrompt: Equatable, Sendable {
    /// The source's record id (`safety-tuned-llamas:<line>`).
    public var id: String
    public var prompt: String
    /// The safe answer: the chosen side of every pair of this prompt.
    public var chosen: String
    public var source: SourceLocation

    public init(id: String, prompt: String, chosen: String, source: SourceLocation) {
        self.id = id; self.prompt = prompt; self.chosen = chosen; self.source = source
    }
}

/// The prompts of a loaded dataset that the stage samples, and what was left out.
public struct RejectedSampleSource: Equatable, Sendable {
    public var prompts: [RejectedSamplePrompt]
    /// Demonstrations the dataset gave (after its own filters: evaluation prompts, held-out prompts, maxRows).
    public var demonstrations: Int
    /// Left out: the answered prompt is not labelled unsafe (a helpful answer to a benign prompt is no safe answer to pair).
    public var notHarmful: Int
    /// Left out: the spec's held-out split (`evalFraction`, `splitSeed`) holds the demonstration out of training.
    public var heldOut: Int
    /// Left out: beyond `maxPrompts`.
    public var beyondMaxPrompts: Int

    /// Selects the demonstrations that answer a prompt the dataset labels `unsafe` (a `PromptRecord` with
    /// the same id; safety-tuned-llamas labels all its training instructions so), minus those `heldOut`
    /// holds out by id (as `TrainingData` splits a run's pairs), in file order, at most `maxPrompts`.
    ///
    /// - Throws: `InputFileError` naming `source` when a demonstration's prompt is not one user turn, or
    ///   when no demonstration is left.
    public static func select(_ dataset: LoadedDataset, heldOut: HeldOutSplit?, maxPrompts: Int?, source: String) throws -> RejectedSampleSource {
        let unsafeIDs = Set(dataset.prompts.filter { $0.label == "unsafe" }.map(\.id))
        var out = RejectedSampleSource(prompts: [], demonstrations: dataset.demonstrations.count, notHarmful: 0, heldOut: 0, beyondMaxPrompts: 0)
        for d in dataset.demonstrations {
            guard unsafeIDs.contains(d.id) else { out.notHarmful += 1; continue }
            if let heldOut, heldOut.fraction > 0, heldOut.isHeldOut(d.id) { out.heldOut += 1; continue }
            guard d.prompt.count == 1, d.prompt[0].role == .user else {
                throw InputFileError(file: d.source.file, line: d.source.line,
                                     "the demonstration's prompt has \(d.prompt.count) turns; the stage samples single-turn prompts only, so give a source of one user instruction per answer")
            }
            if let maxPrompts, out.prompts.count >= maxPrompts { out.beyondMaxPrompts += 1; continue }
            out.prompts.append(RejectedSamplePrompt(id: d.id, prompt: d.promptText ?? d.prompt[0].content, chosen: d.response, source: d.source))
        }
        if out.prompts.isEmpty {
            throw InputFileError(file: source, "no demonstration is left to sample (\(out.demonstrations) demonstrations, \(out.notHarmful) answering prompts not labelled unsafe, \(out.heldOut) held out by evalFraction); the stage needs harmful instructions with safe answers, e.g. schema safety-tuned-llamas with its training file \(SafetyTunedLlamasSchema.trainingFile)")
        }
        return out
    }
}

/// Every sample of a run, judged, in (prompt, sample) order, with its verdict.
public struct RejectedSampleResult: Sendable {
    public var samples: [JudgedSample]
    public var verdicts: [RejectedSampleVerdict]

    /// The kept samples as pairs, in (prompt, sample) order.
    public func pairs(_ prompts: [RejectedSamplePrompt]) -> [RejectedSamplePair] {
        zip(samples, verdicts).filter { $0.1 == .kept }.map { s, _ in
            let p = prompts[s.promptIndex]
            return RejectedSamplePair(id: "\(p.id)#\(s.sample)", prompt: p.prompt, chosen: p.chosen, rejected: s.response,
                                      cost: s.cost, sample: s.sample, source: p.source.description)
        }
    }

    /// Every sample as JSON Lines (sorted keys): `prompt_index`, `sample`, `id`, `prompt`, `response`,
    /// `cost`, `refused`, `verdict`, `tokens`, `stopped` — what each judge said, for audit. The `scores`
    /// schema reads it (prompt, response, cost).
    public func samplesJSONL(_ prompts: [RejectedSamplePrompt]) -> String {
        zip(samples, verdicts).map { s, v in
            let object: [String: Any] = [
                "prompt_index": s.promptIndex, "sample": s.sample, "id": prompts[s.promptIndex].id, "prompt": prompts[s.promptIndex].prompt,
                "response": s.response, "cost": s.cost, "refused": s.refused, "verdict": v.rawValue, "tokens": s.tokens, "stopped": s.stopped,
            ]
            let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self) + "\n"
        }.joined()
    }
}

/// Samples the reference model, judges every sample and applies `RejectedSampleRule`.
public struct RejectedSampleStage {
    /// The reference model with its chat template and sampling options (seed, temperature, …).
    public var sampler: PromptSampler
    /// The cost model.
    public var cost: ResponseScorer
    public var classifier: RefusalClassifier
    public var rule: RejectedSampleRule
    /// The cost model's file, for errors.
    public var costModelName = "the cost model"

    public init(sampler: PromptSampler, cost: ResponseScorer, rule: RejectedSampleRule, classifier: RefusalClassifier = RefusalClassifier()) {
        self.sampler = sampler; self.cost = cost; self.rule = rule; self.classifier = classifier
    }

    /// One sample as it travels between ranks.
    struct Drawn: Codable {
        var promptIndex: Int
        var sample: Int
        var response: String
        var tokens: Int
        var stopped: Bool
    }

    /// Every rank samples its share and scores its share; rank 0 returns every sample judged, other ranks nil.
    ///
    /// - Throws: `ResponseScoringError` when a prompt leaves the cost model no room (`--max-length`),
    ///   the cost model returns a non-finite score, or the ranks disagree about the prompts.
    public func run(_ prompts: [RejectedSamplePrompt], samplesPerPrompt K: Int, communicator: Communicator) throws -> RejectedSampleResult? {
        let mine = sampler.sampleShard(prompts.map(\.prompt), samplesPerPrompt: K, rank: communicator.rank, size: communicator.size)
            .map { Drawn(promptIndex: $0.promptIndex, sample: $0.sample, response: $0.response, tokens: $0.tokens.count, stopped: $0.stopped) }
        var slots = [Drawn?](repeating: nil, count: prompts.count * K)
        for (rank, bytes) in try communicator.allGather(Array(try JSONEncoder().encode(mine))).enumerated() {
            for d in try JSONDecoder().decode([Drawn].self, from: Data(bytes)) {
                let slot = d.promptIndex * K + d.sample
                guard prompts.indices.contains(d.promptIndex), (0..<K).contains(d.sample), slots[slot] == nil else {
                    throw ResponseScoringError(file: "rank \(rank)", "sent sample \(d.sample) of prompt \(d.promptIndex) twice or out of range; the ranks read different datasets")
                }
                slots[slot] = d
            }
        }
        let drawn = try slots.enumerated().map { i, d in
            guard let d else { throw ResponseScoringError(file: "gather", "no rank drew sample \(i % K) of prompt \(i / K); the ranks read different datasets") }
            return d
        }
        // An empty sample is scored as the bare end-of-turn (its verdict is `empty` whatever the score).
        let sequences = try drawn.map { try SafetyEvaluator.scoreSequence(cost, prompt: prompts[$0.promptIndex].prompt, response: $0.response) }
        guard let costs = try cost.scoreAll(sequences: sequences, communicator: communicator) else { return nil }
        if let bad = costs.firstIndex(where: { !$0.isFinite }) {
            throw ResponseScoringError(file: costModelName, "scored sample \(bad % K) of prompt '\(prompts[bad / K].prompt.prefix(60))' as \(costs[bad]); the model's weights are broken — retrain or re-export it")
        }
        let judged = zip(drawn, costs).map { d, c in
            JudgedSample(promptIndex: d.promptIndex, sample: d.sample, response: d.response, cost: Double(c),
                         refused: classifier.isRefusal(d.response), tokens: d.tokens, stopped: d.stopped)
        }
        return RejectedSampleResult(samples: judged, verdicts: rule.verdicts(judged, chosen: prompts.map(\.chosen)))
    }
}
