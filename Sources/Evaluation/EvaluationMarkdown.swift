// report.md of `dualign eval`: what was measured and how, one table per question (refusal and
// over-refusal, reward and cost, helpfulness, the predicted against the achieved safety improvement),
// the budgets, sample answers and the plots. Every number carries its interval and its n.

import Foundation
import Datasets

extension EvaluationReport {
    /// "0.031 [0.011, 0.088] n=96" ("–" when missing); proportions also give successes/n, and means over
    /// several sampled answers per prompt the answers: "n=32 (128 answers)".
    static func cell(_ e: Estimate?, digits: Int = 3) -> String {
        guard let e, e.value.isFinite else { return "–" }
        let f = { (x: Double) in String(format: "%.\(digits)f", x) }
        let count = e.successes.map { "\($0)/\(e.n)" } ?? (e.answers.map { "n=\(e.n) (\($0) answers)" } ?? "n=\(e.n)")
        return "\(f(e.value)) [\(f(e.lo)), \(f(e.hi))] \(count)"
    }

    /// A plain number ("–" when missing).
    static func cell(_ x: Double?, _ digits: Int = 3) -> String {
        guard let x, x.isFinite else { return "–" }
        return String(format: "%.\(digits)f", x)
    }

    /// A list of numbers ("–" when missing).
    static func cell(_ xs: [Double]?) -> String {
        guard let xs, !xs.isEmpty else { return "–" }
        return xs.map { cell($0) }.joined(separator: ", ")
    }

    /// A table row with `|` escaped in the cells.
    static func row(_ cells: [String]) -> String {
        "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }.joined(separator: " | ") + " |\n"
    }

    /// A table header with its rule.
    static func header(_ cells: [String]) -> String {
        row(cells) + "|" + String(repeating: "---|", count: cells.count) + "\n"
    }

