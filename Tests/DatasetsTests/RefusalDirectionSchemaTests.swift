// refusal-direction runs: label-agreeing pairs per model and prompt, labelled completions, row errors.

@testable import Datasets
import XCTest

final class RefusalDirectionSchemaTests: XCTestCase {
    private var unfiltered: DatasetOptions {
        var o = DatasetOptions()
        o.excludeEvaluationPrompts = false
        return o
    }

    func testRealRunsGivePairsWhoseLabelsAgree() throws {
        let dir = try SharedData.require("refusal-direction")
        let d = try DatasetLoader.load(.refusalDirection, paths: [dir], options: unfiltered)
        let name = "refusal-direction"
        XCTAssertEqual(d.report.files, 20)
        XCTAssertEqual(d.pairs(.harmlessness).count, try PublicDataCounts.int(name, "harmlessnessPairs"))
        XCTAssertEqual(d.pairs(.helpfulness).count, try PublicDataCounts.int(name, "helpfulnessPairs"))
        XCTAssertEqual(d.safetyPairs.count, try PublicDataCounts.int(name, "safetyPairs"))
        XCTAssertEqual(d.report.droppedDisagreeingLabels, try PublicDataCounts.int(name, "droppedDisagreeingLabels"))
        XCTAssertEqual(d.labelledCompletions.count, try PublicDataCounts.int(name, "labelledCompletions"))
        XCTAssertEqual(d.prompts.count, try PublicDataCounts.int(name, "prompts"))
        let byModel = try XCTUnwrap(try PublicDataCounts.source(name)["pairsByModel"] as? [String: Int])
        for (key, expected) in byModel {
            let parts = key.split(separator: "/").map(String.init)
            let set = parts[1] == "harmful" ? "jailbreakbench" : "harmless"
            let got = d.pairs.filter { $0.id.hasPrefix("refusal-direction:\(parts[0]):\(set):") }.count
            XCTAssertEqual(got, expected, "pairs of \(key)")
        }

        // Each pair's two completions: same model and prompt, labels as the pair claims.
        let bySource = Dictionary(d.labelledCompletions.map { ($0.source, $0) }, uniquingKeysWith: { a, _ in a })
        for p in d.pairs {
            let chosen = try XCTUnwrap(bySource[p.source]), rejected = try XCTUnwrap(bySource[try XCTUnwrap(p.rejectedSource)])
            XCTAssertEqual(chosen.model, rejected.model, p.id)
            XCTAssertEqual(chosen.promptText, rejected.promptText, p.id)
            XCTAssertEqual(chosen.intervention, "baseline", p.id)
            if p.aspect == .harmlessness {
                XCTAssertTrue(chosen.refused && chosen.harmful == false, "\(p.id): the chosen baseline refused and is safe")
                XCTAssertTrue(!rejected.refused && rejected.harmful == true, "\(p.id): the ablation complied and is unsafe")
                XCTAssertEqual(rejected.intervention, "ablation")
            } else {
                XCTAssertTrue(!chosen.refused && rejected.refused, "\(p.id): helpful ≻ induced refusal")
                XCTAssertEqual(rejected.intervention, "actadd")
            }
        }
        // Labels as the files give them: e.g. gemma-2b-it's ablation complies in 100 of 100 by substring
        // matching and in 78 by LlamaGuard 2 (the file's own success rates: 1.0 and 0.78).
        let gemma = d.labelledCompletions.filter { $0.model == "gemma-2b-it" && $0.intervention == "ablation" }
        XCTAssertEqual(gemma.filter { !$0.refused }.count, 100)
        XCTAssertEqual(gemma.filter { $0.harmful == true }.count, 78)
    }

