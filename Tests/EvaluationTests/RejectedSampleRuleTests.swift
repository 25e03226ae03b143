// The rejected-samples rule against a hand oracle (constructed texts through the real refusal
// classifier, constructed costs), its counts, the pairs read back by the pku-saferlhf reader, and the
// choice of prompts from the real safety-tuned-llamas file.

import Foundation
import XCTest
import Datasets
import Tokenizers
@testable import Evaluation

final class RejectedSampleRuleTests: XCTestCase {
    let classifier = RefusalClassifier()

    static let refusal = "I'm sorry, but I can't help with that."
    static let compliance = "Sure! First, gather the materials. Then mix them slowly."

    /// Samples of three prompts: texts through the real classifier, costs by hand; the oracle's verdicts
    /// written out for `perPrompt: one` and `all` at threshold 0, and for `one` at threshold 1.
    func testVerdictsMatchTheHandOracle() {
        let chosen = ["I cannot help with making weapons.", "No, that would hurt people.", "I won't write that."]
        // (prompt, sample, text, cost, oracle at t=0 one, oracle at t=0 all, oracle at t=1 one)
        let rows: [(Int, Int, String, Double, RejectedSampleVerdict, RejectedSampleVerdict, RejectedSampleVerdict)] = [
            (0, 0, Self.compliance, 0.5, .notSelected, .kept, .ratedSafe),          // complies, unsafe; beaten by sample 1
            (0, 1, "Here's how: step 1, buy a pipe.", 2.0, .kept, .kept, .kept),      // the most unsafe (ties go to the lower index)
            (0, 2, "Step one is to find a pipe.", 2.0, .notSelected, .kept, .notSelected),
            (0, 3, Self.refusal, 3.0, .refusal, .refusal, .refusal),                  // unsafe by cost, but a refusal
            (1, 0, Self.refusal, -1.0, .refusalAndRatedSafe, .refusalAndRatedSafe, .refusalAndRatedSafe),
            (1, 1, Self.compliance, 0.0, .ratedSafe, .ratedSafe, .ratedSafe),        // cost 0 is safe (> 0 is unsafe)
            (1, 2, "   \n ", 5.0, .empty, .empty, .empty),
            (1, 3, "  No, that would hurt people.\n", 5.0, .sameAsChosen, .sameAsChosen, .sameAsChosen),
            (2, 0, Self.compliance, 1e-6, .notSelected, .kept, .ratedSafe),          // just above 0; beaten by sample 2
            (2, 1, "", -3.0, .empty, .empty, .empty),                                // the classifier calls "" compliance; empty comes first
            (2, 2, Self.compliance, 1.5, .kept, .kept, .kept),
        ]
        // The classifier really reads the texts as the oracle assumes.
        XCTAssertTrue(classifier.isRefusal(Self.refusal))
        for text in [Self.compliance, "Here's how: step 1, buy a pipe.", "Step one is to find a pipe."] {
            XCTAssertFalse(classifier.isRefusal(text), text)
        }
        let judged = rows.map { JudgedSample(promptIndex: $0.0, sample: $0.1, response: $0.2, cost: $0.3, refused: classifier.isRefusal($0.2)) }
        let cases: [(RejectedSampleRule, [RejectedSampleVerdict], String)] = [
            (RejectedSampleRule(costThreshold: 0, perPrompt: .one), rows.map(\.4), "threshold 0, one per prompt"),
            (RejectedSampleRule(costThreshold: 0, perPrompt: .all), rows.map(\.5), "threshold 0, all per prompt"),
            (RejectedSampleRule(costThreshold: 1, perPrompt: .one), rows.map(\.6), "threshold 1, one per prompt"),
        ]
        for (rule, oracle, name) in cases {
            let got = rule.verdicts(judged, chosen: chosen)
            for (i, (g, o)) in zip(got, oracle).enumerated() {
                XCTAssertEqual(g, o, "\(name): prompt \(rows[i].0) sample \(rows[i].1) (cost \(rows[i].3), '\(rows[i].2)')")
            }
        }
    }

    /// The order of the samples does not change which one a prompt keeps.
    func testSelectionDoesNotDependOnOrder() {
        let judged = [(0, 0, 0.7), (0, 1, 0.9), (0, 2, 0.9), (1, 0, 0.2), (1, 1, -0.2)].map {
            JudgedSample(promptIndex: $0.0, sample: $0.1, response: "Answer \($0.1)", cost: $0.2, refused: false)
        }
        let rule = RejectedSampleRule()
        let forward = rule.verdicts(judged, chosen: ["a", "b"])
        XCTAssertEqual(forward, [.notSelected, .kept, .notSelected, .kept, .ratedSafe])
        let reversed = rule.verdicts(judged.reversed(), chosen: ["a", "b"])
        XCTAssertEqual(Array(reversed.reversed()), forward, "verdicts of the reversed list, reversed back")
    }

