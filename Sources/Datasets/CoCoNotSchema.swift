// CoCoNot preference pairs: benign prompts that look risky, a helpful answer over an over-refusal.

import Tokenizers

/// The `coconot` schema: allenai/noncompliance `coconot_pref.jsonl` (MIT), JSON Lines of `{id,
/// category, subcategory, prompt, chosen, rejected, chosen_model, rejected_model}` — prompts that
/// look risky but should be answered ("contrast" prompts), chosen = a helpful GPT-4 answer,
/// rejected = an over-refusal or a weaker answer.
///
/// Each row gives a helpfulness `PreferencePair` (category `category/subcategory`), a `Demonstration`
/// of the chosen answer, a `PromptRecord` labelled `safe`, and an unranked `SafetyPair` with both answers
/// labelled safe (neither a helpful answer nor an over-refusal of a benign request is harmful: the cost
/// model learns their signs, not an order).
public enum CoCoNotSchema {
    public static func load(paths: [String], options: DatasetOptions = DatasetOptions()) throws -> LoadedDataset {
        var dataset = LoadedDataset(schema: .coconot)
        var report = LoadReport()
        try RowLoop.forEachRow(in: paths, options: options, report: &report) { row, report in
            let text = try row.string("prompt")
            guard !RowLoop.isBlank(text) else { throw row.error(.invalidValue, field: "prompt", "the prompt is empty") }
            let chosen = RowLoop.trimmed(try row.string("chosen"))
            let rejected = RowLoop.trimmed(try row.string("rejected"))
            let category = try [row.optionalString("category"), row.optionalString("subcategory")]
                .compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: "/")
            let id = "coconot:" + RowLoop.rowID(row, column: "id")
            let prompt = RowLoop.trimmed(text)
            dataset.prompts.append(PromptRecord(id: id, prompt: [.user(prompt)], promptText: prompt, label: "safe",
                                                category: category.isEmpty ? nil : category, source: row.location))
            guard RowLoop.keepPair(chosen: chosen, rejected: rejected, options: options, report: &report) else { return }
            dataset.pairs.append(PreferencePair(id: id, prompt: [.user(prompt)], promptText: prompt, chosen: chosen,
                                                rejected: rejected, aspect: .helpfulness, source: row.location,
                                                category: category.isEmpty ? nil : category))
            dataset.safetyPairs.append(SafetyPair(id: id, prompt: [.user(prompt)], promptText: prompt, safer: chosen,
                                                  unsafer: rejected, saferIsSafe: true, unsaferIsSafe: true, ranked: false,
                                                  source: row.location))
            dataset.demonstrations.append(Demonstration(id: id, prompt: [.user(prompt)], promptText: prompt, response: chosen,
                                                        model: try row.optionalString("chosen_model"),
                                                        category: category.isEmpty ? nil : category, source: row.location))
        }
        dataset.report = report
        dataset.countOutputs()
        return dataset
    }
}
