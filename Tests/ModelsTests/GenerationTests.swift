// KV-cache decoding equals the full forward pass; batching and sharding do not change samples.

import XCTest
import Models
import Tensors
import TestSupport

final class GenerationTests: MatmulTestCase {
    func twinModel(_ variant: String = "llama_untied_interleaved") throws -> Transformer {
        try TwinFixture(variant).model()
    }

    /// Logits of a prefill followed by single-token steps match the full (training) forward at every position.
    func testIncrementalDecodingMatchesFullForward() throws {
        for variant in ["llama_tied_halfsplit", "llama_untied_interleaved"] {
            let model = try twinModel(variant)
            let seqs: [[Int32]] = [[5, 17, 200, 33, 9, 41, 7, 100, 3], [250, 4, 4, 18]]
            let batch = TokenBatch(sequences: seqs)
            model.forward(batch)
            var all = TokenTargets()
            all.positions = Array(0..<(batch.batchSize * batch.length))
            all.targets = [Int32](repeating: 0, count: all.positions.count)
            all.sequence = all.positions.map { $0 / batch.length }
            _ = model.logProbs(all)
            let full = Array(model.lastLogits), V = model.config.vocabSize, T = batch.length
            let cache = KVCache(config: model.config, sequences: 2, capacity: 16)
            // Prefill 3 and 2 tokens, then one token at a time (sequence 1 finishes first).
            var fed = [3, 2]
            var logits = model.decodeStep(cache, newTokens: [Array(seqs[0][0..<3]), Array(seqs[1][0..<2])])
            while true {
                for s in 0..<2 where logits[s] != nil {
                    let p = fed[s] - 1
                    assertTensorClose(logits[s]!, Array(full[(s * T + p) * V..<(s * T + p + 1) * V]),
                                      "\(variant) sequence \(s) logits at position \(p)", relativeTolerance: 1e-5)
                }
                let next = (0..<2).map { s in fed[s] < seqs[s].count ? [seqs[s][fed[s]]] : [] }
                if next.allSatisfy(\.isEmpty) { break }
                for s in 0..<2 where !next[s].isEmpty { fed[s] += 1 }
                logits = model.decodeStep(cache, newTokens: next)
            }
            XCTAssertEqual(cache.lengths, [9, 4])
        }
    }

    /// A prompt's samples do not depend on the other prompts in its batch (per-prompt generators).
    func testBatchedGenerationEqualsOneByOne() throws {
        let model = try twinModel()
        let prompts: [[Int32]] = [[5, 6, 7], [100], [9, 9, 9, 9, 9, 12]]
        let options = SamplingOptions(temperature: 0.9, topK: 50, topP: 0.95, maxNewTokens: 6, seed: 42)
        let batched = model.generate(prompts: prompts, options: options, stopTokens: [])
        for (i, p) in prompts.enumerated() {
            let alone = model.generate(prompts: [p], options: options, stopTokens: [], sampleIDs: [UInt64(i)])[0]
            XCTAssertEqual(alone.tokens, batched[i].tokens, "prompt \(i) alone vs in a batch")
            assertTensorClose(alone.logProbs, batched[i].logProbs, "prompt \(i) log-probs", relativeTolerance: 1e-5)
        }
        XCTAssertTrue(batched.allSatisfy { $0.tokens.count == 6 && !$0.stopped })
    }

    /// The same prompt gives the same sample alone and inside a batch of 16 prompts of different lengths
    /// (one row per step alone, matrix-vector kernel; 16 rows in the batch, Matmul), whatever the batch's
    /// other sequences do (some stop early, which shrinks the batch step by step).
    func testSamplesDoNotDependOnTheBatch() throws {
        let model = try twinModel()
        var rng = SplitMix64(seed: 5)
        let V = UInt64(model.config.vocabSize)
        let prompts: [[Int32]] = (0..<16).map { i in (0..<(1 + (i * 7) % 23)).map { _ in Int32(rng.uniform(below: V)) } }
        let options = SamplingOptions(temperature: 1, topP: 0.95, maxNewTokens: 12, seed: 3)
        let stop: Set<Int32> = [7, 11, 42]
        let batched = model.generate(prompts: prompts, options: options, stopTokens: stop, sampleIDs: (0..<16).map { UInt64(100 + $0) })
        XCTAssertTrue(batched.contains { $0.stopped } && batched.contains { !$0.stopped },
                      "the batch should mix stopped and full-length sequences to exercise a shrinking batch")
        for i in [0, 5, 9, 15] {
            let alone = model.generate(prompts: [prompts[i]], options: options, stopTokens: stop, sampleIDs: [UInt64(100 + i)])[0]
            XCTAssertEqual(alone.tokens, batched[i].tokens, "prompt \(i) (\(prompts[i].count) tokens) alone vs in a batch of 16")
            XCTAssertEqual(alone.stopped, batched[i].stopped, "prompt \(i) stop flag")
            assertTensorClose(alone.logProbs, batched[i].logProbs, "prompt \(i) log-probs alone vs batched", relativeTolerance: 1e-5)
        }
    }

