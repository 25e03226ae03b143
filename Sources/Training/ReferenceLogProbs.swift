// Reference-model sequence log-probs for DPO: computed once before training, sharded over ranks
// (micro-batches of similar lengths, batch c on rank c mod N), shared with every rank, and cached on disk under the run directory,
// keyed by the reference weights, the tokenized data and the reduction, so restarts reuse them.

import Foundation
import Tensors
import Distributed
import Models

extension Trainer {
    /// A key for the reference cache: a sample of the initial weights, the data's tokens, the reduction.
    func referenceCacheKey() -> String {
        let source = reference ?? policy
        let p = source.parameters.pointer, n = source.layout.count
        var bytes: [UInt8] = Array("\(n) \(config.dpo.reduction.rawValue) \(data.fingerprint) ".utf8)
        var i = 0
        while i < n { withUnsafeBytes(of: p[i].bitPattern) { bytes.append(contentsOf: $0) }; i += 4093 }
        return StableHash.hex(bytes)
    }

    /// Fills `referenceChosen`/`referenceRejected` for train then eval pairs, from the cache or by computing them.
    func computeReferenceLogProbs() throws {
        referenceKey = referenceCacheKey()
        let cacheDir = URL(fileURLWithPath: config.outputDir).appendingPathComponent("cache")
        let file = cacheDir.appendingPathComponent("reference-logps-\(referenceKey).json")
        var cached: String? = nil
        if comm.rank == 0, let data = try? Data(contentsOf: file) { cached = String(decoding: data, as: UTF8.self) }
        let shared = try comm.broadcastString(cached ?? "", root: 0)
        let all = data.train + data.eval
        if !shared.isEmpty, let values = try? JSONDecoder().decode([[Double]].self, from: Data(shared.utf8)), values.count == all.count {
            referenceChosen = values.map { $0[0] }
            referenceRejected = values.map { $0[1] }
            log.note("reference log-probs: reused \(file.lastPathComponent)")
            return
        }
        let t0 = Date()
        let reference: Transformer
        if let given = self.reference { reference = given } else {
            reference = try Transformer(config: policy.config, trainable: false)
            reference.parameters.copy(from: policy.parameters)
        }
        // Pairs sorted longest first (little padding) and cut into micro-batches, batch c on rank c mod N:
        // the rule of Rollout's RankBatches.longestFirst (Training sits below Rollout). Every batch is the
        // same for any number of ranks, so every log-prob is too, to the last bit.
        let lengths = all.map { $0.promptTokens.count + max($0.chosenTokens.count, $0.rejectedTokens.count) }
        let order = all.indices.sorted { (lengths[$0], $1) > (lengths[$1], $0) }
        let size = config.optimizer.microBatchSize
        var local: [[Double]] = []
        for (b, start) in stride(from: 0, to: order.count, by: size).enumerated() where b % comm.size == comm.rank {
            let idx = Array(order[start..<min(start + size, order.count)])
            let batch = PairBatch(idx.map { all[$0] }, padToken: padToken)
            let (c, r) = reference.pairLogProbs(batch, reduction: config.dpo.reduction)
            referenceTokens += Double(batch.tokens)
            for (k, i) in idx.enumerated() { local.append([Double(i), c[k], r[k]]) }
        }
        let gathered = try comm.allGather(Array(try JSONEncoder().encode(local)))
        var spent = [referenceTokens]
        try comm.allReduceSum(&spent)
        referenceTokens = spent[0]
        var chosen = [Double](repeating: .nan, count: all.count), rejected = chosen
        for payload in gathered {
            for row in try JSONDecoder().decode([[Double]].self, from: Data(payload)) {
                chosen[Int(row[0])] = row[1]
                rejected[Int(row[0])] = row[2]
            }
        }
        referenceChosen = chosen
        referenceRejected = rejected
        if comm.rank == 0 {
            try FileManager.default.createDirectory(at: cacheDir, withIntermediateDirectories: true)
            let rows = zip(chosen, rejected).map { [$0, $1] }
            try JSONEncoder().encode(rows).write(to: file, options: .atomic)
            log.note(String(format: "reference log-probs: %d pairs in %.1f s over %d rank(s), cached as %@", all.count,
                            Date().timeIntervalSince(t0), comm.size, file.lastPathComponent))
        }
    }
}
