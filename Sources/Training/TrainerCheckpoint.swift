// Saving and restoring a run through the checkpoint protocol: rank 0 writes the weights and the
// optimizer moments (zstd-compressed safetensors), every rank its own small state, then a barrier,
// then rank 0 writes the manifest and DONE. Restoring: rank 0 picks the newest valid checkpoint
// (falling back past corrupt ones), reads it and broadcasts the slabs.

import Foundation
import Checkpoints
import Datasets
import Distributed
import Tensors

/// The small state a checkpoint records beside the tensors.
public struct TrainerState: Codable, Equatable, Sendable {
    public var step: Int
    public var adamStep: Int
    public var cursor: DataCursor
    public var configHash: String
    /// What the objective prepared from (DPO: the reference log-probs' key); checked on resume.
    public var referenceKey: String
    public var worldSize: Int
    /// The step generator's state after this step (nil in checkpoints of older builds).
    public var rngState: UInt64?
    /// The config keys that fix the math of the steps taken (`RunConfig.mathKeys`); nil in older checkpoints.
    public var mathKeys: [String: String]?
    /// The identity of the frozen base weights when only adapters are trained (nil: full fine-tuning).
    public var baseModel: String?
    /// A private run's accountant history, σ, q, δ and noise state (nil: not private).
    public var privacy: PrivacyCheckpointState?
}

/// One rank's own state (the random generators of its stochastic parts).
public struct RankState: Codable, Equatable, Sendable {
    public var rank: Int
    public var worldSize: Int
    public var rngState: UInt64
}

extension Trainer {
    static let modelFile = "model.safetensors.zst"
    static let optimizerFile = "optimizer.safetensors.zst"
    static let stateFile = "trainer.json"
    static let objectiveFile = "objective.bin"
    static func rankFile(_ r: Int) -> String { String(format: "rank-%05d.json", r) }

    /// Writes checkpoint `step` (every rank calls this).
    func saveCheckpoint(step: Int) throws {
        let pending = try store.beginCheckpoint(step: step)
        var wroteObjectiveState = false
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        try pending.writeFile(name: Self.rankFile(comm.rank),
                              bytes: try enc.encode(RankState(rank: comm.rank, worldSize: comm.size, rngState: rng.state)))
        if comm.rank == 0 {
            let t0 = Date()
            let slab = trainable
            let tensors: [TensorArchive.Tensor] = slab.views.map {
                (name: $0.name, shape: $0.shape, data: UnsafeBufferPointer(start: slab.values.pointer + $0.offset, count: $0.count))
            }
            let meta = ["rope_layout": policy.config.ropeLayout.rawValue, "config": String(decoding: try JSONEncoder().encode(policy.config), as: UTF8.self)]
            let s1 = try pending.writeArchive(name: Self.modelFile, tensors: tensors, metadata: meta,
                                              shuffle: config.checkpoint.byteShuffle, level: config.checkpoint.zstdLevel)
            let n = slab.count
            let moments: [TensorArchive.Tensor] = [(name: "adam.m", shape: [n], data: UnsafeBufferPointer(start: adam.m.pointer, count: n)),
                                                   (name: "adam.v", shape: [n], data: UnsafeBufferPointer(start: adam.v.pointer, count: n))]
            let s2 = try pending.writeArchive(name: Self.optimizerFile, tensors: moments, metadata: [:],
                                              shuffle: config.checkpoint.byteShuffle, level: config.checkpoint.zstdLevel)
            FaultInjection.checkpointWrite(step: step)
            let state = TrainerState(step: step, adamStep: adam.step, cursor: cursor, configHash: config.trainingHash,
                                     referenceKey: objective.preparedKey, worldSize: comm.size, rngState: rng.state,
                                     mathKeys: config.mathKeys, baseModel: policy.baseIdentity, privacy: try privacy?.checkpointState())
            if let extra = try objective.checkpointState() {
                try pending.writeFile(name: Self.objectiveFile, bytes: extra)
                wroteObjectiveState = true
            }
            try pending.writeFile(name: Self.stateFile, bytes: try enc.encode(state))
            let raw = Double(s1.rawBytes + s2.rawBytes), packed = Double(s1.compressedBytes + s2.compressedBytes)
            lastCheckpointStats = ["checkpoint/ratio": raw / packed, "checkpoint/write_mb_per_s": raw / 1e6 / Date().timeIntervalSince(t0),
                                   "checkpoint/seconds": Date().timeIntervalSince(t0)]
        }
        try comm.barrier()
        if comm.rank == 0 {
            var files = [Self.modelFile, Self.optimizerFile, Self.stateFile] + (0..<comm.size).map(Self.rankFile)
            if wroteObjectiveState { files.append(Self.objectiveFile) }
            var fields: [String: ManifestValue] = ["step": .int(Int64(step)), "world_size": .int(Int64(comm.size)),
                                                   "config_hash": .string(config.trainingHash)]
            for (k, v) in checkpointFields { fields[k] = .string(v) }
            if let privacy {
                fields["dp_noise"] = .string(privacy.isPrivate ? "secure" : "seeded (NOT PRIVATE)")
                fields["dp_epsilon"] = .string(String(format: "%.6g", try privacy.spentEpsilon()))
            }
            let done = try store.finalize(step: step, files: files, fields: fields)
            log.note(String(format: "checkpoint %@: %.0f MB/s, compression %.2fx", done.directory.lastPathComponent,
                            lastCheckpointStats["checkpoint/write_mb_per_s"] ?? 0, lastCheckpointStats["checkpoint/ratio"] ?? 0))
        }
        try comm.barrier()
    }

