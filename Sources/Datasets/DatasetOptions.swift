// Options for reading a dataset: column names, invalid-row policy, schema-specific knobs.

/// How XSTest's `3_partial_refusal` completions are used.
public enum PartialRefusalPolicy: String, Sendable, Codable, CaseIterable {
    /// Leave them out of every pair (counted in `LoadReport.skippedPartialRefusal`).
    case skip
    /// Count them as refusals.
    case refusal
}

/// Two generators of one instruction's answers, the first's answer taken as the better one (AlpacaEval's
/// `generatorPairs`).
public struct GeneratorPair: Equatable, Sendable, Codable {
    /// The generator whose answer is `chosen` (e.g. `gpt4`).
    public var chosen: String
    /// The generator whose answer is `rejected` (e.g. `alpaca-7b`).
    public var rejected: String

    public init(chosen: String, rejected: String) { self.chosen = chosen; self.rejected = rejected }
}

/// Column (JSON key / CSV header) names, each defaulting to the conventional name.
public struct ColumnNames: Equatable, Sendable, Codable {
    public var id = "id"
    public var prompt = "prompt"
    public var chosen = "chosen"
    public var rejected = "rejected"
    public var response = "response"
    public var reward = "reward"
    public var cost = "cost"
    public var isSafe = "is_safe"
    public var label = "label"
    public var category = "category"

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ColumnNames()
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? d.id
        prompt = try c.decodeIfPresent(String.self, forKey: .prompt) ?? d.prompt
        chosen = try c.decodeIfPresent(String.self, forKey: .chosen) ?? d.chosen
        rejected = try c.decodeIfPresent(String.self, forKey: .rejected) ?? d.rejected
        response = try c.decodeIfPresent(String.self, forKey: .response) ?? d.response
        reward = try c.decodeIfPresent(String.self, forKey: .reward) ?? d.reward
        cost = try c.decodeIfPresent(String.self, forKey: .cost) ?? d.cost
        isSafe = try c.decodeIfPresent(String.self, forKey: .isSafe) ?? d.isSafe
        label = try c.decodeIfPresent(String.self, forKey: .label) ?? d.label
        category = try c.decodeIfPresent(String.self, forKey: .category) ?? d.category
    }
}

