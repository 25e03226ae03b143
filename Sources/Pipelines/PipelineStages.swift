// The run directory of an alignment pipeline: one directory per stage under `stages/`, each complete
// when its `stage.json` exists (written last, atomically, by rank 0 after a barrier). A stage whose
// record holds the same inputs hash is skipped on rerun and its result reused, so a killed pipeline
// resumes at the stage it was in (and a DPO stage resumes from its own checkpoints).

import Foundation
import Distributed
import Training

/// What a stage cost: wall time and tokens through the models (all ranks).
public struct StageBudget: Codable, Equatable, Sendable {
    public var seconds: Double = 0
    /// Sampled tokens (one decode step each).
    public var generatedTokens: Double = 0
    /// Tokens through forward passes only: prompt prefill, score models, reference and policy log-probs.
    public var forwardTokens: Double = 0
    /// Tokens through forward and backward passes (DPO training).
    public var trainTokens: Double = 0

    public init(seconds: Double = 0, generatedTokens: Double = 0, forwardTokens: Double = 0, trainTokens: Double = 0) {
        self.seconds = seconds; self.generatedTokens = generatedTokens; self.forwardTokens = forwardTokens; self.trainTokens = trainTokens
    }

    public static func + (a: StageBudget, b: StageBudget) -> StageBudget {
        StageBudget(seconds: a.seconds + b.seconds, generatedTokens: a.generatedTokens + b.generatedTokens,
                    forwardTokens: a.forwardTokens + b.forwardTokens, trainTokens: a.trainTokens + b.trainTokens)
    }
}

/// A stage's record on disk (`stages/<name>/stage.json`).
struct StageRecord<Result: Codable>: Codable {
    var stage: String
    var inputs: String
    var budget: StageBudget
    var result: Result
}

/// A pipeline run directory shared by all ranks.
public final class PipelineRun {
    public let directory: URL
    let comm: Communicator
    /// Budget of every stage, in the order they ran (or were reused).
    public private(set) var budgets: [(stage: String, budget: StageBudget)] = []
    private var log: FileHandle?

    public init(directory: URL, communicator: Communicator) throws {
        self.directory = directory
        comm = communicator
        if comm.rank == 0 {
            try FileManager.default.createDirectory(at: directory.appendingPathComponent("stages"), withIntermediateDirectories: true)
            let url = directory.appendingPathComponent("pipeline.jsonl")
            if !FileManager.default.fileExists(atPath: url.path) { FileManager.default.createFile(atPath: url.path, contents: nil) }
            log = try FileHandle(forWritingTo: url)
            log?.seekToEndOfFile()
        }
        try comm.barrier()
    }

    /// The directory of stage `name`.
    public func stageDirectory(_ name: String) -> URL { directory.appendingPathComponent("stages").appendingPathComponent(name) }