    /// Restores the newest valid checkpoint, if any; returns its step (0: none).
    func restoreCheckpoint() throws -> Int {
        var stateJSON: String? = nil
        var objectiveState: [UInt8] = []
        if comm.rank == 0 {
            let selection = try store.latestValidCheckpoint()
            for line in selection.logLines { log.note(line) }
            // Newer, incomplete or corrupt directories are removed so the resumed run rewrites them whole.
            try store.discardCheckpoints(after: selection.checkpoint?.step ?? 0)
            if let cp = selection.checkpoint {
                let state = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: cp.url(for: Self.stateFile)))
                try checkResumable(state, directory: cp.directory)
                let model = try TensorArchive.read(cp.url(for: Self.modelFile))
                let slab = trainable
                for v in slab.views {
                    try model.copyFloats(v.name, into: UnsafeMutableBufferPointer(start: slab.values.pointer + v.offset, count: v.count))
                }
                let opt = try TensorArchive.read(cp.url(for: Self.optimizerFile))
                try opt.copyFloats("adam.m", into: UnsafeMutableBufferPointer(start: adam.m.pointer, count: adam.m.count))
                try opt.copyFloats("adam.v", into: UnsafeMutableBufferPointer(start: adam.v.pointer, count: adam.v.count))
                stateJSON = String(decoding: try Data(contentsOf: cp.url(for: Self.stateFile)), as: UTF8.self)
                objectiveState = FileManager.default.contents(atPath: cp.url(for: Self.objectiveFile).path).map { [UInt8]($0) } ?? []
                log.note("resuming from \(cp.directory.lastPathComponent) (written by \(state.worldSize) rank(s), now \(comm.size))")
            }
        }
        let shared = try comm.broadcastString(stateJSON ?? "", root: 0)
        guard !shared.isEmpty else { return 0 }
        let state = try JSONDecoder().decode(TrainerState.self, from: Data(shared.utf8))
        let slab = trainable
        try comm.broadcast(slab.values.pointer, count: slab.count, root: 0)
        try comm.broadcast(adam.m.pointer, count: adam.m.count, root: 0)
        try comm.broadcast(adam.v.pointer, count: adam.v.count, root: 0)
        adam.step = state.adamStep
        cursor = state.cursor
        switch (privacy, state.privacy) {
        case (let dp?, let saved?):
            try dp.restore(saved, completedSteps: state.step)
            log.note(String(format: "dp: restored the privacy history: ε = %.4g after %d steps; the whole run will spend ε = %.4g", saved.epsilon,
                            state.step, dp.plan.plannedEpsilon))
        case (nil, nil): break
        case (.some, nil):
            throw RunConfigError(key: "dp", message: "\(config.outputDir) holds a run trained without dp; its steps were not private — use a new outputDir")
        case (nil, .some):
            throw RunConfigError(key: "dp", message: "\(config.outputDir) holds a private run; resume it with its dp section, or use a new outputDir")
        }
        if let r = state.rngState { rng.state = r }
        var extra = objectiveState
        try comm.broadcast(&extra, root: 0)
        if !extra.isEmpty { try objective.restore(checkpointState: Data(extra)) }
        return state.step
    }

    /// Refuses a checkpoint whose steps were taken with other math: a changed key (named), another
    /// reference or data, or another base model under the adapters. Budget keys (maxSteps, checkpoint and
    /// evaluation frequency, outputs) may change: the run continues.
    func checkResumable(_ state: TrainerState, directory: URL) throws {
        if let saved = state.mathKeys {
            let changed = config.changedMathKeys(since: saved)
            if let first = changed.first {
                let list = changed.prefix(6).map { "\($0) (\(saved[$0] ?? "unset") → \(config.mathKeys[$0] ?? "unset"))" }.joined(separator: ", ")
                throw RunConfigError(key: first, message: "\(directory.path) was trained with other values of \(list); these change the steps already taken — restore them, or use a new outputDir")
            }
        } else if state.configHash != config.trainingHash {
            throw RunConfigError(key: "outputDir", message: "\(directory.path) was written by a run with a different configuration; use a new outputDir or restore the original config")
        }
        if !state.referenceKey.isEmpty && state.referenceKey != objective.preparedKey {
            throw RunConfigError(key: "model", message: "\(directory.path) was trained against another reference model or data (key \(state.referenceKey), now \(objective.preparedKey)); restore the original model and data, or use a new outputDir")
        }
        if state.baseModel != policy.baseIdentity {
            throw RunConfigError(key: "model", message: "\(directory.path) holds adapters for base model \(state.baseModel ?? "none (full fine-tuning)"), but this run's base is \(policy.baseIdentity ?? "none (full fine-tuning)"); use the original model, or a new outputDir")
        }
    }
}

/// Deliberate crashes for tests of interrupted runs: `DUALIGN_FAULT=checkpoint-write:STEP` kills rank 0
/// (SIGKILL) in the middle of writing checkpoint STEP, after its weights and before its manifest.
enum FaultInjection {
    static func checkpointWrite(step: Int) {
        guard let spec = ProcessInfo.processInfo.environment["DUALIGN_FAULT"], spec == "checkpoint-write:\(step)" else { return }
        FileHandle.standardError.write(Data("dualign: DUALIGN_FAULT: killing rank 0 while writing checkpoint \(step)\n".utf8))
        kill(getpid(), SIGKILL)
    }
}