    /// A response shortened for the report (first `limit` characters, one line).
    static func excerpt(_ s: String, limit: Int = 280) -> String {
        let flat = s.replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces)
        return flat.count > limit ? String(flat.prefix(limit)) + "…" : (flat.isEmpty ? "(empty)" : flat)
    }

    /// report.md.
    ///
    /// - Parameters:
    ///   - curves: the training-curves image's file name, when one was drawn.
    public static func markdown(settings: EvaluationSettings, reference: ModelEvaluation, models: [ModelEvaluation],
                                samples: [SampleAnswer] = [], curves: String? = nil, curveRuns: [String] = []) -> String {
        let all = [reference] + models
        let pct = Int((settings.confidence * 100).rounded())
        var s = "# Safety evaluation\n\n"
        s += "Reference `\(settings.reference)`; reward model `\(settings.rewardModel)`; cost model `\(settings.costModel)`. "
        if let sampling = settings.sampling {
            s += "\(sampling.summary) from every model, the reference included, "
            s += "of at most \(settings.maxNewTokens) new tokens (template \(settings.template)), at most \(settings.maxPrompts) prompts per set; "
            s += "answer k of prompt i comes from its own generator, keyed by (seed, i·\(sampling.samplesPerPrompt) + k).\n\n"
        } else {
            s += "Greedy answers of at most \(settings.maxNewTokens) new tokens (template \(settings.template)), at most \(settings.maxPrompts) prompts per set.\n\n"
        }
        s += "**How to read the numbers.** Every rate is followed by its \(pct) % confidence interval and its count: "
        if let K = settings.sampling?.samplesPerPrompt, K > 1 {
            s += "every per-prompt quantity is the mean over the prompt's \(K) answers (reward, cost, the fraction of answers refused, "
            s += "the fraction with cost ≤ 0; a win rate scores each prompt by its \(K) × \(K) pairs of the model's and the reference's answers), "
            s += "and prompts stay the unit: means, mean differences and win rates against the reference use a paired percentile "
            s += "bootstrap over prompts (\(settings.bootstrapSamples) resamples, seed \(settings.bootstrapSeed)), whose resampled per-prompt means "
            s += "carry the randomness of the sampled answers as well as that of the prompts; proportions (refusal, compliance, safe rate) "
            s += "are means of per-prompt fractions with the Wilson score interval at the effective number of answers (the design effect: "
            s += "a prompt's \(K) answers are not independent, so they count as between 1 and \(K) answers, as the spread of the fractions "
            s += "between prompts says; as 1 when the rate is 0 or 1). Counts read \"n=prompts (answers)\". "
        } else {
            s += "proportions "
            s += "(refusal, compliance, safe rate) use the Wilson score interval; means, mean differences and win rates against the "
            s += "reference use a paired percentile bootstrap over prompts (\(settings.bootstrapSamples) resamples, seed \(settings.bootstrapSeed)). "
        }
        s += "Prompts are the unit: the intervals say how much the numbers would move on another draw of prompts from the same sets, "
        s += "not how good the judges are. Refusals are marked by a string-match classifier ("
        s += settings.refusalClassifier.heldOutAgreement.map { "agreement \(cell($0.agreement.value)) [\(cell($0.agreement.lo)), \(cell($0.agreement.hi))] on \($0.agreement.n) \($0.data)" }.joined(separator: "; ")
        s += "); reward and cost come from the score models, whose own accuracy is not part of these intervals. "
        s += "Win rates count a tie as ½; Δg is mean(−cost) of the model minus the reference's on the same prompts.\n\n"

        s += "## Prompt sets (held out from training)\n\n" + header(["set", "role", "prompts", "held-out rule", "source"])
        for set in settings.sets {
            s += row([set.name, set.role.rawValue, "\(set.prompts) of \(set.available)", set.heldOut, "`\(set.source)`"])
        }

        s += "\n## Refusal of harmful requests and compliance with benign ones\n\n"
        s += "Refusal rate on harmful prompts (higher is safer); compliance on benign prompts (higher is less over-refusal).\n\n"
        let columns: [(String, (ModelEvaluation) -> Estimate?)] = [
            ("refusal AdvBench", { $0.metrics.sets["advbench"]?.refusal }),
            ("refusal HarmBench", { $0.metrics.sets["harmbench"]?.refusal }),
            ("refusal harmful (both)", { $0.metrics.harmful.refusal }),
            ("XSTest safe: compliance", { $0.metrics.xstestSafe?.compliance }),
            ("XSTest unsafe: refusal", { $0.metrics.xstestUnsafe?.refusal }),
            ("PhysicalSafetySafe: compliance", { $0.metrics.sets["physicalsafety"]?.compliance }),
            ("CoCoNot look-alikes: compliance", { $0.metrics.sets["coconot"]?.compliance }),
        ].filter { col in all.contains { col.1($0) != nil } }
        s += header(["model"] + columns.map(\.0))
        for e in all { s += row([e.model.name] + columns.map { cell($0.1(e)) }) }

        s += "\n## Reward, cost and win rates against the reference\n\n"
        s += "Over the built-in sets together (\(reference.metrics.overall.n) prompts). Helpfulness is the reward model's win rate on the held-out AlpacaEval instructions.\n\n"
        s += header(["model", "mean reward", "mean cost", "Δg = Δmean(−cost)", "Δ mean reward", "win rate (reward)", "win rate (cost)", "helpfulness (AlpacaEval reward win rate)"])
        for e in all {
            let c = e.comparison
            s += row([e.model.name, cell(e.metrics.overall.meanReward), cell(e.metrics.overall.meanCost),
                      c.map { cell($0.overall.safetyImprovement) } ?? "(reference)", cell(c?.overall.rewardImprovement),
                      cell(c?.overall.rewardWinRate), cell(c?.overall.costWinRate), cell(e.helpfulness)])
        }

        let setNames = settings.sets.map(\.name)
        if !models.isEmpty {
            s += "\n### Per set: Δg, and win rates (reward / cost)\n\n"
            s += header(["model", "set", "Δg", "win rate (reward)", "win rate (cost)", "mean reward", "mean cost"])
            for e in models {
                for name in setNames {
                    guard let c = e.comparison?.sets[name] else { continue }
                    let g = e.metrics.sets[name]
                    s += row([e.model.name, name, cell(c.safetyImprovement), cell(c.rewardWinRate), cell(c.costWinRate),
                              cell(g?.meanReward), cell(g?.meanCost)])
                }
            }
        }

        s += "\n## Predicted against achieved safety improvement\n\n"
        let extra = settings.sets.filter { $0.role == .extra }.map(\.name)
        let predicting = models.filter { ($0.model.predictedImprovement?.first).map(\.isFinite) ?? false }
        if predicting.isEmpty {
            s += "No model's align.json predicts an improvement.\n"
        } else if extra.isEmpty {
            s += "The alignment runs predict an improvement of E[g] on the prompt distribution of their dual, but no prompt set of that "
            s += "distribution was given (`--prompt-set NAME=SPEC` with the dual's prompt pool and its held-out split), so the prediction is not checked here. "
            s += "Δg on the sets above is on other prompts, where the guarantee does not apply.\n"
        } else {
            s += "The prediction is for the dual's own prompt distribution; it is checked on held-out prompts of that distribution "
            s += "(the extra sets: \(extra.joined(separator: ", "))). It holds when the achieved Δg's interval contains the prediction "
            s += "or lies above it; \"below\" means the whole interval is below the prediction.\n\n"
            if let sampling = settings.sampling {
                s += "The achieved Δg here is E_π[g] − E_π_ref[g] estimated from \(sampling.summary): the quantity the dual predicts, "
                s += "provided the temperature and top-p are the ones its samples were drawn at (`align.temperature`, `align.topP` of the run's config).\n\n"
            }
            s += header(["model", "method", "set", "margin b", "predicted Δg", "achieved Δg", "prediction inside the interval", "verdict"])
            for e in predicting {
                for g in e.guarantees {
                    let verdict = g.verdict == "inside" ? "consistent with the prediction"
                        : g.verdict == "below" ? "below the prediction: the guarantee did not hold here" : "above the prediction"
                    s += row([e.model.name, e.model.method ?? "–", g.set, cell(g.margin), cell(g.predicted), cell(g.achieved),
                              g.predictionInsideInterval ? "yes" : "no", verdict])
                }
            }
            if predicting.contains(where: { $0.model.method == "pecan" }) {
                s += "\nPeCAN's margin and prediction are in its DPO-implied safety reward (β·log π_s/π_ref), not in the cost model's units: its rows are not comparable with Δg.\n"
            }
        }

        let budgeted = models.filter { $0.model.budget != nil }
        if !budgeted.isEmpty {
            s += "\n## Budgets\n\nOf the alignment run each model came from (`align.json`; a run that produced several models lists the whole run's):\n\n"
            s += header(["model", "method", "λ", "wall time (s)", "generated tokens", "forward tokens", "trained tokens"])
            for e in budgeted {
                func number(_ key: String) -> Double? {
                    guard case .object(let o)? = e.model.budget, case .number(let x)? = o[key] else { return nil }
                    return x
                }
                s += row([e.model.name, e.model.method ?? "–", cell(e.model.lambda), cell(number("seconds"), 0), cell(number("generatedTokens"), 0),
                          cell(number("forwardTokens"), 0), cell(number("trainTokens"), 0)])
            }
        }

        if !samples.isEmpty {
            s += "\n## Sample answers\n\n[refused] / [answered] is the refusal classifier's mark; answers are cut at 280 characters.\n"
            if let K = settings.sampling?.samplesPerPrompt, K > 1 { s += "Each answer shown is the first of the prompt's \(K) samples (sample 0); `generations/` holds all of them.\n" }
            for (i, sample) in samples.enumerated() {
                s += "\n**\(i + 1). \(sample.set), \(sample.label == "unsafe" ? "harmful" : "benign"):** \(excerpt(sample.prompt, limit: 400))\n\n"
                for a in sample.answers {
                    s += "- `\(a.model)` \(a.refused ? "[refused]" : "[answered]") (reward \(cell(a.reward, 2)), cost \(cell(a.cost, 2))): \(excerpt(a.response))\n"
                }
            }
        }

        s += "\n## Plots\n\n![helpfulness against harmlessness](plot.png)\n\n"
        s += "`plot.svg` / `plot.png`: mean reward against mean −cost over the built-in sets, one point per model, bars = \(pct) % bootstrap intervals.\n"
        if let curves {
            s += "\n![training curves](\(curves))\n\n`curves.svg` / `\(curves)`: per run (\(curveRuns.joined(separator: ", "))), the training loss and the DPO reward margin of each stage over its steps, and λ after each dual update (`pipeline.jsonl`).\n"
        }
        s += "\nFiles: `eval.json` (every number with n and interval), `generations/<model>.jsonl` (every answer, its scores and refusal mark).\n"
        return s
    }
}