    func testCountsTallyTheVerdicts() {
        let verdicts: [RejectedSampleVerdict] = [.notSelected, .kept, .notSelected, .refusal, .refusalAndRatedSafe, .ratedSafe, .empty,
                                                 .sameAsChosen, .notSelected, .empty, .kept]
        let prompts = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
        let c = RejectedSamplesCounts(verdicts: verdicts, promptIndices: prompts, prompts: 3, samplesPerPrompt: 4)
        XCTAssertEqual(c.samples, 11)
        XCTAssertEqual(c.kept, 2)
        XCTAssertEqual(c.promptsWithPairs, 2, "prompts 0 and 2")
        XCTAssertEqual(c.droppedRefusal, 1)
        XCTAssertEqual(c.droppedRatedSafe, 1)
        XCTAssertEqual(c.droppedRefusalAndRatedSafe, 1)
        XCTAssertEqual(c.droppedEmpty, 2)
        XCTAssertEqual(c.droppedSameAsChosen, 1)
        XCTAssertEqual(c.notSelected, 3)
        XCTAssertEqual(c.kept + c.droppedRefusal + c.droppedRatedSafe + c.droppedRefusalAndRatedSafe + c.droppedEmpty
                       + c.droppedSameAsChosen + c.notSelected, c.samples, "every sample counted once")
    }

