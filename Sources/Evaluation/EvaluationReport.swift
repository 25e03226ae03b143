// The machine-readable outputs of `dualign eval` (eval.json, generations JSONL), its settings, and the
// reading of alignment runs' align.json. Pure functions of their inputs; the command writes the files.

import Foundation
import Datasets

/// An aligned model to evaluate, with what its alignment run predicted.
public struct EvalModelSpec: Equatable, Sendable {
    public var name: String
    /// The model file or directory (relative paths in align.json resolved against the run directory).
    public var path: String
    public var method: String?
    /// Dual variables λ (one per constraint).
    public var lambda: [Double]?
    /// Safety margins b.
    public var margin: [Double]?
    /// Predicted safety improvement per constraint.
    public var predictedImprovement: [Double]?
    /// The run's `budget` object, passed through.
    public var budget: JSONValue?
    /// The run directory it came from.
    public var run: String?

    public init(name: String, path: String, method: String? = nil, lambda: [Double]? = nil, margin: [Double]? = nil,
                predictedImprovement: [Double]? = nil, budget: JSONValue? = nil, run: String? = nil) {
        self.name = name; self.path = path; self.method = method; self.lambda = lambda; self.margin = margin
        self.predictedImprovement = predictedImprovement; self.budget = budget; self.run = run
    }
}

/// Reads `align.json` of an alignment run:
/// `{"method": …, "models": [{"name", "path", "lambda"?, "margin"?, "predictedImprovement"?}], "budget"?: {…}}`.
public enum AlignRunFile {
    /// Reads `DIR/align.json`.
    public static func read(runDirectory: String) throws -> [EvalModelSpec] {
        let path = URL(fileURLWithPath: runDirectory).appendingPathComponent("align.json").path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PromptSetError(file: path, "cannot read the file; give --run a directory written by an alignment run (it holds align.json)")
        }
        return try parse(String(decoding: data, as: UTF8.self), runDirectory: runDirectory, source: path)
    }

    /// Parses align.json text; relative model paths are resolved against `runDirectory`.
    public static func parse(_ text: String, runDirectory: String, source: String) throws -> [EvalModelSpec] {
        guard case .object(let root)? = try? JSONValue.parse(text) else {
            throw PromptSetError(file: source, "is not a JSON object; expected {\"method\": …, \"models\": [{\"name\": …, \"path\": …}]}")
        }
        var method: String?
        if case .string(let m)? = root["method"] { method = m }
        var budget: JSONValue?
        if let b = root["budget"], b != .null { budget = b }
        guard case .array(let entries)? = root["models"], !entries.isEmpty else {
            throw PromptSetError(file: source, "has no non-empty \"models\" list; expected \"models\": [{\"name\": …, \"path\": …}]")
        }
        return try entries.enumerated().map { i, entry in
            guard case .object(let o) = entry, case .string(let name)? = o["name"], case .string(let path)? = o["path"],
                  !name.isEmpty, !path.isEmpty else {
                throw PromptSetError(file: source, "models[\(i)] needs string fields \"name\" and \"path\"")
            }
            func numbers(_ key: String) throws -> [Double]? {
                switch o[key] {
                case nil, .null?: return nil
                case .number(let x)?: return [x]
                case .array(let a)?:
                    return try a.map {
                        guard case .number(let x) = $0 else {
                            throw PromptSetError(file: source, "models[\(i)].\(key) holds \($0.typeName); expected numbers")
                        }
                        return x
                    }
                case let other?: throw PromptSetError(file: source, "models[\(i)].\(key) is \(other.typeName); expected a list of numbers or null")
                }
            }
            let expanded = (path as NSString).expandingTildeInPath
            let resolved = expanded.hasPrefix("/") ? expanded
                : URL(fileURLWithPath: runDirectory).appendingPathComponent(expanded).standardizedFileURL.path
            return EvalModelSpec(name: name, path: resolved, method: method, lambda: try numbers("lambda"), margin: try numbers("margin"),
                                predictedImprovement: try numbers("predictedImprovement"), budget: budget, run: runDirectory)
        }
    }
}

/// One evaluated model's results.
public struct ModelEvaluation: Sendable {
    public var model: EvalModelSpec
    public var metrics: ModelMetrics
    /// Against the reference (nil for the reference itself).
    public var comparison: ReferenceComparison?
    /// The predicted improvement against the achieved one on each extra set (models that predict one).
    public var guarantees: [GuaranteeCheck]

    public init(model: EvalModelSpec, metrics: ModelMetrics, comparison: ReferenceComparison?, guarantees: [GuaranteeCheck] = []) {
        self.model = model; self.metrics = metrics; self.comparison = comparison; self.guarantees = guarantees
    }

    /// Helpfulness: the reward model's win rate against the reference on the held-out AlpacaEval instructions.
    public var helpfulness: Estimate? { comparison?.sets["alpacaeval"]?.rewardWinRate }
}

/// The refusal classifier as eval.json and the report describe it.
public struct ClassifierInfo: Codable, Equatable, Sendable {
    public var description: String
    /// Agreement with labels it was not tuned on (measured by `RefusalClassifierTests`).
    public var heldOutAgreement: [Agreement]

    public struct Agreement: Codable, Equatable, Sendable {
        public var data: String
        public var agreement: Estimate
    }

    /// The default classifier's description and measured agreement.
    public static let standard = ClassifierInfo(
        description: "string match on the opening 300 characters (RefusalClassifier), tuned on XSTest's gpt4, mistralguard and llama2orig completions",
        heldOutAgreement: RefusalClassifier.heldOutAgreement.map { Agreement(data: $0.data, agreement: $0.estimate) })
}

