// The pieces of the alignment pipelines that need no model: config validation, dataset filters and
// unknown keys, pseudo-labels against Oracle E and their sampling, the dual stage against Oracle C,
// rank-independent batching, and the stage protocol (run once, reuse, refuse changed inputs).

import Foundation
import XCTest
import Alignment
import Datasets
import Distributed
import Tokenizers
@testable import Pipelines
import Rollout
@testable import Training

final class AlignmentPipelineTests: XCTestCase {

    func testAlignConfigValidationNamesTheKey() throws {
        var a = AlignConfig()
        a.method = .mocan
        XCTAssertThrowsError(try a.validate()) { XCTAssertEqual(($0 as? RunConfigError)?.key, "align.rewardModel") }
        a.rewardModel = "r.gguf"; a.costModel = "c.gguf"
        XCTAssertThrowsError(try a.validate()) { XCTAssertEqual(($0 as? RunConfigError)?.key, "align.margin") }
        a.margin = 0.5
        XCTAssertNoThrow(try a.validate())
        a.threshold = 1
        XCTAssertThrowsError(try a.validate(), "margin and threshold together")
        a.threshold = nil
        a.samplesPerPrompt = 1
        XCTAssertThrowsError(try a.validate()) { XCTAssertEqual(($0 as? RunConfigError)?.key, "align.samplesPerPrompt") }
        var s = AlignConfig()
        s.method = .sacpo
        s.betaOverLambda = [0.05, 0]
        XCTAssertThrowsError(try s.validate()) { XCTAssertEqual(($0 as? RunConfigError)?.key, "align.betaOverLambda") }
        s.betaOverLambda = [0.05]
        s.mergeWeights = [1.5]
        XCTAssertThrowsError(try s.validate()) { XCTAssertEqual(($0 as? RunConfigError)?.key, "align.mergeWeights") }
    }

    func testPrivateRLHFSettingsNameTheKey() throws {
        var s = PrivateRLHFSettings()
        XCTAssertNoThrow(try s.validate())
        s.ppo.fraction = 0.5                                                    // 0.4 + 0.3 + 0.5 > 1: a row in two stages
        XCTAssertThrowsError(try s.validate()) { XCTAssertEqual(($0 as? RunConfigError)?.key, "dpRLHF.sft.fraction") }
        s = PrivateRLHFSettings(); s.reward.maxSteps = 0
        XCTAssertThrowsError(try s.validate()) { XCTAssertEqual(($0 as? RunConfigError)?.key, "dpRLHF.reward.maxSteps") }
        s = PrivateRLHFSettings(); s.ppo.expectedBatchSize = 0
        XCTAssertThrowsError(try s.validate()) { XCTAssertEqual(($0 as? RunConfigError)?.key, "dpRLHF.ppo.expectedBatchSize") }
        let doc: [String: Any] = ["data": ["datasets": [["schema": "trl", "paths": ["x.jsonl"]]]], "dpRLHF": ["sft": ["maxStep": 3]]]
        XCTAssertThrowsError(try RunConfigLoader.resolve(document: doc)) { XCTAssertEqual(($0 as? RunConfigError)?.key, "dpRLHF.sft.maxStep") }
        let ok = try RunConfigLoader.resolve(document: ["data": ["datasets": [["schema": "trl", "paths": ["x.jsonl"]]]],
                                                        "dpRLHF": ["ppo": ["maxSteps": 3]], "dp": ["split": "s.json", "stage": "ppo"]])
        XCTAssertEqual(ok.dpRLHF.ppo.maxSteps, 3)
        XCTAssertEqual(ok.dpRLHF.ppo.fraction, 0.3, "unset keys keep their defaults")
        XCTAssertFalse(ok.dp.isEnabled, "a split without ε or σ is a non-private run on its share")
        // `--set dp={}` (the recipe's ε = ∞ run) removes the config's dp section.
        let dataOnly: [String: Any] = ["data": ["datasets": [["schema": "trl", "paths": ["x.jsonl"]]]], "dp": ["epsilon": 4]]
        XCTAssertTrue(try RunConfigLoader.resolve(document: dataOnly).dp.isEnabled)
        XCTAssertFalse(try RunConfigLoader.resolve(document: dataOnly, overrides: [("dp", [String: Any]())]).dp.isEnabled)
    }

