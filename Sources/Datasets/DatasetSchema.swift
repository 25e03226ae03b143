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
public enum DatasetSchema: String, Sendable, Codable, CaseIterable {
    case trl = "trl"
    case hhRLHF = "hh-rlhf"
    case pkuSafeRLHF = "pku-saferlhf"
    case xstest = "xstest"
    case pyritHarm = "pyrit-harm"
    case scores = "scores"
    case prompts = "prompts"
    case tokens = "tokens"

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