    /// `generate` equals a plain loop of one-step `decodeStep` calls and the naive sampler: shared prefill
    /// of repeated prompts, the reused workspace, the per-thread samplers and stop handling change nothing.
    func testGenerateEqualsStepByStepLoopWithNaiveSampler() throws {
        let model = try twinModel("llama_tied_halfsplit")
        let prompts: [[Int32]] = [[5, 6, 7], [9, 9, 12, 40], [5, 6, 7], [100], [5, 6, 7], [9, 9, 12, 40]]
        for options in [SamplingOptions(temperature: 0.8, topK: 20, maxNewTokens: 9, seed: 11),
                        SamplingOptions(temperature: 1, maxNewTokens: 9, seed: 12),
                        SamplingOptions(greedy: true, maxNewTokens: 9)] {
            let stop: Set<Int32> = [3, 8]
            let ids: [UInt64] = [4, 8, 15, 16, 23, 42]
            let fast = model.generate(prompts: prompts, options: options, stopTokens: stop, sampleIDs: ids)
            // The reference loop: every prompt prefilled, one token per step, NaiveSampler.
            let cache = KVCache(config: model.config, sequences: prompts.count, capacity: 32)
            var rngs = ids.map { SplitMix64(seed: options.seed &+ 0x9E37_79B9_7F4A_7C15 &* ($0 &+ 1)) }
            var tokens = prompts.map { _ in [Int32]() }, logps = prompts.map { _ in [Float]() }, stopped = prompts.map { _ in false }
            var next = prompts
            while next.contains(where: { !$0.isEmpty }) {
                let logits = model.decodeStep(cache, newTokens: next)
                next = prompts.map { _ in [] }
                for (s, row) in logits {
                    let (t, lp) = NaiveSampler.sample(row, options: options, rng: &rngs[s])
                    tokens[s].append(t)
                    logps[s].append(lp)
                    if stop.contains(t) { stopped[s] = true } else if tokens[s].count < options.maxNewTokens { next[s] = [t] }
                }
            }
            for s in prompts.indices {
                XCTAssertEqual(fast[s].tokens, tokens[s], "sequence \(s) tokens, \(options)")
                XCTAssertEqual(fast[s].stopped, stopped[s], "sequence \(s) stop flag")
                assertTensorClose(fast[s].logProbs, logps[s], "sequence \(s) log-probs", relativeTolerance: 1e-5)
            }
        }
    }

    /// Greedy picks the argmax; returned log-probs are the model's own; stop tokens end a sequence.
    func testGreedyLogProbsAndStop() throws {
        let model = try twinModel()
        let prompt: [Int32] = [5, 17, 200]
        let g = model.generate(prompts: [prompt], options: SamplingOptions(greedy: true, maxNewTokens: 4), stopTokens: [])[0]
        // Check against the full forward on prompt + generated tokens.
        let seq = prompt + g.tokens
        let batch = TokenBatch(sequences: [seq])
        let logps = model.sequenceLogProbs(batch, responseStarts: [prompt.count], reduction: .sum)
        XCTAssertEqual(logps[0], g.totalLogProb, accuracy: 1e-4, "sum of returned log-probs equals the teacher-forced sequence log-prob")
        let stop = g.tokens[1], first = g.tokens.firstIndex(of: stop)!
        let stopped = model.generate(prompts: [prompt], options: SamplingOptions(greedy: true, maxNewTokens: 4), stopTokens: [stop])[0]
        XCTAssertEqual(stopped.tokens, Array(g.tokens[0...first]), "generation ends at the first stop token, which is kept")
        XCTAssertTrue(stopped.stopped)
    }

    /// Top-k 1 equals greedy; top-p keeps only the nucleus.
    func testSamplerTruncation() {
        let logits: [Float] = [0, 3, 1, 2.9, -5]
        var rng = SplitMix64(seed: 1)
        for _ in 0..<20 {
            XCTAssertEqual(Sampler.sample(logits, options: SamplingOptions(topK: 1), rng: &rng).0, 1)
            let t = Sampler.sample(logits, options: SamplingOptions(topP: 0.6), rng: &rng).0
            XCTAssertTrue(t == 1 || t == 3, "top-p 0.6 keeps the two tokens holding 0.78 of the mass, got \(t)")
        }
        let (_, lp) = Sampler.sample(logits, options: SamplingOptions(greedy: true), rng: &rng)
        let lse = Foundation.log(logits.map { Foundation.exp(Double($0)) }.reduce(0, +))
        XCTAssertEqual(Double(lp), 3 - lse, accuracy: 1e-6)
    }
}

import Foundation