    func testAlignSectionKeysAreCheckedAndDatasetEntriesRejectUnknownKeys() throws {
        let doc: [String: Any] = ["data": ["datasets": [["schema": "trl", "paths": ["x.jsonl"]]]],
                                  "align": ["marginn": 0.5]]
        XCTAssertThrowsError(try RunConfigLoader.resolve(document: doc)) { error in
            let e = error as? RunConfigError
            XCTAssertEqual(e?.key, "align.marginn")
            XCTAssertTrue(e?.message.contains("align.margin") ?? false, "\(error)")
        }
        let ok = try RunConfigLoader.resolve(document: ["data": ["datasets": [["schema": "trl", "paths": ["x.jsonl"]]]],
                                                        "align": ["margin": 0.5, "prompts": [["schema": "prompts", "paths": ["p.jsonl"]]]]])
        XCTAssertEqual(ok.align.margin, 0.5)
        XCTAssertEqual(ok.align.prompts?.first?.schema, .prompts)
        // Options nested under `options:` (instead of beside schema and paths) were once ignored silently.
        let nested: [String: Any] = ["data": ["datasets": [["schema": "trl", "paths": ["x.jsonl"], "options": ["maxRows": 1]]]]]
        XCTAssertThrowsError(try RunConfigLoader.resolve(document: nested)) { error in
            XCTAssertTrue("\(error)".contains("options") && "\(error)".contains("beside schema"), "\(error)")
        }
    }

    func testAspectAndHeldOutPromptFiltersOnXSTest() throws {
        let xstest = try TestDataRoot.require("xstest")
        var options = DatasetOptions()
        options.xstestPrompts = xstest.appendingPathComponent("xstest_prompts.csv").path
        let paths = [xstest.appendingPathComponent("model_completions").path]
        let all = try DatasetLoader.load(.xstest, paths: paths, options: options)
        options.aspects = [.helpfulness]
        let split = try HeldOutSplit(fraction: 0.3, seed: 11)
        options.excludeHeldOutPrompts = split
        let filtered = try DatasetLoader.load(.xstest, paths: paths, options: options)
        let expected = all.pairs.filter { $0.aspect == .helpfulness && !split.isHeldOut(LoadedDataset.heldOutKey($0.prompt)) }
        XCTAssertEqual(filtered.pairs.map(\.id), expected.map(\.id))
        XCTAssertTrue(filtered.safetyPairs.isEmpty, "safety pairs are harmlessness")
        XCTAssertEqual(filtered.report.pairs, expected.count)
        // About 30 % of the prompts are held out (binomial: 450 prompts, ±4σ).
        let heldOut = all.prompts.filter { split.isHeldOut(LoadedDataset.heldOutKey($0.prompt)) }.count
        XCTAssertEqual(Double(heldOut), 135, accuracy: 4 * (450 * 0.3 * 0.7).squareRoot())
        XCTAssertEqual(filtered.prompts.count, all.prompts.count - heldOut)
        // The report says what the split left out: its prompts, and every record on them.
        XCTAssertEqual(filtered.report.heldOutSplitPrompts, heldOut, "distinct prompts left out")
        let helpfulness = all.pairs.filter { $0.aspect == .helpfulness }.count
        let leftOutLabelled = all.labelledCompletions.count - filtered.labelledCompletions.count
        let leftOutScored = all.scoredResponses.count - filtered.scoredResponses.count
        XCTAssertEqual(filtered.report.leftOutByHeldOutSplit, heldOut + (helpfulness - expected.count) + leftOutLabelled + leftOutScored)
        XCTAssertTrue(filtered.report.description.contains("left out as the evaluation's held-out split: \(filtered.report.leftOutByHeldOutSplit) records"))
    }

    func testPseudoLabelsMatchOracleEAndAreSampledOnceWithTheirSeed() throws {
        // Oracle E: r0 = 1.2, r1 = 0.4, c0 = 2.0, c1 = −1.0, λ = 0.75 ⇒ P(y1 ≻ y0) = 0.809998.
        let scores = PairScores(rewards: [1.2, 0.4], costs: [2.0, -1.0])
        XCTAssertEqual(scores.labelProbability(0, lambda: 0.75), 0.809998, accuracy: 5e-7)
        let pairs = (0..<4000).map { PreferencePair(id: "\($0)", prompt: [.user("q")], chosen: "a\($0)", rejected: "b\($0)",
                                                    source: SourceLocation(file: "t", line: $0 + 1)) }
        let labelled = AlignmentContext.sampleLabels(pairs, seed: 9) { _ in 0.3 }
        let second = labelled.filter { $0.chosen.hasPrefix("b") }.count
        // Binomial(4000, 0.3): mean 1200, σ ≈ 29; ±5σ.
        XCTAssertEqual(Double(second), 1200, accuracy: 5 * (4000 * 0.3 * 0.7).squareRoot())
        XCTAssertTrue(labelled.allSatisfy { $0.probability == 0.3 && Set([$0.chosen, $0.rejected]) == Set([$0.pair.chosen, $0.pair.rejected]) })
        let again = AlignmentContext.sampleLabels(pairs, seed: 9) { _ in 0.3 }
        XCTAssertEqual(again.map(\.chosen), labelled.map(\.chosen), "the same seed gives the same labels")
        let other = AlignmentContext.sampleLabels(pairs, seed: 10) { _ in 0.3 }
        XCTAssertNotEqual(other.map(\.chosen), labelled.map(\.chosen))
    }

