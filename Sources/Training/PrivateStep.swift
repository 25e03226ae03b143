// The DP-SGD step of the training loop (Abadi et al. 2016 as Opacus runs it over DDP; docs/privacy.md):
//
// 1. Poisson sampling: each rank keeps each example of its shard (i ≡ rank mod W) with probability q, so the
//    logical batch, the union over ranks, is a Poisson sample of all N with the accountant's q. It may be
//    empty; a rank's part is cut into physical batches of at most `dp.physicalBatchSize` examples.
// 2. Per physical batch: forward, the objective's per-example losses, and Σ_i c_i ∇ℓ_i with
//    c_i = min(1, C/(‖∇ℓ_i‖ + 1e-6)) into the gradient slab (ClippedGradientSum).
// 3. Rank 0 adds N(0, σ²C²) to its sum, once per step (also when the batch is empty); one all-reduce.
// 4. Divide by the expected batch size q·N (not the realised one), optionally clip the global norm
//    (post-processing), and let AdamW step. The accountant records the step.

import Foundation
import Privacy
import Tensors

extension Trainer {
    /// Computes step `step`'s private gradient into the trainable slab on every rank:
    /// (Σ_{i ∈ batch} c_i ∇ℓ_i + N(0, σ²C²)) / (q·N). Returns the step's metrics (the objective's means over
    /// the realised batch, no `loss` when it is empty, `tokens`, the `dp/` values and what the objective's
    /// `endStep` adds) and whether the update applies (an objective under dp must not skip on private data).
    func privateGradient(_ dp: PrivateTraining, step: Int, seed: UInt64) throws -> (metrics: [String: Double], applies: Bool) {
        let local = try dp.localSample(step: step, rank: comm.rank, worldSize: comm.size)
        // Every rank learns the whole logical batch (ids are public to the ranks; the objective's plan lists them).
        let global = try comm.allGather(local.flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) })
            .flatMap { bytes in stride(from: 0, to: bytes.count, by: 8).map { o in
                Int(Int64(littleEndian: bytes[o..<(o + 8)].withUnsafeBytes { $0.loadUnaligned(as: Int64.self) })) } }
            .sorted()
        let physical = try PoissonSampler.physicalBatches(local, maxSize: dp.plan.physicalBatchSize).map(Array.init)
        var plan = StepPlan(step: step, seed: seed, global: global, microBatches: physical)
        try objective.beginStep(&plan, context: context)
        policy.zeroGradients()
        var sums: [String: Double] = [:]
        let C = dp.plan.clip
        for ids in plan.microBatches where !ids.isEmpty {
            var clipped = 0
            let m = try forwardMicroBatch(ids, split: .train, seed: plan.seed, training: true) { batch, result in
                let norms = dp.clipper.accumulate(batch, dLogProbs: result.dLogProbs.isEmpty ? nil : result.dLogProbs,
                                                  dScores: result.dScores.isEmpty ? nil : result.dScores,
                                                  dValues: result.dValues.isEmpty ? nil : result.dValues)
                clipped = norms.filter { PerExampleClipping.clipFactor(norm: $0, maxNorm: C) < 1 }.count
            }
            for (k, v) in m { sums[k, default: 0] += v }
            sums["dp/clipped", default: 0] += Double(clipped)
        }
        let gradients = trainable.gradients.pointer, P = trainable.count
        if comm.rank == 0 { dp.addNoise(to: gradients, count: P, rank: comm.rank) }
        try comm.allReduceSum(gradients, count: P)
        let scale = Float(1 / dp.plan.expectedBatchSize)
        for i in 0..<P { gradients[i] *= scale }
        try dp.recordStep()

        let reduced = try reduceMetrics(sums)
        let count = reduced["count"] ?? 0
        var metrics = Self.means(reduced, count: count)
        metrics["dp/clip_fraction"] = metrics.removeValue(forKey: "dp/clipped") ?? 0
        metrics["dp/batch_size"] = count
        metrics["dp/epsilon"] = try dp.spentEpsilon()
        metrics["dp/noise_multiplier"] = dp.plan.noiseMultiplier
        metrics["dp/sample_rate"] = dp.plan.sampleRate
        metrics["dp/delta"] = dp.plan.delta
        metrics["dp/private"] = dp.isPrivate ? 1 : 0
        if metrics["tokens"] == nil { metrics["tokens"] = 0 }
        let applies = try objective.endStep(plan, metrics: &metrics, context: context)
        return (metrics, applies)
    }

    /// Rank 0's run-log lines about a private run.
    func notePrivacy(_ dp: PrivateTraining) {
        log.note(dp.plan.summary)
        log.note(dp.isPrivate ? "dp: noise and sampling from the OS CSPRNG (secure)"
                              : "dp: WARNING: seeded noise and sampling — the trained weights are NOT differentially private (tests and exact resume only)")
    }
}
