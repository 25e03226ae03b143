// The supported dataset layouts, by the names used in run configurations.

/// A dataset layout. Raw values are the names used in YAML configs (`schema: hh-rlhf`).
///
/// | name | files | produces |
/// |---|---|---|
/// | `trl` | JSONL/CSV `prompt`, `chosen`, `rejected` (text or `[{"role","content"}]`; prompt optional for conversational rows) | pairs |
/// | `hh-rlhf` | JSONL `chosen`, `rejected` full dialogues | pairs (harmlessness) |
/// | `pku-saferlhf` | JSONL/CSV `prompt, response_0, response_1, is_response_0_safe, is_response_1_safe, better_response_id, safer_response_id` | helpfulness + harmlessness pairs, safety pairs, per-response safety rows |
/// | `xstest` | `xstest_prompts.csv` + `model_completions/*.csv` | refusal ≻ compliance (unsafe prompts), compliance ≻ refusal (safe prompts), safety pairs, prompts |
/// | `pyrit-harm` | PyRIT `scorer_evals/harm/*.csv` | lower-harm ≻ higher-harm pairs by objective, scored responses (cost = mean harm) |
/// | `scores` | JSONL/CSV `prompt`, `response`, `reward` and/or `cost` (and optional `is_safe`) | scored responses |
/// | `prompts` | JSONL/CSV `prompt` (optional `id`, `label`, `category`) | prompts |
/// | `tokens` | JSONL `prompt_ids`, `chosen_ids`, `rejected_ids` (token id lists; no template applied) | tokenized pairs |
/// | `refusal-direction` | andyrdt/refusal_direction `<model>/{jailbreakbench,harmless}_{baseline,ablation,actadd}_evaluations.json` (Apache-2.0) | per model and prompt, labels agreeing, texts cut: harmful refusal ≻ ablated compliance (harmlessness + safety pairs), benign helpful ≻ induced refusal (helpfulness); labelled completions; prompts. Measured: 332 + 476 pairs, 2,000 completions, 200 prompts; 224 + 476 pairs after the evaluation filter |
/// | `safety-tuned-llamas` | vinid/safety-tuned-llamas `safety_only_data_Instructions.json` (+ `evaluation/*.json`) (CC BY-NC 4.0) | demonstrations (harmful instruction, safe answer) and prompts; evaluation sets as labelled prompts. Measured: 2,483 demonstrations, 2,483 + 668 prompts |
/// | `coconot` | allenai/noncompliance `coconot_pref.jsonl` (MIT) | helpfulness pairs (helpful ≻ over-refusal) with category/subcategory, demonstrations (chosen), prompts. Measured: 927 of each |
/// | `jailbreakbench` | JailbreakBench/artifacts `<method>/<attack>/<model>.json` (MIT) | (goal, response, jailbroken) scored responses; not jailbroken ≻ jailbroken pairs on one goal (+ safety pairs); goals as prompts. Measured: 1,637 responses, 935 pairs, 105 goals; 1,128 / 621 / 74 after the evaluation filter |
/// | `alpaca-eval` | tatsu-lab/alpaca_eval `<generator>/model_outputs.json`, `annotations.json` (Apache-2.0; outputs under their generators' terms) | demonstrations per generator, GPT-4 helpfulness pairs, prompts. Measured: 4,022 demonstrations, 1,564 pairs, 805 prompts |
/// | `red-instruct` | declare-lab/red-instruct `harmfulqa.json`, `dangerousqa.json` (Apache-2.0) | harmful questions as prompts (topic/subtopic as category). Measured: 2,160 (2,157 after the evaluation filter) |
///
/// The last six drop records whose prompt matches an evaluation prompt by default
/// (`DatasetOptions.excludeEvaluationPrompts`); `docs/data.md` has the counts per source.
public enum DatasetSchema: String, Sendable, Codable, CaseIterable {
    case trl = "trl"
    case hhRLHF = "hh-rlhf"
    case pkuSafeRLHF = "pku-saferlhf"
    case xstest = "xstest"
    case pyritHarm = "pyrit-harm"
    case scores = "scores"
    case prompts = "prompts"
    case tokens = "tokens"
    case refusalDirection = "refusal-direction"
    case safetyTunedLlamas = "safety-tuned-llamas"
    case coconot = "coconot"
    case jailbreakBench = "jailbreakbench"
    case alpacaEval = "alpaca-eval"
    case redInstruct = "red-instruct"

    /// Whether `excludeEvaluationPrompts` is on when a config leaves it out: on for the public sources
    /// added for refusal training (JailbreakBench behaviours overlap AdvBench and HarmBench); off for
    /// user formats and for `prompts`, which also reads the evaluation sets themselves.
    public var excludesEvaluationPromptsByDefault: Bool {
        switch self {
        case .refusalDirection, .safetyTunedLlamas, .coconot, .jailbreakBench, .alpacaEval, .redInstruct: return true
        case .trl, .hhRLHF, .pkuSafeRLHF, .xstest, .pyritHarm, .scores, .prompts, .tokens: return false
        }
    }

    /// Parses a config name, accepting the Swift case name too (`hhRLHF`), case-insensitively.
    public init(configName: String) throws {
        let wanted = configName.lowercased().filter { $0.isLetter || $0.isNumber }
        for s in Self.allCases where s.rawValue.lowercased().filter({ $0.isLetter || $0.isNumber }) == wanted {
            self = s
            return
        }
        throw DatasetError(.invalidConfiguration, file: "dataset config", field: "schema",
                           "unknown schema '\(configName)'; use one of \(Self.allCases.map(\.rawValue).joined(separator: ", "))")
    }
}
