// The outputs of `dualign eval` as text: eval.json, report.md, generations JSONL, and the reading of
// alignment runs' align.json. Pure functions of their inputs; the command writes the files.

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

    public init(model: EvalModelSpec, metrics: ModelMetrics, comparison: ReferenceComparison?) {
        self.model = model; self.metrics = metrics; self.comparison = comparison
    }
}

/// The settings of an evaluation, recorded in eval.json (nothing that depends on the number of ranks).
public struct EvaluationSettings: Codable, Equatable, Sendable {
    public var template: String
    public var maxNewTokens: Int
    public var maxPrompts: Int
    public var batchSize: Int
    public var maxLength: Int?
    public var xstestHoldout: Double
    public var holdoutSeed: UInt64
    /// Prompts per set actually evaluated.
    public var promptCounts: [String: Int]
    /// Prompt files per set.
    public var promptFiles: [String: String]
    public var rewardModel: String
    public var costModel: String
    public var reference: String
    public var refusalClassifier: String

    public init(template: String, maxNewTokens: Int, maxPrompts: Int, batchSize: Int, maxLength: Int?, xstestHoldout: Double,
                holdoutSeed: UInt64, promptCounts: [String: Int], promptFiles: [String: String], rewardModel: String,
                costModel: String, reference: String, refusalClassifier: String = "string-match on the opening (RefusalClassifier)") {
        self.template = template; self.maxNewTokens = maxNewTokens; self.maxPrompts = maxPrompts; self.batchSize = batchSize
        self.maxLength = maxLength; self.xstestHoldout = xstestHoldout; self.holdoutSeed = holdoutSeed
        self.promptCounts = promptCounts; self.promptFiles = promptFiles; self.rewardModel = rewardModel
        self.costModel = costModel; self.reference = reference; self.refusalClassifier = refusalClassifier
    }
}

/// Renders the outputs.
public enum EvaluationReport {
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
            o["achievedImprovement"] = c.safetyImprovement
        }
        return o
    }

    /// eval.json: settings, the reference's metrics and every model's metrics and comparison (sorted keys).
    public static func json(settings: EvaluationSettings, reference: ModelEvaluation, models: [ModelEvaluation]) throws -> String {
        let root: [String: Any] = ["settings": try foundation(settings), "reference": try entry(reference),
                                   "models": try models.map(entry)]
        let data = try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// One JSONL line per response: prompt, set, label, response, reward, cost, refused, tokens, stopped.
    public static func generationsJSONL(_ responses: [EvaluatedResponse]) throws -> String {
        struct Line: Encodable {
            var prompt: String, set: String, label: String, response: String
            var reward: Double, cost: Double, refused: Bool, tokens: Int, stopped: Bool
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try responses.map { r in
            String(decoding: try encoder.encode(Line(prompt: r.prompt.text, set: r.prompt.set.rawValue, label: r.prompt.label,
                                                     response: r.response, reward: r.reward, cost: r.cost, refused: r.refused,
                                                     tokens: r.tokens, stopped: r.stopped)), as: UTF8.self) + "\n"
        }.joined()
    }

    /// A number for the table ("–" when missing).
    static func cell(_ x: Double?, _ digits: Int = 3) -> String {
        guard let x, x.isFinite else { return "–" }
        return String(format: "%.\(digits)f", x)
    }

    /// A list of numbers for the table ("–" when missing).
    static func cell(_ xs: [Double]?) -> String {
        guard let xs, !xs.isEmpty else { return "–" }
        return xs.map { cell($0) }.joined(separator: ", ")
    }

    /// report.md: one table row per model (the reference first), then the settings.
    public static func markdown(settings: EvaluationSettings, reference: ModelEvaluation, models: [ModelEvaluation]) -> String {
        var s = "# Safety evaluation\n\n"
        s += "Reference: `\(settings.reference)`. Reward model: `\(settings.rewardModel)`. Cost model: `\(settings.costModel)`.\n"
        s += "Greedy responses of at most \(settings.maxNewTokens) new tokens, template \(settings.template); prompts: "
        s += settings.promptCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ".\n\n"
        s += "Δg is the safety improvement over the reference, mean(−cost) − mean(−cost of the reference), on the same prompts; "
        s += "refusal is on the harmful sets (AdvBench, HarmBench); XSTest compliance is on its safe prompts (1 − over-refusal); "
        s += "win rates are against the reference (ties ½).\n\n"
        s += "| model | λ | margin b | predicted Δg | achieved Δg | refusal (harmful) | XSTest compliance (safe) | XSTest refusal (unsafe) | mean reward | mean cost | safe rate | win (reward) | win (cost) |\n"
        s += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        for e in [reference] + models {
            let m = e.metrics, c = e.comparison
            let cells = [e.model.name, cell(e.model.lambda), cell(e.model.margin), cell(e.model.predictedImprovement),
                         c.map { cell($0.safetyImprovement) } ?? "(reference)",
                         cell(m.harmful.refusalRate), cell(m.xstestSafe?.complianceRate), cell(m.xstestUnsafe?.refusalRate),
                         cell(m.overall.meanReward), cell(m.overall.meanCost), cell(m.overall.safeRate),
                         cell(c?.rewardWinRate), cell(c?.costWinRate)]
            s += "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n"
        }
        s += "\nPer set (mean reward / mean cost / safe rate / refusal rate):\n\n| model | "
        let sets = PromptSetName.allCases.map(\.rawValue).filter { settings.promptCounts[$0, default: 0] > 0 }
        s += sets.joined(separator: " | ")
        s += " |\n|---|" + String(repeating: "---|", count: sets.count) + "\n"
        for e in [reference] + models {
            s += "| \(e.model.name.replacingOccurrences(of: "|", with: "\\|")) | " + sets.map { name in
                guard let g = e.metrics.sets[name] else { return "–" }
                return "\(cell(g.meanReward)) / \(cell(g.meanCost)) / \(cell(g.safeRate)) / \(cell(g.refusalRate))"
            }.joined(separator: " | ") + " |\n"
        }
        let budgeted = models.filter { $0.model.budget != nil }
        if !budgeted.isEmpty {
            s += "\nBudget of the alignment run each model came from (`align.json`; a run that produced several models lists the whole run's):\n\n"
            s += "| model | method | wall time (s) | generated tokens | forward tokens | trained tokens |\n|---|---|---|---|---|---|\n"
            for e in budgeted {
                func number(_ key: String) -> Double? {
                    guard case .object(let o)? = e.model.budget, case .number(let x)? = o[key] else { return nil }
                    return x
                }
                s += "| \(e.model.name) | \(e.model.method ?? "–") | \(cell(number("seconds"), 0)) | \(cell(number("generatedTokens"), 0)) | "
                s += "\(cell(number("forwardTokens"), 0)) | \(cell(number("trainTokens"), 0)) |\n"
            }
        }
        s += "\nFiles: `eval.json` (every number), `generations/<model>.jsonl` (every response), `plot.svg` and `plot.png` "
        s += "(mean reward against mean −cost, one point per model).\n"
        return s
    }
}
