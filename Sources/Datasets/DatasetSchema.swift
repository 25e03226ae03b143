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
/// | `refusal-direction` | andyrdt/refusal_direction runs `<model>/{jailbreakbench,harmless}_{baseline,ablation,actadd}_evaluations.json` (Apache-2.0) | per model and prompt: harmful refusal ≻ ablated compliance (harmlessness + safety pairs, 5 models: 325), benign helpful ≻ induced refusal (helpfulness: 402), labels agreeing and completions cut; 2,000 labelled completions; 200 prompts |
/// | `safety-tuned-llamas` | vinid/safety-tuned-llamas `safety_only_data_Instructions.json` (+ `evaluation/*.json` prompt sets) (CC BY-NC 4.0) | 2,483 demonstrations (harmful instruction, safe answer) and prompts; evaluation files: prompts labelled safe/unsafe |
/// | `coconot` | allenai/noncompliance `coconot_pref.jsonl` (MIT) | 927 helpfulness pairs (helpful ≻ over-refusal) with category/subcategory, demonstrations (chosen), prompts labelled safe |
/// | `jailbreakbench` | JailbreakBench/artifacts `<method>/<attack>/<model>.json` (MIT) | 1,573 (goal, response, jailbroken) scored responses; 1,000 pairs not jailbroken ≻ jailbroken on one goal (+ safety pairs); 105 goals as prompts |
/// | `alpaca-eval` | tatsu-lab/alpaca_eval `<generator>/model_outputs.json`, `annotations.json` (Apache-2.0; outputs under their generators' terms) | 4,024 demonstrations (one per generator and instruction), 1,565 GPT-4 helpfulness pairs, 805 prompts |
/// | `red-instruct` | declare-lab/red-instruct `harmfulqa.json`, `dangerousqa.json` (Apache-2.0) | 2,160 harmful questions as prompts (topic/subtopic as category) |
///
/// The last six drop records whose prompt matches an evaluation prompt by default
/// (`DatasetOptions.excludeEvaluationPrompts`); counts per source are in `docs/data.md`.
public enum DatasetSchema: String, Sendable, Codable, CaseIterable {
    case trl = "trl"
    case hhRLHF = "hh-rlhf"
    case pkuSafeRLHF = "pku-saferlhf"
    case xstest = "xstest"
    case pyritHarm = "pyrit-harm"
    case scores = "scores"
    case prompts = "prompts"
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
        case .trl, .hhRLHF, .pkuSafeRLHF, .xstest, .pyritHarm, .scores, .prompts: return false
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
