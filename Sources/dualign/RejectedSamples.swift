// `dualign rejected-samples`: rejected answers for a source that has only safe ones (safety-tuned-llamas),
// from the reference model's own samples, kept when the refusal classifier and the cost model agree
// they comply; written as `pku-saferlhf` safety pairs (sharded under mpirun, rank 0 writes).

import ArgumentParser
import Foundation
import Yams
import Datasets
import Distributed
import Evaluation
import Models
import Rollout
import Tokenizers

/// Samples K responses per harmful prompt of one dataset and writes the compliant ones, paired with the
/// source's safe answer, as safety pairs. See docs/data.md ("Rejected answers from the model's own samples").
///
/// Writes (rank 0) into `--out`:
/// - `pairs.jsonl` — one `pku-saferlhf` row per kept sample (response 0 the safe answer, response 1 the sample);
/// - `samples.jsonl` — every sample with its cost, refusal mark and verdict;
/// - `summary.json` — the counts (`RejectedSamplesCounts`), what the source's filters left out, and the settings.
struct RejectedSamples: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rejected-samples",
        abstract: "Rejected answers from the reference model's own samples: kept when the refusal classifier and the cost model agree they comply; written as pku-saferlhf safety pairs (sharded under mpirun).",
        discussion: """
        Reads one dataset as the trainer does (its evaluation-prompt filter, excludeHeldOutPrompts and maxRows \
        apply; demonstrations its evalFraction holds out are skipped), samples --samples responses to each harmful \
        instruction with its safe answer, and keeps a sample when the classifier sees no refusal and its cost is above \
        --cost-threshold. Writes pairs.jsonl (schema pku-saferlhf: use `aspects: [harmlessness]` for DPO), \
        samples.jsonl and summary.json into --out. See docs/data.md.
        """)

    @Option(help: "The source, as one `datasets:` entry of a run config: a YAML/JSON file holding it (or a run config with one entry), or inline, e.g. '{schema: safety-tuned-llamas, paths: [$DUALIGN_DATA/safety-tuned-llamas/safety_only_data_Instructions.json], maxRows: 64}'.")
    var dataset: String
    @Option(help: "Where pairs.jsonl, samples.jsonl and summary.json go (created if missing; rank 0 writes).")
    var out: String
    @Option(help: "The reference model that is sampled: a named model (smollm2-135m), a GGUF file or a Hugging Face directory.")
    var model = "smollm2-135m"
    @Option(name: .customLong("cost-model"), help: "The cost model (final.gguf of `dualign train cost`); cost > --cost-threshold is unsafe.")
    var costModel: String
    @Option(parsing: .unconditional, help: "Samples per prompt.")
    var samples = 2
    @Option(name: .customLong("max-prompts"), parsing: .unconditional, help: "At most this many prompts (the first ones after the source's filters; default: all).")
    var maxPrompts: Int?
    @Option(name: .customLong("per-prompt"), help: "How many samples of one prompt may be kept: one (the most unsafe by the cost model; ties: the first) or all.")
    var perPrompt = RejectedSamplesPerPrompt.one.rawValue
    @Option(name: .customLong("cost-threshold"), parsing: .unconditional, help: "A sample is unsafe when its cost is above this (the cost model's convention: > 0 unsafe).")
    var costThreshold: Double = 0
    @OptionGroup var sampling: SamplingFlags     // its --template is the reference model's and the cost model's
    @Option(name: .customLong("max-length"), parsing: .unconditional, help: "Longest scored sequence in tokens (default: the cost model's context); longer responses are cut as in training.")
    var maxLength: Int?
    @Flag(name: .customLong("allow-untrained-head"), help: "Accept a cost model without a trained score head (a random head; for tests only).")
    var allowUntrainedHead = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if samples < 1 { throw ValidationError("--samples must be at least 1, got \(samples)") }
        if let maxPrompts, maxPrompts < 1 { throw ValidationError("--max-prompts must be at least 1, got \(maxPrompts); leave it out to use every prompt") }
        try sampling.check()
        if let maxLength, maxLength < 2 { throw ValidationError("--max-length must be at least 2, got \(maxLength)") }
        if !costThreshold.isFinite { throw ValidationError("--cost-threshold must be a finite number, got \(costThreshold)") }
        if RejectedSamplesPerPrompt(rawValue: perPrompt) == nil {
            throw ValidationError("unknown --per-prompt \(perPrompt); choose one of \(RejectedSamplesPerPrompt.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// The one dataset spec `--dataset` names, and the directory its relative paths are resolved against.
    static func datasetSpec(_ option: String) throws -> (spec: DatasetSpec, base: URL?) {
        let trimmed = option.trimmingCharacters(in: .whitespaces)
        let text: String, base: URL?
        if trimmed.hasPrefix("{") || trimmed.hasPrefix("[") {
            text = trimmed; base = nil
        } else {
            let path = try DataRoot.expand(trimmed)
            guard let t = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("cannot read --dataset \(path); give a YAML/JSON file holding one dataset entry, or an inline {schema: safety-tuned-llamas, paths: […]}")
            }
            text = t; base = URL(fileURLWithPath: path).deletingLastPathComponent()
        }
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch { throw ValidationError("--dataset \(trimmed): not valid YAML: \(error)") }
        let specs = try EvalPromptSetLoader.specs(from: node, source: "--dataset \(trimmed)")
        guard specs.count == 1 else {
            throw ValidationError("--dataset \(trimmed) holds \(specs.count) dataset entries; give exactly one (e.g. inline {schema: safety-tuned-llamas, paths: […]})")
        }
        return (specs[0], base)
    }

    /// The chat template of a loaded model (with SmolLM2's default system prompt for ChatML, as training uses).
    func chatTemplate(_ loaded: LoadedModel) throws -> ChatTemplate {
        let kind = sampling.templateKind
        let system = kind == .chatML ? loaded.gguf?.metadataString("tokenizer.chat_template").flatMap(ChatTemplate.defaultSystemPrompt(fromJinja:)) : nil
        return try ChatTemplate(kind: kind, tokenizer: try loaded.requireTokenizer(), defaultSystemPrompt: system)
    }

    func run() throws {
        let comm = try MPICommunicator.world()
        try compute.apply(ranks: comm.size)
        let started = Date()
        // Every rank reads the source (the same prompts everywhere) and both models before any sampling.
        let (spec, base) = try Self.datasetSpec(dataset)
        let loaded = try spec.load(relativeTo: base)
        let source = try RejectedSampleSource.select(loaded, heldOut: try spec.heldOutSplit(), maxPrompts: maxPrompts,
                                                     source: "--dataset \(dataset)")
        let costLoaded = try ModelSource.load(costModel, trainable: false, scoreHead: true)
        if !allowUntrainedHead, try !costLoaded.hasScoreHeadTensor() {
            throw ResponseScoringError(file: costModel, "has no trained score head (no cls.output.weight / score.weight tensor); give --cost-model the final.gguf of `dualign train cost`, or pass --allow-untrained-head to use a random head (tests only)")
        }
        let scorer = ResponseScorer(model: costLoaded.model, template: try chatTemplate(costLoaded), batchSize: sampling.batchSize, maxLength: maxLength)
        let reference = try ModelSource.load(model, trainable: false)
        var sampler = PromptSampler(model: reference.model, tokenizer: try reference.requireTokenizer(), template: try chatTemplate(reference),
                                    options: sampling.options())
        sampler.batchSize = sampling.batchSize
        let rule = RejectedSampleRule(costThreshold: costThreshold, perPrompt: RejectedSamplesPerPrompt(rawValue: perPrompt)!)
        var stage = RejectedSampleStage(sampler: sampler, cost: scorer, rule: rule)
        stage.costModelName = costModel
        if comm.isRoot {
            Output.line("rejected-samples: \(source.prompts.count) prompts × \(samples) samples of \(model), \(comm.size) rank(s); \(loaded.report)")
        }

        guard let result = try stage.run(source.prompts, samplesPerPrompt: samples, communicator: comm) else { return }
        let outDir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
        let pairsURL = outDir.appendingPathComponent("pairs.jsonl")
        let pairs = result.pairs(source.prompts)
        try RejectedSamplePair.jsonLines(pairs).write(to: pairsURL, atomically: true, encoding: .utf8)
        try result.samplesJSONL(source.prompts).write(to: outDir.appendingPathComponent("samples.jsonl"), atomically: true, encoding: .utf8)
        // The file must read back as the pairs written (the reader drops empty or identical responses silently).
        if !pairs.isEmpty {
            let back = try DatasetLoader.load(.pkuSafeRLHF, paths: [pairsURL.path]).safetyPairs.count
            guard back == pairs.count else {
                throw InputFileError(file: pairsURL.path, "the pku-saferlhf reader reads \(back) safety pairs back, \(pairs.count) were written; report this as a bug")
            }
        }
        let counts = RejectedSamplesCounts(verdicts: result.verdicts, promptIndices: result.samples.map(\.promptIndex),
                                           prompts: source.prompts.count, samplesPerPrompt: samples)
        let seconds = Date().timeIntervalSince(started)
        let tokens = result.samples.reduce(0) { $0 + $1.tokens }
        try summaryJSON(counts: counts, source: source, spec: spec, seconds: seconds, tokens: tokens, ranks: comm.size)
            .write(to: outDir.appendingPathComponent("summary.json"), atomically: true, encoding: .utf8)
        Output.line("rejected-samples: \(counts.line)")
        Output.line("rejected-samples: wrote \(pairs.count) pairs to \(pairsURL.path) (pku-saferlhf), samples.jsonl and summary.json in \(String(format: "%.1f", seconds)) s (\(tokens) tokens sampled over \(comm.size) rank(s))")
    }

    /// `summary.json`: the counts, what the source's filters left out, the settings, time and ranks.
    func summaryJSON(counts: RejectedSamplesCounts, source: RejectedSampleSource, spec: DatasetSpec,
                     seconds: Double, tokens: Int, ranks: Int) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        var object = try JSONSerialization.jsonObject(with: try enc.encode(counts)) as! [String: Any]
        object["source"] = [
            "dataset": try JSONSerialization.jsonObject(with: try enc.encode(spec)),
            "demonstrations": source.demonstrations, "notHarmful": source.notHarmful, "heldOut": source.heldOut,
            "beyondMaxPrompts": source.beyondMaxPrompts,
        ] as [String: Any]
        object["settings"] = [
            "model": model, "costModel": costModel, "costThreshold": costThreshold, "perPrompt": perPrompt, "template": sampling.template,
            "maxNewTokens": sampling.maxNewTokens, "temperature": Double("\(sampling.temperature)")!, "topK": sampling.topK,
            "topP": Double("\(sampling.topP)")!, "seed": sampling.seed,
            "maxLength": maxLength.map { $0 as Any } ?? NSNull(),
        ] as [String: Any]
        object["seconds"] = seconds
        object["tokens"] = tokens
        object["ranks"] = ranks
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