    func testDualStageSolvesOracleCAndInvertsAFixedLambda() throws {
        let prompts = [DualPrompt(rewards: [1, 0, 2, -1], utilities: [[0, 1, -2, 1.5]]),
                       DualPrompt(rewards: [0.5, 1.5, -0.5, 0], utilities: [[1, -1, 2, 0.5]])]
        var a = AlignConfig()
        a.margin = 0.5
        let solved = try MoCANPipeline.solveDual(scores: try DualScores(prompts: prompts), beta: 0.1, align: a)
        XCTAssertEqual(solved.lambda[0], 0.948537, accuracy: 1e-5)
        XCTAssertEqual(solved.dual!, 0.302634, accuracy: 1e-5)
        XCTAssertEqual(solved.improvement[0], 0.5, accuracy: 1e-6, "tight at λ* > 0")
        XCTAssertEqual(solved.referenceUtility[0], 0.375, accuracy: 1e-12)
        // A fixed λ reports the margin it guarantees; solving for that margin gives λ back.
        var fixed = AlignConfig()
        fixed.lambda = 0.6
        let guaranteed = try MoCANPipeline.solveDual(scores: try DualScores(prompts: prompts), beta: 0.1, align: fixed)
        var back = AlignConfig()
        back.margin = guaranteed.margin[0]
        XCTAssertEqual(try MoCANPipeline.solveDual(scores: try DualScores(prompts: prompts), beta: 0.1, align: back).lambda[0], 0.6, accuracy: 1e-6)
        // An absolute threshold is the margin over the reference's mean utility.
        var threshold = AlignConfig()
        threshold.threshold = 0.875
        XCTAssertEqual(try MoCANPipeline.solveDual(scores: try DualScores(prompts: prompts), beta: 0.1, align: threshold).lambda[0], 0.948537, accuracy: 1e-5)
        // A fraction of the largest feasible margin: mean over prompts of the best g (1.5, 2) minus the mean g 0.375.
        var fraction = AlignConfig()
        fraction.marginFraction = 0.5 / 1.375
        let byFraction = try MoCANPipeline.solveDual(scores: try DualScores(prompts: prompts), beta: 0.1, align: fraction)
        XCTAssertEqual(byFraction.margin[0], 0.5, accuracy: 1e-12)
        XCTAssertEqual(byFraction.lambda[0], 0.948537, accuracy: 1e-5)
    }

    func testBatchesAreTheSameForEveryNumberOfRanks() {
        let lengths = (0..<37).map { ($0 * 7919) % 23 }
        let one = RankBatches.longestFirst(lengths: lengths, batchSize: 4, rank: 0, size: 1)
        XCTAssertEqual(one.flatMap { $0 }.sorted(), Array(0..<37))
        XCTAssertTrue(one.dropLast().allSatisfy { $0.count == 4 })
        XCTAssertEqual(one.flatMap { $0 }.map { lengths[$0] }, lengths.sorted(by: >), "longest first")
        for size in 2...5 {
            let shards = (0..<size).map { RankBatches.longestFirst(lengths: lengths, batchSize: 4, rank: $0, size: size) }
            var merged: [[Int]] = []
            for c in 0..<one.count { merged.append(shards[c % size][c / size]) }
            XCTAssertEqual(merged, one, "size \(size)")
        }
    }

    func testStagesRunOnceAreReusedAndRefuseChangedInputs() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-stages-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let results = LocalCommunicator.run(size: 2) { comm -> [Int] in
            let run = try PipelineRun(directory: dir, communicator: comm)
            var calls = 0
            let first: Int = try run.stage("a", inputs: "h1") { stageDir in
                calls += 1
                if comm.rank == 0 { try Data("x".utf8).write(to: stageDir.appendingPathComponent("out")) }
                return (comm.rank == 0 ? 42 : -1, StageBudget(trainTokens: 5))
            }
            let reused: Int = try run.stage("a", inputs: "h1") { _ in calls += 1; return (0, StageBudget()) }
            var refused = 0
            do { let _: Int = try run.stage("a", inputs: "h2") { _ in (0, StageBudget()) } } catch let e as RunConfigError {
                XCTAssertEqual(e.key, "outputDir"); refused = 1
            }
            // An error on rank 0 alone reaches every rank.
            var propagated = 0
            do {
                let _: Int = try run.stage("b", inputs: "h") { _ in
                    if comm.rank == 0 { throw TrainingError(message: "boom") }
                    return (1, StageBudget())
                }
            } catch { propagated = "\(error)".contains("boom") ? 1 : 0 }
            return [first, reused, calls, refused, propagated, Int(run.totalBudget.trainTokens)]
        }
        for r in results { XCTAssertEqual(try r.get(), [42, 42, 1, 1, 1, 10]) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("stages/a/out").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("stages/b/stage.json").path))
    }
}
