// The fast sampler against the naive one it replaced: the same token and generator state for the same
// seed, and the same log-prob, over many logit rows, temperatures, top-k, top-p and seeds.

import XCTest
import Foundation
import Models
import Tensors

final class SamplerTests: XCTestCase {
    /// Logit rows of several shapes: Gaussian of several widths, heavy ties, one dominant token, -inf masks.
    func rows(vocab V: Int, rng: inout SplitMix64) -> [(String, [Float])] {
        var out: [(String, [Float])] = []
        for std in [0.3, 1.5, 4.0, 12.0] as [Float] {
            out.append(("gaussian std \(std)", (0..<V).map { _ in std * rng.nextGaussian() + 3 }))
        }
        out.append(("ties", (0..<V).map { _ in Float(Int(rng.uniform(below: 7))) * 0.5 }))
        var peaked = (0..<V).map { _ in rng.nextGaussian() }
        peaked[Int(rng.uniform(below: UInt64(V)))] = 25
        out.append(("peaked", peaked))
        var masked = (0..<V).map { _ in 2 * rng.nextGaussian() }
        for _ in 0..<(V / 3) { masked[Int(rng.uniform(below: UInt64(V)))] = -.infinity }
        out.append(("masked", masked))
        return out
    }

    /// Draws the same row with both samplers from generators in the same state: identical tokens and
    /// generator states, log-probs within 1e-6 (relative to |log p| when that exceeds 1).
    func compare(_ s: Sampler, _ row: [Float], _ options: SamplingOptions, seed: UInt64, _ what: String) -> Float {
        var a = SplitMix64(seed: seed), b = a
        let naive = NaiveSampler.sample(row, options: options, rng: &a)
        let fast = row.withUnsafeBufferPointer { s.sample($0.baseAddress!, options: options, rng: &b) }
        XCTAssertEqual(fast.0, naive.0, "token of \(what)")
        XCTAssertEqual(a, b, "generator state after \(what)")
        let d = abs(fast.1 - naive.1), scale = max(1, abs(naive.1))
        XCTAssertLessThanOrEqual(d, 1e-6 * scale, "log-prob of \(what): \(fast.1) vs naive \(naive.1), |diff| \(d) > 1e-6 × \(scale)")
        return d / scale
    }

    func testMatchesNaiveSamplerOnSmallVocabularies() {
        var rng = SplitMix64(seed: 7)
        var draws = 0, worst: Float = 0
        for V in [1, 5, 100, 3001] {
            let s = Sampler(vocabSize: V)
            for (name, row) in rows(vocab: V, rng: &rng) {
                for t in [0.25, 0.7, 1, 1.6] as [Float] {
                    for topK in [0, 1, 5, 50, V, V + 3] {
                        for topP in [1, 0.97, 0.9, 0.5, 0.1] as [Float] {
                            for seed in 0..<4 as Range<UInt64> {
                                let options = SamplingOptions(temperature: t, topK: topK, topP: topP)
                                worst = max(worst, compare(s, row, options, seed: seed &* 977 &+ UInt64(V),
                                                           "V \(V) \(name) t \(t) top-k \(topK) top-p \(topP) seed \(seed)"))
                                draws += 1
                            }
                        }
                    }
                }
                for seed in 0..<2 as Range<UInt64> {
                    worst = max(worst, compare(s, row, SamplingOptions(greedy: true), seed: seed, "V \(V) \(name) greedy"))
                }
            }
        }
        print("sampler vs naive, small vocabularies: \(draws) draws, worst relative log-prob difference \(worst)")
    }

    /// SmolLM2's vocabulary (49,152): the paths where the fast sampler certifies a float sum.
    func testMatchesNaiveSamplerOnSmolLM2Vocabulary() {
        var rng = SplitMix64(seed: 8)
        let V = 49_152, s = Sampler(vocabSize: V)
        var draws = 0, worst: Float = 0
        for (name, row) in rows(vocab: V, rng: &rng) {
            for t in [0.7, 1, 1.6] as [Float] {
                for (topK, topP) in [(0, 1), (50, 1), (0, 0.9), (40, 0.95), (0, 0.5)] as [(Int, Float)] {
                    for seed in 0..<3 as Range<UInt64> {
                        let options = SamplingOptions(temperature: t, topK: topK, topP: topP)
                        worst = max(worst, compare(s, row, options, seed: seed, "V \(V) \(name) t \(t) top-k \(topK) top-p \(topP) seed \(seed)"))
                        draws += 1
                    }
                }
            }
            worst = max(worst, compare(s, row, SamplingOptions(greedy: true), seed: 0, "V \(V) \(name) greedy"))
        }
        print("sampler vs naive, V = \(V): \(draws) draws, \(s.exactFallbacks) exact fallbacks, worst relative log-prob difference \(worst)")
    }

    /// A draw close to a boundary of the float CDF takes the exact path and still matches: rows where the
    /// uniform draw lands within the error bound of a boundary are constructed by trying many seeds on a
    /// flat row (every token's share is 1/V, so boundaries are dense).
    func testExactFallbackIsTakenAndMatches() {
        let V = 49_152, s = Sampler(vocabSize: V)
        var rng = SplitMix64(seed: 9)
        let row = (0..<V).map { _ in 0.01 * rng.nextGaussian() }
        var seed: UInt64 = 0
        while s.exactFallbacks < 3 && seed < 2000 {
            _ = compare(s, row, SamplingOptions(), seed: seed, "flat row seed \(seed)")
            seed += 1
        }
        XCTAssertGreaterThanOrEqual(s.exactFallbacks, 3, "no draw in \(seed) seeds came within the error bound of a CDF boundary")
    }
}