/// How to read a dataset. Every field has a default, so a config may give any subset
/// (decoding fills in the rest).
public struct DatasetOptions: Equatable, Sendable, Codable {
    /// Skip malformed rows and count them (`LoadReport.skippedInvalid`) instead of failing on the first.
    public var skipInvalidRows = false
    /// Drop pairs/rows whose response is empty or only whitespace (counted in `droppedEmptyResponse`).
    public var dropEmptyResponses = true
    /// Drop pairs whose chosen and rejected texts are identical (counted in `droppedIdenticalResponses`).
    public var dropIdenticalResponses = true
    /// Read at most this many data rows in total (nil: all); for quick runs.
    public var maxRows: Int?
    /// Column names for `trl`, `scores` and `prompts`.
    public var columns = ColumnNames()
    /// The aspect recorded on `trl` pairs.
    public var aspect: PreferenceAspect = .general
    /// XSTest: how partial refusals count.
    public var partialRefusal: PartialRefusalPolicy = .skip
    /// XSTest: the prompts file (`xstest_prompts.csv`) giving each prompt's safe/unsafe label, when it
    /// is not among the dataset paths. Without it labels come from a `label` column or the `type`
    /// (`contrast_*` types are the unsafe prompts).
    public var xstestPrompts: String?
    /// PyRIT: pair two responses to one objective when their mean harm scores differ by at least
    /// this much (0: any difference). Scores are in {0, .25, .5, .75, 1}, averaged over annotators.
    public var harmScoreGap = 0.0
    /// Keep only pairs about these aspects (nil: all). Safety pairs count as harmlessness.
    public var aspects: [PreferenceAspect]?
    /// Leave out every record whose prompt this split holds out (keyed by the last user turn,
    /// trimmed): the prompts an evaluation (`dualign eval --xstest-holdout`) keeps unseen.
    public var excludeHeldOutPrompts: HeldOutSplit?
    /// Drop every record whose prompt is an evaluation prompt or a near duplicate of one (AdvBench,
    /// HarmBench and the held-out XSTest prompts; `EvaluationPromptFilter`), counting the drops in
    /// `LoadReport.evaluationOverlap`. nil: the schema's default (on for the public sources added for
    /// refusal training, `DatasetSchema.excludesEvaluationPromptsByDefault`). When on and the prompt
    /// files are missing, loading fails and says to run `launch/assets.sh prompts`.
    public var excludeEvaluationPrompts: Bool?
    /// The XSTest split whose held-out prompts `excludeEvaluationPrompts` protects (nil: the split
    /// `dualign eval` uses by default, fraction 0.3, seed 11).
    public var evaluationXSTestHoldout: HeldOutSplit?
    /// refusal-direction: how the run-on completions are cut before they become pairs.
    public var completionCut: CompletionCut = .firstParagraph
    /// AlpacaEval: helpfulness pairs from two generators' answers to the same instruction, the first
    /// generator's taken as better (a label by the generators' gap, not by a judge: use generators far
    /// apart on AlpacaEval's leaderboard, e.g. gpt4 ≻ alpaca-7b). nil: no such pairs.
    public var generatorPairs: [GeneratorPair]?

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DatasetOptions()
        skipInvalidRows = try c.decodeIfPresent(Bool.self, forKey: .skipInvalidRows) ?? d.skipInvalidRows
        dropEmptyResponses = try c.decodeIfPresent(Bool.self, forKey: .dropEmptyResponses) ?? d.dropEmptyResponses
        dropIdenticalResponses = try c.decodeIfPresent(Bool.self, forKey: .dropIdenticalResponses) ?? d.dropIdenticalResponses
        maxRows = try c.decodeIfPresent(Int.self, forKey: .maxRows)
        columns = try c.decodeIfPresent(ColumnNames.self, forKey: .columns) ?? d.columns
        aspect = try c.decodeIfPresent(PreferenceAspect.self, forKey: .aspect) ?? d.aspect
        partialRefusal = try c.decodeIfPresent(PartialRefusalPolicy.self, forKey: .partialRefusal) ?? d.partialRefusal
        xstestPrompts = try c.decodeIfPresent(String.self, forKey: .xstestPrompts)
        harmScoreGap = try c.decodeIfPresent(Double.self, forKey: .harmScoreGap) ?? d.harmScoreGap
        aspects = try c.decodeIfPresent([PreferenceAspect].self, forKey: .aspects)
        excludeHeldOutPrompts = try c.decodeIfPresent(HeldOutSplit.self, forKey: .excludeHeldOutPrompts)
        excludeEvaluationPrompts = try c.decodeIfPresent(Bool.self, forKey: .excludeEvaluationPrompts)
        evaluationXSTestHoldout = try c.decodeIfPresent(HeldOutSplit.self, forKey: .evaluationXSTestHoldout)
        completionCut = try c.decodeIfPresent(CompletionCut.self, forKey: .completionCut) ?? d.completionCut
        generatorPairs = try c.decodeIfPresent([GeneratorPair].self, forKey: .generatorPairs)
    }

    /// Whether records matching evaluation prompts are dropped when loading `schema`.
    public func excludesEvaluationPrompts(for schema: DatasetSchema) -> Bool {
        excludeEvaluationPrompts ?? schema.excludesEvaluationPromptsByDefault
    }

    /// Checks the values, naming the option to change.
    public func validate() throws {
        if let maxRows, maxRows < 0 {
            throw DatasetError(.invalidConfiguration, file: "dataset options", field: "maxRows",
                               "maxRows is \(maxRows); use a positive number or leave it out to read every row")
        }
        for (i, g) in (generatorPairs ?? []).enumerated() where g.chosen == g.rejected || g.chosen.isEmpty || g.rejected.isEmpty {
            throw DatasetError(.invalidConfiguration, file: "dataset options", field: "generatorPairs[\(i)]",
                               "chosen '\(g.chosen)' and rejected '\(g.rejected)' must name two different generators (the `generator` of model_outputs.json rows)")
        }
        guard harmScoreGap.isFinite, harmScoreGap >= 0, harmScoreGap <= 1 else {
            throw DatasetError(.invalidConfiguration, file: "dataset options", field: "harmScoreGap",
                               "harmScoreGap is \(harmScoreGap); use a value in [0, 1] (harm scores lie in [0, 1])")
        }
    }
}
