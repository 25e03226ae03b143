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
    public var referenceKey: String
    public var worldSize: Int
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
    static func rankFile(_ r: Int) -> String { String(format: "rank-%05d.json", r) }

    /// Writes checkpoint `step` (every rank calls this).
    func saveCheckpoint(step: Int) throws {
        let pending = try store.beginCheckpoint(step: step)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        try pending.writeFile(name: Self.rankFile(comm.rank),
                              bytes: try enc.encode(RankState(rank: comm.rank, worldSize: comm.size, rngState: rng.state)))
        if comm.rank == 0 {
            let t0 = Date()
            let tensors: [TensorArchive.Tensor] = policy.layout.views.map {
                (name: $0.name, shape: $0.shape, data: UnsafeBufferPointer(start: policy.parameters.pointer + $0.offset, count: $0.count))
            }
            let meta = ["rope_layout": policy.config.ropeLayout.rawValue, "config": String(decoding: try JSONEncoder().encode(policy.config), as: UTF8.self)]
            let s1 = try pending.writeArchive(name: Self.modelFile, tensors: tensors, metadata: meta,
                                              shuffle: config.checkpoint.byteShuffle, level: config.checkpoint.zstdLevel)
            let n = policy.layout.count
            let moments: [TensorArchive.Tensor] = [(name: "adam.m", shape: [n], data: UnsafeBufferPointer(start: adam.m.pointer, count: n)),
                                                   (name: "adam.v", shape: [n], data: UnsafeBufferPointer(start: adam.v.pointer, count: n))]
            let s2 = try pending.writeArchive(name: Self.optimizerFile, tensors: moments, metadata: [:],
                                              shuffle: config.checkpoint.byteShuffle, level: config.checkpoint.zstdLevel)
            FaultInjection.checkpointWrite(step: step)
            let state = TrainerState(step: step, adamStep: adam.step, cursor: cursor, configHash: config.trainingHash,
                                     referenceKey: referenceKey, worldSize: comm.size)
            try pending.writeFile(name: Self.stateFile, bytes: try enc.encode(state))
            let raw = Double(s1.rawBytes + s2.rawBytes), packed = Double(s1.compressedBytes + s2.compressedBytes)
            lastCheckpointStats = ["checkpoint/ratio": raw / packed, "checkpoint/write_mb_per_s": raw / 1e6 / Date().timeIntervalSince(t0),
                                   "checkpoint/seconds": Date().timeIntervalSince(t0)]
        }
        try comm.barrier()
        if comm.rank == 0 {
            let files = [Self.modelFile, Self.optimizerFile, Self.stateFile] + (0..<comm.size).map(Self.rankFile)
            var fields: [String: ManifestValue] = ["step": .int(Int64(step)), "world_size": .int(Int64(comm.size)),
                                                   "config_hash": .string(config.trainingHash)]
            for (k, v) in checkpointFields { fields[k] = .string(v) }
            let done = try store.finalize(step: step, files: files, fields: fields)
            log.note(String(format: "checkpoint %@: %.0f MB/s, compression %.2fx", done.directory.lastPathComponent,
                            lastCheckpointStats["checkpoint/write_mb_per_s"] ?? 0, lastCheckpointStats["checkpoint/ratio"] ?? 0))
        }
        try comm.barrier()
    }

    /// Restores the newest valid checkpoint, if any; returns its step (0: none).
    func restoreCheckpoint() throws -> Int {
        var stateJSON: String? = nil
        if comm.rank == 0 {
            let selection = try store.latestValidCheckpoint()
            for line in selection.logLines { log.note(line) }
            // Newer, incomplete or corrupt directories are removed so the resumed run rewrites them whole.
            try store.discardCheckpoints(after: selection.checkpoint?.step ?? 0)
            if let cp = selection.checkpoint {
                let state = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: cp.url(for: Self.stateFile)))
                guard state.configHash == config.trainingHash else {
                    throw RunConfigError(key: "outputDir", message: "\(cp.directory.path) was written by a run with a different configuration; use a new outputDir or restore the original config")
                }
                let model = try TensorArchive.read(cp.url(for: Self.modelFile))
                for v in policy.layout.views {
                    try model.copyFloats(v.name, into: UnsafeMutableBufferPointer(start: policy.parameters.pointer + v.offset, count: v.count))
                }
                let opt = try TensorArchive.read(cp.url(for: Self.optimizerFile))
                try opt.copyFloats("adam.m", into: UnsafeMutableBufferPointer(start: adam.m.pointer, count: adam.m.count))
                try opt.copyFloats("adam.v", into: UnsafeMutableBufferPointer(start: adam.v.pointer, count: adam.v.count))
                stateJSON = String(decoding: try Data(contentsOf: cp.url(for: Self.stateFile)), as: UTF8.self)
                log.note("resuming from \(cp.directory.lastPathComponent) (written by \(state.worldSize) rank(s), now \(comm.size))")
            }
        }
        let shared = try comm.broadcastString(stateJSON ?? "", root: 0)
        guard !shared.isEmpty else { return 0 }
        let state = try JSONDecoder().decode(TrainerState.self, from: Data(shared.utf8))
        try comm.broadcast(policy.parameters.pointer, count: policy.layout.count, root: 0)
        try comm.broadcast(adam.m.pointer, count: adam.m.count, root: 0)
        try comm.broadcast(adam.v.pointer, count: adam.v.count, root: 0)
        adam.step = state.adamStep
        cursor = state.cursor
        return state.step
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