    func testPairRulesAndRowErrors() throws {
        let dir = try TempDirectory()
        func run(_ rows: [String]) -> String { "{\n\"completions\": [\n" + rows.joined(separator: ",\n") + "\n]\n}\n" }
        func row(_ prompt: String, _ response: String, _ sub: Int, _ lg: Int?) -> String {
            #"{"category": "c", "prompt": "\#(prompt)", "response": "\#(response)", "is_jailbreak_substring_matching": \#(sub)"#
                + (lg.map { #", "is_jailbreak_llamaguard2": \#($0)"# } ?? "") + "}"
        }
        try dir.write("m/jailbreakbench_baseline_evaluations.json", run([
            row("P1", "I cannot help.", 0, 0), row("P2", "I cannot help.", 0, 0), row("P3", "Sure, step one.", 1, 1)]))
        try dir.write("m/jailbreakbench_ablation_evaluations.json", run([
            row("P1", "Sure, step one.", 1, 1), row("P2", "Sure, harmless.", 1, 0), row("P3", "Sure, step two.", 1, 1)]))
        try dir.write("m/harmless_baseline_evaluations.json", run([row("Q1", "Here it is.", 1, nil)]))
        try dir.write("m/harmless_actadd_evaluations.json", run([row("Q1", "I cannot do that.", 0, nil)]))
        let d = try DatasetLoader.load(.refusalDirection, paths: [dir.url.path], options: unfiltered)
        // Files are read by name (harmless_* first); pairs in that order.
        XCTAssertEqual(d.pairs.map(\.promptText), ["Q1", "P1"], "P2: the ablation was judged safe; P3: the baseline did not refuse")
        XCTAssertEqual(d.pairs.map(\.chosen), ["Here it is.", "I cannot help."])
        XCTAssertEqual(d.pairs.map(\.rejected), ["I cannot do that.", "Sure, step one."])
        XCTAssertEqual(d.pairs.map(\.aspect), [.helpfulness, .harmlessness])
        XCTAssertEqual(d.report.droppedDisagreeingLabels, 2)
        XCTAssertEqual(d.safetyPairs.map(\.promptText), ["Q1", "P1"])
        XCTAssertEqual(d.safetyPairs.map(\.ranked), [false, true], "the benign pair is unranked")
        XCTAssertEqual(d.safetyPairs.map(\.unsaferIsSafe), [true, false], "an induced refusal is safe, the ablation's compliance not")
        XCTAssertEqual(d.labelledCompletions.count, 8)
        XCTAssertEqual(d.prompts.map(\.promptText), ["Q1", "P1", "P2", "P3"])
        XCTAssertEqual(d.prompts.map(\.label), ["safe", "unsafe", "unsafe", "unsafe"])

        // A row without a response (line 4), a label that is not 0/1 (line 5), a non-object (line 6).
        let bad = try dir.write("bad/jailbreakbench_baseline_evaluations.json", run([
            row("P1", "ok.", 0, 0), #"{"prompt": "P2", "is_jailbreak_substring_matching": 0}"#,
            row("P3", "ok.", 2, 0), "\"text\""]))
        let e = try XCTUnwrap(expectDatasetError(try DatasetLoader.load(.refusalDirection, paths: [bad], options: unfiltered)))
        XCTAssertEqual(e.file, bad)
        XCTAssertEqual(e.line, 4)
        XCTAssertEqual(e.field, "response")
        var skip = unfiltered
        skip.skipInvalidRows = true
        let s = try DatasetLoader.load(.refusalDirection, paths: [bad], options: skip)
        XCTAssertEqual(s.report.skippedInvalid, 3)
        XCTAssertEqual(s.report.invalidRowSamples.map(\.line), [4, 5, 6])
        XCTAssertEqual(s.report.invalidRowSamples.map(\.field), ["response", "is_jailbreak_substring_matching", nil])
        XCTAssertEqual(s.labelledCompletions.count, 1)
        // A file named otherwise is refused with the naming rule.
        let odd = try dir.write("odd/completions.json", run([row("P1", "ok.", 0, 0)]))
        XCTAssertEqual(expectDatasetError(try DatasetLoader.load(.refusalDirection, paths: [odd], options: unfiltered))?.kind, .unsupportedFormat)
    }
}
