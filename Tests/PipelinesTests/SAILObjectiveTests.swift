// SAIL's online machinery in process: the queue and buffers step by step, the `sail` config section (errors
// name the key; the authors' epoch rule), SAIL with no route on equal to DPO, and whole runs on a tiny random
// policy with generation rounds — labels consistent with their coins and the labeller's scores, two in-process
// ranks equal to one, a resumed run bit-identical to an uninterrupted one.

import Foundation
import XCTest
import Alignment
import Datasets
import Distributed
import Models
@testable import Pipelines
import Tensors
@testable import Training

final class SAILObjectiveTests: XCTestCase {
    static let modelConfig = ModelConfig(vocabSize: 96, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4,
                                         numKVHeads: 2, maxPositions: 64)
    /// Metrics that measure time and so differ between any two runs.
    static let timingKeys: Set<String> = ["tokens_per_s", "sail/generation/seconds", "sail/label/seconds"]

    var work: URL!
    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-sail-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: work) }

    /// `count` random pairs: prompts of 3–6 tokens, responses of 2–7.
    func pairs(_ count: Int, seed: UInt64) -> [TokenizedPair] {
        var rng = SplitMix64(seed: seed)
        func ids(_ lo: Int, _ hi: Int) -> [Int] { (0..<(lo + Int(rng.uniform(below: UInt64(hi - lo + 1))))).map { _ in 3 + Int(rng.uniform(below: 90)) } }
        return (0..<count).map { TokenizedPair(id: "p\($0)", promptTokens: ids(3, 6), chosenTokens: ids(2, 7), rejectedTokens: ids(2, 7),
                                               source: SourceLocation(file: "memory", line: $0 + 1)) }
    }

    // MARK: - The queue and the buffers

    func testRowsQueueTheirPromptsConsumeBuffersInOrderAndFallBackToDPO() throws {
        let config = SAILConfig(beta: 0.1, dataPolicyProbability: 0.2, policyPolicyProbability: 0.3, policyRewardProbability: 0.3, seed: 9)
        var state = SAILOnlineState()
        let G = 8
        let offline = Array(100..<108)
        let rows = state.routeStep(0, offline: offline, config: config) { [Int32($0)] }
        // Routes are the seeded draws at global rows 0..<8; with empty buffers PP and PR rows train as DPO.
        for (j, row) in rows.enumerated() {
            XCTAssertEqual(row.globalRow, UInt64(j))
            XCTAssertEqual(row.routed, config.route(globalRow: UInt64(j)), "row \(j): the seeded route")
            XCTAssertEqual(row.route, row.routed == .policyPolicy || row.routed == .policyReward ? .dpo : row.routed, "row \(j): empty buffer → DPO")
            XCTAssertNil(row.online)
        }
        let online = rows.filter { $0.routed == .policyPolicy || $0.routed == .policyReward }
        XCTAssertEqual(state.queue.map(\.source), online.map(\.offline), "PP and PR rows queue their dataset prompts in order")
        XCTAssertEqual(state.queue.map(\.prompt), online.map { [Int32($0.offline)] })
        XCTAssertEqual(state.offlineRows, G)
        // The trigger: a route that is on is short and queued + G > generationPrompts.
        XCTAssertEqual(state.shouldGenerate(config: config, globalBatch: G, generationPrompts: state.queue.count + G),
                       false, "queue + G = generationPrompts does not trigger")
        XCTAssertTrue(state.shouldGenerate(config: config, globalBatch: G, generationPrompts: state.queue.count + G - 1))
        let queued = state.queue
        let round = state.takeRound(generationPrompts: 2)
        XCTAssertEqual(round.prompts, Array(queued.prefix(2)), "a round takes the first generationPrompts queued prompts")
        XCTAssertEqual(round.firstIndex, 0)
        XCTAssertTrue(state.queue.isEmpty, "the queue is cleared, as the code clears it")
        XCTAssertEqual(state.generatedPrompts, 2)

        // Refill: each pair `reuse` times, a seeded shuffle, cursors at 0; the same on every call with the same seed.
        func pair(_ route: SAILRoute, _ i: UInt64) -> OnlinePair {
            OnlinePair(route: route, index: i, prompt: [1], chosen: [2], rejected: [3], referenceChosen: -1, referenceRejected: -2, swapped: false)
        }
        let made = (0..<5).map { pair(.policyPolicy, $0) } + (5..<7).map { pair(.policyReward, $0) }
        var copy = state
        state.refill(with: made, reuse: 2, seed: 4)
        copy.refill(with: made, reuse: 2, seed: 4)
        XCTAssertEqual(state, copy, "refilling is deterministic")
        XCTAssertEqual(state.rounds, 1)
        XCTAssertEqual(state.remaining(.policyPolicy), 10)
        XCTAssertEqual(state.remaining(.policyReward), 4)
        XCTAssertEqual(Dictionary(grouping: state.policyPolicy, by: \.index).mapValues(\.count), Dictionary(uniqueKeysWithValues: (0..<5).map { (UInt64($0), 2) }))
        XCTAssertNotEqual(state.policyPolicy.map(\.index), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4], "the buffer is shuffled")

        // The next step consumes in buffer order, route by route.
        let before = state
        let next = state.routeStep(1, offline: offline, config: config) { [Int32($0)] }
        var pp = before.policyPolicy.makeIterator(), pr = before.policyReward.makeIterator()
        for row in next {
            switch row.routed {
            case .policyPolicy: XCTAssertEqual(row.online, pp.next()); XCTAssertEqual(row.route, .policyPolicy)
            case .policyReward:
                let expected = pr.next()
                XCTAssertEqual(row.online, expected)
                XCTAssertEqual(row.route, expected == nil ? .dpo : .policyReward, "PR falls back to DPO once its 4 pairs are used")
            default: XCTAssertNil(row.online)
            }
            XCTAssertEqual(row.globalRow, 8 + UInt64(next.firstIndex(of: row)!))
        }
        XCTAssertEqual(state.offlineRows + state.onlineRows, 2 * G)
        XCTAssertEqual(state.onlineRows, next.filter { $0.online != nil }.count)
    }

    // MARK: - The §4.4 oracles through the objective

    /// algorithms.md §4.4: ℓ_θ(y_w) = −10 (two tokens), ℓ_θ(y_l) = −12 (three), ℓ_ref −11 and −11.5, β = 0.1. The
    /// objective's per-example loss and its gradient on every response token, for each route and both forms.
    func testObjectiveReproducesTheOraclesOnEveryResponseToken() throws {
        var c = runConfig("oracle", routes: [.dp, .pp, .pr], steps: 1)
        (c.sail.r, c.sail.rho, c.sail.p, c.sail.pi, c.sail.g, c.sail.gamma) = (0.2, 0.2, 0.2, 0.2, 0.2, 0.3)
        let batch = TokenBatch(sequences: [[1, 7, 8], [1, 7, 8, 9]])          // prompt [1]; y_w 2 tokens, y_l 3
        let targets = TokenTargets(responsesOf: batch, responseStarts: [1, 1])
        let outputs = ModelOutputs(targets: targets, logProbs: [-4, -6, -4, -4, -4], scores: [])
        let pair = OnlinePair(route: .policyPolicy, index: 0, prompt: [1], chosen: [7, 8], rejected: [7, 8, 9],
                              referenceChosen: -11, referenceRejected: -11.5, swapped: false)
        // (route, form, loss, ∂/∂ each y_w token, ∂/∂ each y_l token) from §4.4.
        let cases: [(SAILRoute, SAILScoreTerm, Double?, Double, Double)] = [
            (.dpo, .codeFaithful, 0.620957, -0.046257, 0.046257),
            (.dataPolicy, .codeFaithful, 0.582398, -0.0405123, 0.0405123),
            (.policyReward, .codeFaithful, 0.620957, -0.046257 - 0.0186287, 0.046257 - 0.0155239),
            (.policyReward, .scoreFunction, 0.620957, -0.046257 + 0.186287, 0.046257 + 0.186287),
            (.policyPolicy, .codeFaithful, nil, -0.0529314, 0.0301630),
        ]
        for (route, form, loss, dW, dL) in cases {
            c.sail.scoreTerm = form
            let objective = try SAILObjective(config: c, data: TrainingData(train: pairs(8, seed: 1), eval: [], report: LoadReport()),
                                              padToken: 0, stopTokens: [], labeller: try model(seed: 1, scoreHead: true))
            // A SAIL-DP row whose coin keeps the pair (u ≥ 1 − σ(0.15) = 0.462570).
            let sail = c.sail.sailConfig(beta: c.dpo.beta, runSeed: c.seed)
            let row = (0..<UInt64(100)).first { !sail.dataPolicyFlip(h: 1.5, globalRow: $0).flipped }!
            objective.rows = [SAILStepRow(globalRow: row, routed: route, route: route, offline: 0, online: pair)]
            let micro = MicroBatch(examples: [0], batch: batch, responseStarts: [1, 1], rowExample: [0, 0])
            let r = try objective.evaluate(micro, outputs: outputs, split: .train)
            if let loss { XCTAssertEqual(r.losses[0], loss, accuracy: 5e-7, "\(route) \(form): loss") }
            for (n, d) in r.dLogProbs.enumerated() {
                XCTAssertEqual(Double(d), n < 2 ? dW : dL, accuracy: 5e-7, "\(route) \(form): ∂ℓ/∂ log p of response token \(n)")
            }
            XCTAssertEqual(r.metrics["sail/routes/\(route.codeName)"], 1)
        }
    }

    // MARK: - The config section

    func testSAILSettingsNameTheKeyAndScaleEpochsAsTheAuthors() throws {
        var c = RunConfig()
        c.data.datasets = [DatasetSpec(schema: .tokens, paths: ["x"])]
        c.sail.routes = [.pr]
        XCTAssertThrowsError(try c.sail.validate(c)) { XCTAssertEqual(($0 as? RunConfigError)?.key, "align.rewardModel") }
        c.sail.labeller = .cost
        XCTAssertThrowsError(try c.sail.validate(c)) { XCTAssertEqual(($0 as? RunConfigError)?.key, "align.costModel") }
        c.align.costModel = "cost.gguf"
        XCTAssertNoThrow(try c.sail.validate(c))
        c.dpo.loss = .ipo
        XCTAssertThrowsError(try c.sail.validate(c)) { XCTAssertEqual(($0 as? RunConfigError)?.key, "dpo.loss") }
        c.dpo.loss = .sigmoid
        c.sail.routes = [.dp, .pp, .pr]
        c.sail.r = 0.5
        XCTAssertThrowsError(try c.sail.validate(c)) { XCTAssertEqual(($0 as? RunConfigError)?.key, "sail.routes", "r + p + g = 1.1") }
        c.sail.r = -0.1
        XCTAssertThrowsError(try c.sail.validate(c)) { XCTAssertEqual(($0 as? RunConfigError)?.key, "sail.r") }
        c.sail.r = 0.4   // r + p + g = 1: no plain DPO row, so the epoch rule is undefined unless maxSteps is given
        XCTAssertThrowsError(try c.sail.validate(c)) { XCTAssertEqual(($0 as? RunConfigError)?.key, "sail.scaleEpochs") }
        c.optimizer.maxSteps = 10
        XCTAssertNoThrow(try c.sail.validate(c))
        c.sail.temperature = 0
        XCTAssertThrowsError(try c.sail.validate(c)) { XCTAssertEqual(($0 as? RunConfigError)?.key, "sail.temperature") }

        // The authors' num_train_epochs /= 1 − r − p − g, when the length is in epochs.
        var d = RunConfig()
        d.data.datasets = [DatasetSpec(schema: .tokens, paths: ["x"])]
        d.optimizer.epochs = 3
        d.sail.routes = [.dp]
        let t = try SAILPipeline.stageConfig(d, directory: work)
        XCTAssertEqual(t.optimizer.epochs, 3 / 0.6, accuracy: 1e-12, "3 epochs ÷ (1 − r), r = 0.4")
        XCTAssertEqual(t.outputDir, work.path)
        d.optimizer.maxSteps = 7
        XCTAssertEqual(try SAILPipeline.stageConfig(d, directory: work).optimizer.epochs, 3, "maxSteps fixes the length")

        // Keys are checked by the loader, with a suggestion; values reach the section.
        let doc: [String: Any] = ["data": ["datasets": [["schema": "trl", "paths": ["x.jsonl"]]]], "sail": ["gama": 0.5]]
        XCTAssertThrowsError(try RunConfigLoader.resolve(document: doc)) { error in
            XCTAssertEqual((error as? RunConfigError)?.key, "sail.gama")
            XCTAssertTrue("\(error)".contains("sail.gamma"), "\(error)")
        }
        let ok = try RunConfigLoader.resolve(document: ["data": ["datasets": [["schema": "trl", "paths": ["x.jsonl"]]]],
                                                        "sail": ["routes": ["pp", "pr"], "scoreTerm": "scoreFunction", "labeller": "cost"]])
        XCTAssertEqual(ok.sail.routes, [.pp, .pr])
        XCTAssertEqual(ok.sail.scoreTerm, .scoreFunction)
        XCTAssertEqual(ok.sail.sailConfig(beta: 0.1, runSeed: 0).policyPolicyProbability, 0.3, "the authors' p when pp is on")
        XCTAssertEqual(ok.sail.sailConfig(beta: 0.1, runSeed: 0).dataPolicyProbability, 0, "dp is off")
        XCTAssertTrue(ok.mathKeys.keys.contains("sail.gamma"), "sail keys change the math: a resume with another value is refused")
    }

    // MARK: - Whole runs on a tiny policy

    func runConfig(_ name: String, routes: [SAILRouteName], steps: Int, stopAfter: Int? = nil) -> RunConfig {
        var c = RunConfig()
        c.task = .dpo
        c.outputDir = work.appendingPathComponent(name).path
        c.seed = 3
        c.data.datasets = [DatasetSpec(schema: .tokens, paths: ["unused"])]
        c.data.maxLength = 24
        c.data.maxPromptLength = 8
        c.optimizer.globalBatchSize = 8
        c.optimizer.microBatchSize = 2
        c.optimizer.maxSteps = steps
        c.optimizer.learningRate = 5e-3
        c.optimizer.schedule = "constant"
        c.checkpoint.every = 1
        c.checkpoint.stopAfterStep = stopAfter
        c.sail.routes = routes
        c.sail.generationPrompts = 6
        c.sail.maxNewTokens = 5
        c.sail.generationBatchSize = 3
        c.align.costModel = "in memory"
        c.sail.labeller = .cost
        return c
    }

    func model(seed: UInt64, scoreHead: Bool = false) throws -> Transformer {
        var mc = Self.modelConfig
        mc.scoreHead = scoreHead
        let m = try Transformer(config: mc, trainable: !scoreHead)
        m.initializeRandomly(seed: seed, std: 0.1)
        return m
    }

    /// Runs SAIL on `comm`; returns the objective (its final state) after the run.
    func train(_ c: RunConfig, comm: Communicator) throws -> SAILObjective {
        let data = TrainingData(train: pairs(24, seed: 11), eval: pairs(4, seed: 12), report: LoadReport())
        let labeller = c.sail.routes.contains(.pr) ? try model(seed: 21, scoreHead: true) : nil
        let objective = try SAILObjective(config: c, data: data, padToken: 0, stopTokens: [2, 5], labeller: labeller, labellerKey: "test")
        let loaded = LoadedModel(model: try model(seed: 5), tokenizer: nil, gguf: nil, source: work)
        _ = try Trainer(config: c, communicator: comm, model: loaded, objective: objective).run()
        return objective
    }

    func metrics(_ name: String) throws -> [[String: Double]] {
        let text = try String(contentsOf: work.appendingPathComponent("\(name)/metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            .map { $0.compactMapValues { $0 as? Double } }.filter { $0["loss"] != nil }
    }

    func assertSameMetrics(_ a: [[String: Double]], _ b: [[String: Double]], tolerance: Double?, _ what: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(what): metric lines", file: file, line: line)
        for (x, y) in zip(a, b) {
            for k in Set(x.keys).union(y.keys).subtracting(Self.timingKeys).sorted() {
                guard let u = x[k], let v = y[k] else { XCTFail("\(what): step \(x["step"] ?? -1) lacks \(k)", file: file, line: line); continue }
                if let tolerance {
                    if k.contains("accuracies") { continue }
                    XCTAssertLessThanOrEqual(abs(u - v), tolerance * max(1, abs(v)), "\(what): step \(x["step"]!) \(k): \(u) vs \(v)", file: file, line: line)
                } else {
                    XCTAssertEqual(u.bitPattern, v.bitPattern, "\(what): step \(x["step"]!) \(k): \(u) vs \(v) (bit-identical expected)", file: file, line: line)
                }
            }
        }
    }

    func testRoundsLabelByCoinAndLabellerAndTwoRanksMatchOne() throws {
        let c = runConfig("one", routes: [.dp, .pp, .pr], steps: 8)
        let one = try train(c, comm: LocalCommunicator.group(size: 1)[0])
        let m = try metrics("one")
        XCTAssertGreaterThanOrEqual(one.state.rounds, 2, "rounds ran (queue of 6 prompts, ~4.8 PP/PR rows per step)")
        XCTAssertGreaterThan(m.last!["sail/seen/online"] ?? 0, 0, "online pairs were trained on")
        XCTAssertEqual((m.last!["sail/seen/online"] ?? 0) + (m.last!["sail/seen/offline"] ?? 0), 64, "every row is counted once")
        XCTAssertEqual(m.compactMap { $0["sail/generation/rounds"] }.last, Double(one.state.rounds))
        let roundSteps = m.filter { ($0["sail/generation/tokens"] ?? 0) > 0 }
        XCTAssertEqual(roundSteps.count, one.state.rounds, "one step per round reports its sampled tokens")
        for s in roundSteps {
            XCTAssertNotNil(s["sail/dpp/first_probability"] ?? s["sail/dpr/chosen_score"], "a round reports its label statistics")
            XCTAssertLessThanOrEqual(s["sail/generation/mean_length"]!, 5, "responses respect maxNewTokens")
        }
        // Labels: PP pairs follow their seeded coin; PR pairs put the lower cost first (reversed labeller).
        let sail = c.sail.sailConfig(beta: c.dpo.beta, runSeed: c.seed)
        let labeller = try model(seed: 21, scoreHead: true)
        let buffered = one.state.policyPolicy + one.state.policyReward
        XCTAssertFalse(buffered.isEmpty)
        for p in buffered {
            XCTAssertFalse(p.chosen.isEmpty || p.rejected.isEmpty)
            XCTAssertLessThanOrEqual(p.chosen.count, 5)
            if p.route == .policyPolicy {
                let u = SAILDraw.policyLabel.uniform(seed: sail.seed, index: p.index)
                XCTAssertEqual(p.swapped, u < 1 - p.firstProbability!, "pair \(p.index): the PP label is its coin")
            } else {
                labeller.forward(TokenBatch(sequences: [p.prompt + p.chosen, p.prompt + p.rejected]))
                let s = labeller.scores().map(Double.init)
                XCTAssertEqual(s[0], p.chosenScore!, accuracy: 1e-5, "pair \(p.index): chosen score")
                XCTAssertEqual(s[1], p.rejectedScore!, accuracy: 1e-5, "pair \(p.index): rejected score")
                XCTAssertLessThanOrEqual(p.chosenScore!, p.rejectedScore!, "pair \(p.index): the cost labeller prefers the lower cost")
            }
        }

        // Two in-process ranks: the same rounds, samples and steps.
        let c2 = runConfig("two", routes: [.dp, .pp, .pr], steps: 8)
        let results = LocalCommunicator.run(size: 2) { comm in try self.train(c2, comm: comm) }
        let two = try results[0].get()
        _ = try results[1].get()
        assertSameMetrics(try metrics("two"), m, tolerance: 1e-5, "2 ranks vs 1")
        XCTAssertEqual(two.state.rounds, one.state.rounds)
        XCTAssertEqual(two.state.policyPolicy.map(\.chosen), one.state.policyPolicy.map(\.chosen), "the same samples on 2 ranks")
        XCTAssertEqual(two.state.policyReward.map(\.rejected), one.state.policyReward.map(\.rejected))
    }

    func testResumeIsBitIdenticalAndRestoresTheBuffers() throws {
        let full = try train(runConfig("full", routes: [.pp, .pr], steps: 7), comm: LocalCommunicator.group(size: 1)[0])
        let c = runConfig("resumed", routes: [.pp, .pr], steps: 7, stopAfter: 4)
        _ = try train(c, comm: LocalCommunicator.group(size: 1)[0])
        XCTAssertEqual(try metrics("resumed").count, 4, "the first run stops after step 4")
        let resumed = try train(c, comm: LocalCommunicator.group(size: 1)[0])
        assertSameMetrics(try metrics("resumed"), try metrics("full"), tolerance: nil, "resumed vs uninterrupted")
        XCTAssertEqual(resumed.state, full.state, "the same queue, buffers and cursors at the end")
        XCTAssertGreaterThan(full.state.rounds, 1)
    }

    /// With no route on, SAIL's loop is DPO's: the same losses, norms and margins.
    func testNoRouteIsDPO() throws {
        let data = TrainingData(train: pairs(24, seed: 11), eval: pairs(4, seed: 12), report: LoadReport())
        var c = runConfig("dpo", routes: [], steps: 3)
        let dpo = DPOObjective(config: c, data: data, padToken: 0)
        _ = try Trainer(config: c, communicator: LocalCommunicator.group(size: 1)[0],
                        model: LoadedModel(model: try model(seed: 5), tokenizer: nil, gguf: nil, source: work), objective: dpo).run()
        c.outputDir = work.appendingPathComponent("sail-none").path
        _ = try train(c, comm: LocalCommunicator.group(size: 1)[0])
        let a = try metrics("dpo"), b = try metrics("sail-none")
        XCTAssertEqual(a.count, 3)
        for (x, y) in zip(a, b) {
            for k in ["loss", "grad_norm", "rewards/margins", "rewards/chosen", "logps/rejected"] {
                XCTAssertEqual(y[k] ?? .nan, x[k] ?? .nan, accuracy: 1e-9 * max(1, abs(x[k] ?? 0)), "step \(x["step"]!) \(k): SAIL without routes vs DPO")
            }
            XCTAssertEqual(y["sail/routes/dpo"], 1)
        }
    }
}