    /// Runs stage `name` on every rank, or reuses its recorded result when it completed with the same inputs.
    ///
    /// `body` runs on every rank (it may use collectives) with the stage directory and returns the result and
    /// what it spent; rank 0's result is the one recorded and returned on every rank. An error on rank 0
    /// alone reaches every rank as a `TrainingError`.
    /// - Throws: `RunConfigError` (key outputDir) when the stage completed from different inputs.
    public func stage<Result: Codable>(_ name: String, inputs: String, _ body: (URL) throws -> (Result, StageBudget)) throws -> Result {
        let dir = stageDirectory(name)
        let recordURL = dir.appendingPathComponent("stage.json")
        var existing = ""
        if comm.rank == 0, let data = FileManager.default.contents(atPath: recordURL.path) { existing = String(decoding: data, as: UTF8.self) }
        existing = try comm.broadcastString(existing, root: 0)
        if !existing.isEmpty {
            let record = try JSONDecoder().decode(StageRecord<Result>.self, from: Data(existing.utf8))
            guard record.inputs == inputs else {
                throw RunConfigError(key: "outputDir", message: "stage \(name) in \(directory.path) was computed from other inputs (the config or an earlier stage changed); delete \(dir.path) and the stages after it, or use a new outputDir")
            }
            budgets.append((name, record.budget))
            note("stage \(name): complete, reused (inputs \(inputs))")
            return record.result
        }
        if comm.rank == 0 { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
        try comm.barrier()
        note("stage \(name): running")
        let t0 = Date()
        var payload = ""
        do {
            var (result, budget) = try body(dir)
            budget.seconds = Date().timeIntervalSince(t0)
            if comm.rank == 0 {
                let enc = JSONEncoder()
                enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                payload = String(decoding: try enc.encode(StageRecord(stage: name, inputs: inputs, budget: budget, result: result)), as: UTF8.self)
            }
        } catch let stopped as StageIncomplete {
            throw stopped   // every rank stops alike; nothing is recorded, a rerun continues the stage
        } catch {
            guard comm.size > 1 && comm.rank == 0 else { throw error }
            payload = "ERROR:\(error)"
        }
        let shared = try comm.broadcastString(payload, root: 0)
        if shared.hasPrefix("ERROR:") { throw TrainingError(message: String(shared.dropFirst(6))) }
        let record = try JSONDecoder().decode(StageRecord<Result>.self, from: Data(shared.utf8))
        try comm.barrier()
        if comm.rank == 0 { try Data(shared.utf8).write(to: recordURL, options: .atomic) }
        try comm.barrier()
        budgets.append((name, record.budget))
        note(String(format: "stage %@: done in %.1f s", name, record.budget.seconds))
        return record.result
    }

    /// The total budget of the stages so far.
    public var totalBudget: StageBudget { budgets.reduce(StageBudget()) { $0 + $1.budget } }

    /// Rank 0 appends one JSON object to `pipeline.jsonl` (with the stage name) and prints it.
    public func record(_ stage: String, _ values: [String: Double]) {
        guard comm.rank == 0 else { return }
        var object: [String: Any] = ["stage": stage, "time": ISO8601DateFormatter().string(from: Date())]
        for (k, v) in values { object[k] = v.isFinite ? v : NSNull() }
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            log?.write(data + Data("\n".utf8))
            note("[\(stage)] " + values.keys.sorted().map { "\($0)=\(String(format: "%.4g", values[$0]!))" }.joined(separator: " "))
        }
    }

    /// Rank 0 prints a progress note.
    public func note(_ text: String) {
        if comm.rank == 0 { FileHandle.standardError.write(Data("align: \(text)\n".utf8)) }
    }

    /// Rank 0 writes `align.json`: the method, the models it produced (what `dualign eval --run` reads) and the budget.
    public func writeSummary(method: AlignMethod, models: [ProducedModel], extra: [String: Any] = [:]) throws {
        guard comm.rank == 0 else { return }
        let enc = JSONEncoder()
        let budgetObject = try JSONSerialization.jsonObject(with: enc.encode(totalBudget))
        let stages = try budgets.map { ["stage": $0.stage, "budget": try JSONSerialization.jsonObject(with: enc.encode($0.budget))] as [String: Any] }
        var object: [String: Any] = ["method": method.rawValue, "budget": budgetObject, "stages": stages,
                                     "models": try models.map { try JSONSerialization.jsonObject(with: enc.encode($0)) }]
        for (k, v) in extra { object[k] = v }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        try data.write(to: directory.appendingPathComponent("align.json"), options: .atomic)
        note("summary: \(directory.appendingPathComponent("align.json").path)")
    }
}

/// A model a pipeline produced, as listed in `align.json`.
public struct ProducedModel: Codable, Equatable, Sendable {
    public var name: String
    /// Relative to the run directory.
    public var path: String
    public var lambda: [Double]?
    public var margin: [Double]?
    public var predictedImprovement: [Double]?

    public init(name: String, path: String, lambda: [Double]? = nil, margin: [Double]? = nil, predictedImprovement: [Double]? = nil) {
        self.name = name; self.path = path; self.lambda = lambda; self.margin = margin; self.predictedImprovement = predictedImprovement
    }
}