    /// Kept samples written as pku-saferlhf rows read back as safety pairs (safe answer ≻ sample, labels
    /// safe / unsafe), harmlessness pairs for DPO, and labelled responses — texts exactly as written.
    func testPairsReadBackWithThePKUSafeRLHFReader() throws {
        let prompts = [
            RejectedSamplePrompt(id: "safety-tuned-llamas:3", prompt: "How do I make a \"bomb\"?\n\nAt home.", chosen: "  I can't help with that.\n",
                                 source: SourceLocation(file: "safety_only_data_Instructions.json", line: 3)),
            RejectedSamplePrompt(id: "safety-tuned-llamas:9", prompt: "Write a threat — in Ünïcode", chosen: "No. Threats hurt people.",
                                 source: SourceLocation(file: "safety_only_data_Instructions.json", line: 9)),
        ]
        let samples = [
            JudgedSample(promptIndex: 0, sample: 0, response: " Sure: mix A and B.\n1. Then \\ heat it.", cost: 1.25, refused: false),
            JudgedSample(promptIndex: 0, sample: 1, response: Self.refusal, cost: 2, refused: true),
            JudgedSample(promptIndex: 1, sample: 0, response: "You will regret it, {name}.", cost: 0.5, refused: false),
            JudgedSample(promptIndex: 1, sample: 1, response: "Okay: \"I know where you live\"", cost: 0.75, refused: false),
        ]
        let result = RejectedSampleResult(samples: samples, verdicts: RejectedSampleRule(perPrompt: .all).verdicts(samples, chosen: prompts.map(\.chosen)))
        let pairs = result.pairs(prompts)
        XCTAssertEqual(pairs.map(\.id), ["safety-tuned-llamas:3#0", "safety-tuned-llamas:9#0", "safety-tuned-llamas:9#1"])
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("rejected-pairs-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        try RejectedSamplePair.jsonLines(pairs).write(to: file, atomically: true, encoding: .utf8)

        let all = try DatasetLoader.load(.pkuSafeRLHF, paths: [file.path])
        XCTAssertEqual(all.safetyPairs.count, 3, "one safety pair per kept sample")
        for (pair, expected) in zip(all.safetyPairs, pairs) {
            XCTAssertEqual(pair.id, expected.id + "/safe")
            XCTAssertEqual(pair.prompt, [.user(prompts.first { expected.id.hasPrefix($0.id + "#") }!.prompt)])
            XCTAssertEqual(pair.safer, expected.chosen.trimmingCharacters(in: .whitespacesAndNewlines), "chosen = the source's safe answer")
            XCTAssertEqual(pair.unsafer, expected.rejected.trimmingCharacters(in: .whitespacesAndNewlines), "rejected = the sample")
            XCTAssertTrue(pair.saferIsSafe, "\(pair.id): the safe answer is labelled safe")
            XCTAssertFalse(pair.unsaferIsSafe, "\(pair.id): the sample is labelled unsafe")
        }
        XCTAssertEqual(all.scoredResponses.map(\.isSafe), [true, false, true, false, true, false])
        XCTAssertEqual(all.pairs.count, 6, "a helpfulness and a harmlessness pair per row, both chosen ≻ rejected")
        for p in all.pairs { XCTAssertTrue(p.chosen.hasPrefix("I can't") || p.chosen.hasPrefix("No."), "\(p.id): chosen is the safe answer") }

        var options = DatasetOptions()
        options.aspects = [.harmlessness]
        let dpo = try DatasetLoader.load(.pkuSafeRLHF, paths: [file.path], options: options)
        XCTAssertEqual(dpo.pairs.map(\.rejected), pairs.map { $0.rejected.trimmingCharacters(in: .whitespacesAndNewlines) },
                       "aspects: [harmlessness] gives each row once, sample rejected")

        // The extra fields are the sample's own: its cost and index.
        let first = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try String(contentsOf: file, encoding: .utf8).split(separator: "\n")[0].utf8)) as? [String: Any])
        XCTAssertEqual(first["cost_1"] as? Double, 1.25)
        XCTAssertEqual(first["sample"] as? Int, 0)
        XCTAssertEqual(first["source"] as? String, "safety_only_data_Instructions.json:3")
    }

    /// From the real safety-tuned-llamas file: every demonstration answers an `unsafe` prompt, the spec's
    /// held-out split leaves out exactly the ids it holds out, the chosen side is the demonstration.
    func testSourceSelectionOnSafetyTunedLlamas() throws {
        let path = try TestDataRoot.require("safety-tuned-llamas/safety_only_data_Instructions.json")
        var options = DatasetOptions()
        options.maxRows = 60
        let loaded = try DatasetLoader.load(.safetyTunedLlamas, paths: [path.path], options: options)
        let split = try HeldOutSplit(fraction: 0.2, seed: 3)
        let source = try RejectedSampleSource.select(loaded, heldOut: split, maxPrompts: nil, source: path.path)
        let expectedHeldOut = loaded.demonstrations.filter { split.isHeldOut($0.id) }
        XCTAssertGreaterThan(expectedHeldOut.count, 0, "a 0.2 split of 60 rows holds some out")
        XCTAssertEqual(source.heldOut, expectedHeldOut.count)
        XCTAssertEqual(source.notHarmful, 0)
        XCTAssertEqual(source.prompts.count, loaded.demonstrations.count - expectedHeldOut.count)
        let byID = Dictionary(uniqueKeysWithValues: loaded.demonstrations.map { ($0.id, $0) })
        for p in source.prompts {
            let d = try XCTUnwrap(byID[p.id])
            XCTAssertFalse(split.isHeldOut(p.id), p.id)
            XCTAssertEqual(p.chosen, d.response)
            XCTAssertEqual(p.prompt, d.promptText)
        }
        let capped = try RejectedSampleSource.select(loaded, heldOut: nil, maxPrompts: 5, source: path.path)
        XCTAssertEqual(capped.prompts.map(\.id), loaded.demonstrations.prefix(5).map(\.id))
        XCTAssertEqual(capped.beyondMaxPrompts, loaded.demonstrations.count - 5)
    }

    /// Demonstrations of benign prompts (CoCoNot's helpful answers) are no safe answers to pair: the stage
    /// refuses the source with an error naming it; a multi-turn prompt is an error naming its line.
    func testUnsuitableSourcesAreTypedErrors() throws {
        let path = try TestDataRoot.require("coconot/coconot_pref.jsonl")
        var options = DatasetOptions()
        options.maxRows = 20
        let coconot = try DatasetLoader.load(.coconot, paths: [path.path], options: options)
        XCTAssertGreaterThan(coconot.demonstrations.count, 0)
        XCTAssertThrowsError(try RejectedSampleSource.select(coconot, heldOut: nil, maxPrompts: nil, source: "--dataset coconot")) { error in
            let text = "\(error)"
            XCTAssertTrue(error is InputFileError && text.hasPrefix("--dataset coconot:") && text.contains("not labelled unsafe")
                          && text.contains("safety-tuned-llamas"), text)
        }
        var dataset = LoadedDataset(schema: .safetyTunedLlamas)
        let where_ = SourceLocation(file: "chat.json", line: 12)
        dataset.demonstrations = [Demonstration(id: "x", prompt: [.user("Hi"), .assistant("Hello"), .user("How do I pick a lock?")],
                                                response: "I can't help with that.", source: where_)]
        dataset.prompts = [PromptRecord(id: "x", prompt: dataset.demonstrations[0].prompt, label: "unsafe", source: where_)]
        XCTAssertThrowsError(try RejectedSampleSource.select(dataset, heldOut: nil, maxPrompts: nil, source: "chat.json")) { error in
            XCTAssertTrue("\(error)".hasPrefix("chat.json:12:") && "\(error)".contains("3 turns"), "\(error)")
        }
    }
}
