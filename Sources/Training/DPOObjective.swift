// DPO and its family (IPO, hinge, conservative, reference-free) on preference pairs, with the
// reference model's sequence log-probs computed once before training: sharded over ranks (pair i on
// rank i mod N), shared with every rank, and cached under the run directory keyed by the reference
// weights, the tokenized data and the reduction, so restarts reuse them.

import Foundation
import Alignment
import Datasets
import Models
import Tensors

/// The DPO-family loss of each pair against a frozen reference.
public final class DPOObjective: PairObjective {
    /// Reference sequence log-probs of every train pair, then every eval pair.      // (train + eval)
    private(set) var referenceChosen: [Double] = [], referenceRejected: [Double] = []
    /// The cache key of the reference log-probs (checked on resume).
    private(set) var referenceKey = ""
    /// Reference forward tokens spent by `prepare` (0 on a cache hit), over all ranks.
    public private(set) var referenceTokens = 0.0

    public init(config: RunConfig, data: TrainingData, padToken: Int32) {
        super.init(config: config, data: data, padToken: padToken, bothResponses: true)
    }

    public override var evalMetricKeys: Set<String>? { ["rewards/accuracies", "rewards/margins"] }
    public override var preparedKey: String { referenceKey }

    /// Index of an example's reference values.
    private func referenceIndex(_ id: Int, _ split: ExampleSplit) -> Int { split == .train ? id : data.train.count + id }

    public override func evaluate(_ batch: MicroBatch, outputs: ModelOutputs, split: ExampleSplit) throws -> ObjectiveResult {
        let m = batch.examples.count, reduction = config.dpo.reduction
        let (sums, counts) = Self.sequenceSums(outputs, rows: 2 * m, reduction: reduction)
        let free = config.dpo.referenceFree
        let rc = batch.examples.map { free ? 0 : referenceChosen[referenceIndex($0, split)] }
        let rr = batch.examples.map { free ? 0 : referenceRejected[referenceIndex($0, split)] }
        let r = preferenceLoss(policyChosen: Array(sums[0..<m]), policyRejected: Array(sums[m...]),
                               referenceChosen: rc, referenceRejected: rr, config: config.dpo.lossConfig)
        // The result's gradients are of the mean over m pairs: × m gives each pair's own ∂ℓ_i.
        let dRows = (r.dPolicyChosen + r.dPolicyRejected).map { $0 * Double(m) }
        return ObjectiveResult(losses: r.losses, dLogProbs: Self.tokenGradients(dRows, outputs: outputs, counts: counts, reduction: reduction),
                               metrics: r.metrics.mapValues { $0 * Double(m) })
    }

    // MARK: - Reference log-probs

    /// A key for the reference cache: a sample of the reference weights, the data's tokens, the reduction.
    private func cacheKey(_ source: Transformer) -> String {
        let p = source.parameters.pointer, n = source.layout.count
        var bytes: [UInt8] = Array("\(n) \(config.dpo.reduction.rawValue) \(data.fingerprint) ".utf8)
        var i = 0
        while i < n { withUnsafeBytes(of: p[i].bitPattern) { bytes.append(contentsOf: $0) }; i += 4093 }
        return StableHash.hex(bytes)
    }

    /// Fills the reference log-probs of train then eval pairs, from the cache or by computing them with
    /// `context.reference`, or else the policy itself (called before any update, it is the initial model).
    public override func prepare(_ context: ObjectiveContext) throws {
        guard !config.dpo.referenceFree else { return }
        let comm = context.comm
        let reference = context.reference ?? context.policy
        referenceKey = cacheKey(reference)
        let cacheDir = URL(fileURLWithPath: config.outputDir).appendingPathComponent("cache")
        let file = cacheDir.appendingPathComponent("reference-logps-\(referenceKey).json")
        var cached: String? = nil
        if comm.rank == 0, let data = try? Data(contentsOf: file) { cached = String(decoding: data, as: UTF8.self) }
        let shared = try comm.broadcastString(cached ?? "", root: 0)
        let all = data.train + data.eval
        if !shared.isEmpty, let values = try? JSONDecoder().decode([[Double]].self, from: Data(shared.utf8)), values.count == all.count {
            referenceChosen = values.map { $0[0] }
            referenceRejected = values.map { $0[1] }
            context.note("reference log-probs: reused \(file.lastPathComponent)")
            return
        }
        let t0 = Date()
        // Pairs sorted longest first (little padding) and cut into micro-batches, batch c on rank c mod N
        // (RankBatches.longestFirst): every batch is the same for any number of ranks, so every log-prob is too.
        let lengths = all.map { $0.promptTokens.count + max($0.chosenTokens.count, $0.rejectedTokens.count) }
        var local: [[Double]] = []
        var tokens = 0.0
        for idx in RankBatches.longestFirst(lengths: lengths, batchSize: config.optimizer.microBatchSize, rank: comm.rank, size: comm.size) {
            let batch = PairBatch(idx.map { all[$0] }, padToken: padToken)
            let (c, r) = reference.withAdaptersDisabled { reference.pairLogProbs(batch, reduction: config.dpo.reduction) }
            tokens += Double(batch.tokens)
            for (k, i) in idx.enumerated() { local.append([Double(i), c[k], r[k]]) }
        }
        let gathered = try comm.allGather(Array(try JSONEncoder().encode(local)))
        referenceTokens = try comm.allReduceSum(tokens)
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
            try JSONEncoder().encode(zip(chosen, rejected).map { [$0, $1] }).write(to: file, options: .atomic)
            context.note(String(format: "reference log-probs: %d pairs in %.1f s over %d rank(s), cached as %@", all.count,
                                Date().timeIntervalSince(t0), comm.size, file.lastPathComponent))
        }
    }
}
