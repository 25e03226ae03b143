// The steps the alignment pipelines share: the dual's prompts and the pairs to relabel, sampling
// from a policy, scoring with reward/cost models, sequence log-probs, relabelled-pair files, and a
// DPO stage run through the Trainer (with its checkpoints) from a chosen initial policy and reference.

import Foundation
import Alignment
import Datasets
import Distributed
import Models
import Tensors
import Tokenizers
import Training
import Rollout

/// What every pipeline step needs: the run config, the communicator, the chat template.
public struct AlignmentContext {
    public let config: RunConfig
    public let comm: Communicator
    public let template: ChatTemplate
    public let run: PipelineRun

    public init(config: RunConfig, communicator: Communicator, template: ChatTemplate, run: PipelineRun) {
        self.config = config; comm = communicator; self.template = template; self.run = run
    }

    /// A stable hash of values (stage inputs).
    public static func hash(_ parts: [String]) -> String { StableHash.hex(Array(parts.joined(separator: "\u{1F}").utf8)) }

    /// Sorted-key JSON of a value (stable across runs; for stage hashes).
    public static func json<T: Encodable>(_ value: T) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: (try? enc.encode(value)) ?? Data(), as: UTF8.self)
    }

    /// A model file's identity for stage hashes: its path, size and modification time.
    public static func fileIdentity(_ spec: String) -> String {
        guard let url = try? ModelSource.resolve(spec) else { return spec }
        var target = url
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
            target = url.appendingPathComponent("model.safetensors")
        }
        let a = try? FileManager.default.attributesOfItem(atPath: target.path)
        let size = (a?[.size] as? NSNumber)?.intValue ?? -1
        let time = (a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(url.path)#\(size)#\(Int(time))"
    }

    // MARK: - Data

    /// The prompts of the dual: `align.prompts` (or the pair datasets), the last user turn of each
    /// distinct conversation, taken round-robin over the datasets, at most `align.maxPrompts`.
    public func dualPrompts() throws -> [String] {
        let specs = config.align.prompts ?? config.data.datasets
        let lists = try specs.map { try $0.load().distinctPrompts.map { LoadedDataset.heldOutKey($0.prompt) } }
        var seen = Set<String>(), out: [String] = []
        var i = 0
        while out.count < config.align.maxPrompts && lists.contains(where: { i < $0.count }) {
            for list in lists where i < list.count && out.count < config.align.maxPrompts {
                if !list[i].isEmpty && seen.insert(list[i]).inserted { out.append(list[i]) }
            }
            i += 1
        }
        guard !out.isEmpty else { throw RunConfigError(key: "align.prompts", message: "no prompts found in the listed datasets") }
        return out
    }

    /// The preference pairs of `specs` (default `data.datasets`; safety pairs when a dataset has no plain pairs), in order.
    public func pairs(in specs: [DatasetSpec]? = nil) throws -> [PreferencePair] {
        var out: [PreferencePair] = []
        for spec in specs ?? config.data.datasets {
            let d = try spec.load()
            out += d.pairs.isEmpty ? d.safetyPairs.map(\.preferencePair) : d.pairs
        }
        // data.maxPairs caps the training pairs: keep as many (plus the held-out share), evenly spaced.
        if let n = config.data.maxPairs, n > 0 {
            let share = config.data.datasets.map(\.evalFraction).max() ?? 0
            let cap = Int((Double(n) / (1 - share)).rounded(.up))
            if out.count > cap { out = (0..<cap).map { out[$0 * out.count / cap] } }
        }
        guard !out.isEmpty else {
            let aspects = Set((specs ?? []).compactMap(\.options.aspects).joined()).map(\.rawValue).sorted()
            throw RunConfigError(key: "data.datasets", message: "no preference pairs\(aspects.isEmpty ? "" : " about \(aspects)") in the listed datasets")
        }
        return out
    }

    // MARK: - Models

    /// K samples of each prompt from `model`; rank 0 gets them in (prompt, sample) order, with the tokens spent.
    public func sample(_ model: Transformer, tokenizer: BPETokenizer, prompts: [String], samplesPerPrompt K: Int,
                       seed: UInt64) throws -> (samples: [PromptSample]?, budget: StageBudget) {
        let a = config.align
        var sampler = PromptSampler(model: model, tokenizer: tokenizer, template: template,
                                    options: SamplingOptions(temperature: Float(a.temperature), topP: Float(a.topP),
                                                             maxNewTokens: a.maxNewTokens, seed: seed))
        sampler.batchSize = a.batchSize
        let samples = try sampler.sampleAll(prompts, samplesPerPrompt: K, communicator: comm)
        var budget = StageBudget()
        if let samples {
            budget.generatedTokens = Double(samples.reduce(0) { $0 + $1.tokens.count })
            let promptTokens = prompts.map { sampler.promptTokens($0).count }
            budget.forwardTokens = Double(samples.reduce(0) { $0 + promptTokens[$1.promptIndex] })
        }
        return (samples, budget)
    }

    /// The stage that samples K responses per dual prompt from the reference into `samples.jsonl`;
    /// returns its inputs hash (for the stages after it) and the number of samples.
    public func referenceSamplesStage(_ name: String, prompts: [String]) throws -> (inputs: String, count: Int) {
        let c = config, a = config.align
        let inputs = Self.hash(["samples", Self.fileIdentity(c.model), c.data.template, "\(prompts)",
                                "\(a.samplesPerPrompt) \(a.maxNewTokens) \(a.temperature) \(a.topP) \(a.sampleSeed)"])
        let count: Int = try run.stage(name, inputs: inputs) { dir in
            let loaded = try ModelSource.load(c.model)
            let (samples, budget) = try sample(loaded.model, tokenizer: try loaded.requireTokenizer(), prompts: prompts,
                                               samplesPerPrompt: a.samplesPerPrompt, seed: a.sampleSeed)
            if let samples { try Data(PromptSample.jsonLines(samples).utf8).write(to: dir.appendingPathComponent("samples.jsonl"), options: .atomic) }
            return (samples?.count ?? 0, budget)
        }
        return (inputs, count)
    }

    /// Scores (prompt, response) rows with a score-head model; rank 0 gets the scores in row order.
    public func score(_ modelSpec: String, key: String, rows: [ScoringRow]) throws -> (scores: [Float]?, tokens: Double) {
        let loaded = try ModelSource.load(modelSpec, scoreHead: true)
        guard try loaded.hasScoreHeadTensor() else {
            throw RunConfigError(key: key, message: "\(modelSpec) has no trained score head; give the final.gguf of `dualign train \(key.contains("cost") ? "cost" : "reward")`")
        }
        var scorer = ResponseScorer(model: loaded.model, template: template, batchSize: config.align.batchSize,
                                    maxLength: config.align.scoreMaxLength)
        scorer.scoresEmptyResponses = true
        let sequences = try rows.map { try scorer.sequence($0, source: key) }
        var mine: [(index: Int, score: Float)] = []
        var tokens = 0.0
        for chunk in RankBatches.longestFirst(lengths: sequences.map(\.count), batchSize: config.align.batchSize, rank: comm.rank, size: comm.size) {
            for (i, v) in zip(chunk, scorer.scoreTokens(chunk.map { sequences[$0] })) { mine.append((i, v)) }
            tokens += Double(chunk.reduce(0) { $0 + sequences[$1].count })
        }
        let all = try ResponseScorer.gather(mine, count: rows.count, communicator: comm)
        return (all, try comm.allReduceSum(tokens))
    }

    /// Rewards and costs of rows under `align.rewardModel` and `align.costModel` (rank 0 gets them), with the tokens spent.
    public func rewardsAndCosts(_ rows: [ScoringRow]) throws -> (rewards: [Float]?, costs: [Float]?, tokens: Double) {
        let (rewards, t1) = try score(config.align.rewardModel, key: "align.rewardModel", rows: rows)
        let (costs, t2) = try score(config.align.costModel, key: "align.costModel", rows: rows)
        return (rewards, costs, t1 + t2)
    }

    /// Two scoring rows per pair: y0 (the dataset's chosen) then y1, after the pair's last user turn.
    public static func pairRows(_ pairs: [PreferencePair]) -> [ScoringRow] {
        pairs.flatMap { p in [p.chosen, p.rejected].map { ScoringRow(prompt: LoadedDataset.heldOutKey(p.prompt), response: $0) } }
    }

    /// Sequence log-probs of responses (token ids) after their prompts under `model`, sharded; every rank gets all.
    public func sequenceLogProbs(_ model: Transformer, prompts: [[Int32]], responses: [[Int32]]) throws -> (values: [Double], tokens: Double) {
        var local = [Double](repeating: 0, count: prompts.count)
        var tokens = 0.0
        let lengths = prompts.indices.map { prompts[$0].count + responses[$0].count }
        for chunk in RankBatches.longestFirst(lengths: lengths, batchSize: config.align.batchSize, rank: comm.rank, size: comm.size) {
            let batch = TokenBatch(sequences: chunk.map { prompts[$0] + responses[$0] })
            let values = model.sequenceLogProbs(batch, responseStarts: chunk.map { prompts[$0].count })
            for (i, v) in zip(chunk, values) { local[i] = v }
            tokens += Double(chunk.reduce(0) { $0 + lengths[$1] })
        }
        try comm.allReduceSum(&local)
        return (local, try comm.allReduceSum(tokens))
    }

    // MARK: - Relabelled pairs and DPO

    /// Writes pairs as TRL JSONL (conversational prompt, text chosen/rejected, the label probability).
    public static func writePairs(_ rows: [(pair: PreferencePair, chosen: String, rejected: String, probability: Double)], to url: URL) throws {
        var text = ""
        for r in rows {
            let object: [String: Any] = ["id": r.pair.id, "prompt": r.pair.prompt.map { ["role": $0.role.rawValue, "content": $0.content] },
                                         "chosen": r.chosen, "rejected": r.rejected, "probability": r.probability]
            text += String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self) + "\n"
        }
        try Data(text.utf8).write(to: url, options: .atomic)
    }

    /// Labels each pair once: y1 ≻ y0 with probability `probability(i)`, drawn from a generator seeded by `seed`.
    public static func sampleLabels(_ pairs: [PreferencePair], seed: UInt64, probability: (Int) -> Double)
        -> [(pair: PreferencePair, chosen: String, rejected: String, probability: Double)] {
        var rng = Tensors.SplitMix64(seed: seed)
        return pairs.indices.map { i in
            let label = PseudoLabel.draw(probability: probability(i), rng: &rng)
            // y0 = the pair's chosen response, y1 = its rejected one.
            let (p, second) = (label.probability, label.prefersSecond)
            return (pairs[i], second ? pairs[i].rejected : pairs[i].chosen, second ? pairs[i].chosen : pairs[i].rejected, p)
        }
    }

    /// What a DPO stage produced.
    public struct DPOResult: Codable, Equatable, Sendable {
        /// The trained model (GGUF), relative to the run directory.
        public var model: String
        public var steps: Int
        public var eval: [String: Double]
    }

    /// Runs DPO into `directory` (resuming from its checkpoints): policy initialised from `initial` (with LoRA,
    /// adapters start from `initialAdapters` when given), reference `reference` (nil or the initial model itself:
    /// the initial policy, or its base with adapters off — no second copy), KL coefficient `beta`, on `datasets`.
    public func dpo(directory: URL, datasets: [DatasetSpec], initial: String, reference: String? = nil, initialAdapters: String? = nil,
                    beta: Double, maxSteps: Int? = nil, seedOffset: UInt64 = 0, fields: [String: String] = [:]) throws -> (DPOResult, StageBudget) {
        var c = config
        c.task = .dpo
        c.align = AlignConfig()
        c.outputDir = directory.path
        c.model = initial
        c.dpo.beta = beta
        c.seed = config.seed &+ seedOffset
        c.data.datasets = datasets
        c.lora.initialAdapters = initialAdapters
        if let maxSteps { c.optimizer.maxSteps = maxSteps }
        try c.validate()
        let loaded = try ModelSource.load(initial, trainable: true, loadWeights: comm.rank == 0)
        let referenceModel = try reference.flatMap { $0 == initial ? nil : try ModelSource.load($0).model }
        let trainer = try Trainer(config: c, communicator: comm, model: loaded, template: template, reference: referenceModel)
        trainer.checkpointFields = fields
        let summary = try trainer.run()
        let root = run.directory.standardizedFileURL.path
        var path = directory.appendingPathComponent("final.gguf").standardizedFileURL.path
        if path.hasPrefix(root + "/") { path = String(path.dropFirst(root.count + 1)) }
        return (DPOResult(model: path, steps: summary.steps, eval: summary.evalMetrics),
                StageBudget(forwardTokens: summary.referenceTokens, trainTokens: summary.trainTokens))
    }

    /// A dataset spec for a relabelled-pairs file, held out as the first pair dataset is.
    public func relabelledDataset(_ url: URL) -> DatasetSpec {
        DatasetSpec(schema: .trl, paths: [url.path], evalFraction: config.data.datasets.first?.evalFraction ?? 0,
                    splitSeed: config.data.datasets.first?.splitSeed ?? 0)
    }

    /// The pair datasets restricted to one aspect (SACPO's and PeCAN's helpfulness and safety DPO).
    public func datasets(aspect: PreferenceAspect) -> [DatasetSpec] {
        config.data.datasets.map { spec in
            var s = spec
            s.options.aspects = [aspect]
            return s
        }
    }

    /// The path of a model in the run directory.
    public func path(_ relative: String) -> String { run.directory.appendingPathComponent(relative).path }
}