/// The settings of an evaluation, recorded in eval.json (nothing that depends on the number of ranks).
public struct EvaluationSettings: Codable, Equatable, Sendable {
    public var template: String
    public var maxNewTokens: Int
    public var maxPrompts: Int
    public var batchSize: Int
    public var maxLength: Int?
    /// Held-out fractions of the split sets (XSTest, CoCoNot, AlpacaEval) and their seed.
    public var xstestHoldout: Double
    public var coconotHoldout: Double
    public var alpacaHoldout: Double
    public var holdoutSeed: UInt64
    /// Prompts per set actually evaluated.
    public var promptCounts: [String: Int]
    /// Every set: role, source, held-out rule, counts.
    public var sets: [EvaluationSetInfo]
    public var rewardModel: String
    public var costModel: String
    public var reference: String
    public var refusalClassifier: ClassifierInfo
    /// Confidence level of every interval.
    public var confidence: Double
    /// Percentile-bootstrap resamples and seed (win rates, means, mean differences).
    public var bootstrapSamples: Int
    public var bootstrapSeed: UInt64
    /// How the answers were drawn when sampled (K per prompt, temperature, top-p, seed); nil (and absent
    /// from eval.json): one greedy answer per prompt.
    public var sampling: AnswerSampling?

    public init(template: String, maxNewTokens: Int, maxPrompts: Int, batchSize: Int, maxLength: Int?, xstestHoldout: Double,
                coconotHoldout: Double, alpacaHoldout: Double, holdoutSeed: UInt64, sets: [EvaluationSetInfo],
                rewardModel: String, costModel: String, reference: String, refusalClassifier: ClassifierInfo = .standard,
                confidence: Double, bootstrapSamples: Int, bootstrapSeed: UInt64, sampling: AnswerSampling? = nil) {
        self.template = template; self.maxNewTokens = maxNewTokens; self.maxPrompts = maxPrompts; self.batchSize = batchSize
        self.maxLength = maxLength; self.xstestHoldout = xstestHoldout; self.coconotHoldout = coconotHoldout
        self.alpacaHoldout = alpacaHoldout; self.holdoutSeed = holdoutSeed
        self.promptCounts = Dictionary(uniqueKeysWithValues: sets.map { ($0.name, $0.prompts) })
        self.sets = sets; self.rewardModel = rewardModel; self.costModel = costModel; self.reference = reference
        self.refusalClassifier = refusalClassifier; self.confidence = confidence
        self.bootstrapSamples = bootstrapSamples; self.bootstrapSeed = bootstrapSeed; self.sampling = sampling
    }
}

/// Renders the machine-readable outputs (eval.json, generations JSONL).
public enum EvaluationReport {
    /// The eval.json layout version (2: every rate an `Estimate` with n and interval).
    public static let schemaVersion = 2

    /// A JSON value as a Foundation object for `JSONSerialization` (non-finite numbers become null).
    static func foundation(_ v: JSONValue) -> Any {
        switch v {
        case .null: return NSNull()
        case .bool(let b): return b
        case .number(let x): return x.isFinite ? x : NSNull()
        case .string(let s): return s
        case .array(let a): return a.map(foundation)
        case .object(let o): return o.mapValues(foundation)
        }
    }

    /// An `Encodable` as a Foundation object (via JSON).
    static func foundation<T: Encodable>(_ value: T) throws -> Any {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try JSONSerialization.jsonObject(with: encoder.encode(value), options: [.fragmentsAllowed])
    }

    /// One model's eval.json entry.
    static func entry(_ e: ModelEvaluation) throws -> [String: Any] {
        var o: [String: Any] = ["name": e.model.name, "path": e.model.path, "metrics": try foundation(e.metrics)]
        if let m = e.model.method { o["method"] = m }
        if let x = e.model.lambda { o["lambda"] = x }
        if let x = e.model.margin { o["margin"] = x }
        if let x = e.model.predictedImprovement { o["predictedImprovement"] = x }
        if let b = e.model.budget { o["budget"] = foundation(b) }
        if let r = e.model.run { o["run"] = r }
        if let c = e.comparison {
            o["comparison"] = try foundation(c)
            o["achievedImprovement"] = try foundation(c.overall.safetyImprovement)
        }
        if let h = e.helpfulness { o["helpfulness"] = try foundation(h) }
        if e.comparison != nil { o["guarantees"] = try foundation(e.guarantees) }
        return o
    }

    /// eval.json: settings, the reference's metrics, every model's metrics, comparison and guarantee
    /// checks, and the sample answers (sorted keys).
    public static func json(settings: EvaluationSettings, reference: ModelEvaluation, models: [ModelEvaluation],
                            samples: [SampleAnswer] = []) throws -> String {
        let root: [String: Any] = ["schemaVersion": schemaVersion, "settings": try foundation(settings),
                                   "reference": try entry(reference), "models": try models.map(entry),
                                   "samples": try foundation(samples)]
        let data = try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// One JSONL line per response: prompt, set, label, response, reward, cost, refused, tokens, stopped,
    /// and `sample` (which of the prompt's K answers) when the answers were sampled.
    public static func generationsJSONL(_ responses: [EvaluatedResponse]) throws -> String {
        struct Line: Encodable {
            var prompt: String, set: String, label: String, response: String
            var reward: Double, cost: Double, refused: Bool, tokens: Int, stopped: Bool
            var sample: Int?
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try responses.map { r in
            String(decoding: try encoder.encode(Line(prompt: r.prompt.text, set: r.prompt.set, label: r.prompt.label,
                                                     response: r.response, reward: r.reward, cost: r.cost, refused: r.refused,
                                                     tokens: r.tokens, stopped: r.stopped, sample: r.sample)), as: UTF8.self) + "\n"
        }.joined()
    }
}
