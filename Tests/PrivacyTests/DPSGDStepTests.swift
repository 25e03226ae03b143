// DP-SGD step math: clip factors and the clipped sum, the noise's distribution (χ² and fourth-moment
// bounds) for both noise modes and both placements over ranks, seeded save/restore, Poisson sampling over
// ranks (union independent of W, inclusion rate within a binomial bound) and physical batches.

import Foundation
import XCTest
import TestSupport
import Tensors
@testable import Privacy

final class DPSGDStepTests: XCTestCase {
    // MARK: Clipping

    func testClipFactorIsOpacus() {
        XCTAssertEqual(PerExampleClipping.clipFactor(norm: 0, maxNorm: 1), 1, "zero gradient: factor 1")
        XCTAssertEqual(PerExampleClipping.clipFactor(norm: 0.5, maxNorm: 1), 1, "below C: unchanged")
        assertScalarClose(PerExampleClipping.clipFactor(norm: 4, maxNorm: 2), 2 / (4 + 1e-6), "above C: C/(‖g‖ + 1e-6)",
                          relativeTolerance: 1e-15)
        assertScalarClose(PerExampleClipping.clipFactor(norm: 1, maxNorm: 1), 1 / (1 + 1e-6), "at C: just below 1",
                          relativeTolerance: 1e-15)
        assertScalarClose(PerExampleClipping.jointNorm(squaredNorms: [9, 16]), 5, "joint norm over parameter groups",
                          relativeTolerance: 1e-15)
    }

    func testClippedSumMatchesReferenceAndBoundsEachExample() {
        let B = 7, P = 300, C = 1.5
        var gradients = randomFloats(B * P, seed: 11, scale: 0.3)       // (B, P)
        for p in 0..<P { gradients[2 * P + p] *= 1e-3 }                  // one example well inside the ball
        let norms = gradients.withUnsafeBufferPointer { PerExampleClipping.squaredRowNorms($0.baseAddress!, examples: B, parameters: P) }
        let factors = PerExampleClipping.clipFactors(squaredNorms: norms, maxNorm: C)
        XCTAssertEqual(factors[2], 1, "small example not scaled")
        for (n, c) in zip(norms, factors) {
            XCTAssertLessThanOrEqual(c * n.squareRoot(), C, "clipped norm ≤ C (norm \(n.squareRoot()), factor \(c))")
        }
        var fast = [Float](repeating: 0.25, count: P), reference = fast
        gradients.withUnsafeBufferPointer { g in
            fast.withUnsafeMutableBufferPointer {
                PerExampleClipping.accumulateClippedSum(into: $0.baseAddress!, perExample: g.baseAddress!, factors: factors, parameters: P)
            }
            reference.withUnsafeMutableBufferPointer {
                PerExampleClipping.accumulateClippedSumReference(into: $0.baseAddress!, perExample: g.baseAddress!,
                                                                 factors: factors, parameters: P)
            }
        }
        assertTensorClose(fast, reference, "Σ c_b g_b (sgemm vs reference)", relativeTolerance: 1e-6)
    }

    // MARK: Noise

    /// Fails unless `values` look like n draws of N(0, variance): the mean, Σx²/variance ~ χ²_n, and the
    /// fourth moment (3·variance², which a uniform or Laplace shape would miss), each within 5 standard errors.
    private func assertGaussian(_ values: [Float], variance: Double, _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        let n = Double(values.count)
        let sum = values.reduce(0.0) { $0 + Double($1) }
        let chi2 = values.reduce(0.0) { $0 + Double($1) * Double($1) } / variance
        let fourth = values.reduce(0.0) { $0 + pow(Double($1), 4) } / (n * variance * variance)
        let meanZ = sum / (variance * n).squareRoot()
        XCTAssertLessThan(abs(meanZ), 5, "\(name): mean is \(meanZ) standard errors from 0", file: file, line: line)
        XCTAssertLessThan(abs(chi2 - n), 5 * (2 * n).squareRoot(),
                          "\(name): Σx²/σ² = \(chi2), χ²_n has mean \(n) and sd \((2 * n).squareRoot()); bound 5 sd", file: file, line: line)
        XCTAssertLessThan(abs(fourth - 3), 5 * (96 / n).squareRoot(),
                          "\(name): E[x⁴]/σ⁴ = \(fourth), Gaussian 3 ± \((96 / n).squareRoot()); bound 5 sd", file: file, line: line)
    }

    private func noise(_ source: GaussianNoiseSource, count: Int, std: Double) -> [Float] {
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBufferPointer { source.addNoise(to: $0.baseAddress!, count: count, standardDeviation: std) }
        return values
    }

    func testNoiseAddedOnceHasVarianceSigmaSquaredCSquared() {
        let sigma = 1.3, C = 0.7, count = 200_000
        for (name, source) in [("seeded", GaussianNoiseSource.seeded(42)), ("secure", GaussianNoiseSource.secure())] {
            let std = NoisePlacement.rankZero.standardDeviation(noiseMultiplier: sigma, maxNorm: C, rank: 0, worldSize: 3)
            assertScalarClose(std, sigma * C, "rank 0 noise std", relativeTolerance: 1e-15)
            assertGaussian(noise(source, count: count, std: std), variance: sigma * sigma * C * C, "\(name) noise, once on rank 0")
        }
        XCTAssertEqual(NoisePlacement.rankZero.standardDeviation(noiseMultiplier: sigma, maxNorm: C, rank: 1, worldSize: 3), 0,
                       "other ranks add none")
    }

    func testPerRankSharesSumToTheSameVariance() {
        let sigma = 1.3, C = 0.7, count = 200_000
        for W in [2, 3] {
            let std = NoisePlacement.perRankShares.standardDeviation(noiseMultiplier: sigma, maxNorm: C, rank: 1, worldSize: W)
            assertScalarClose(std * std, sigma * sigma * C * C / Double(W), "per-rank share variance σ²C²/W", relativeTolerance: 1e-14)
            for secure in [false, true] {
                var sum = [Float](repeating: 0, count: count)           // the all-reduced sum of W shares
                for rank in 0..<W {
                    let source = secure ? GaussianNoiseSource.secure() : GaussianNoiseSource.seeded(1000 + UInt64(rank))
                    let share = noise(source, count: count, std: std)
                    for i in 0..<count { sum[i] += share[i] }
                }
                assertGaussian(sum, variance: sigma * sigma * C * C, "sum of \(W) \(secure ? "secure" : "seeded") shares")
            }
        }
    }

    func testSeededNoiseIsReproducibleAndRestorable() throws {
        let a = GaussianNoiseSource.seeded(7), b = GaussianNoiseSource.seeded(7)
        XCTAssertFalse(a.isPrivate, "seeded noise is not private")
        XCTAssert(a.summary.contains("NOT PRIVATE"), a.summary)
        XCTAssertEqual(noise(a, count: 100, std: 1), noise(b, count: 100, std: 1), "same seed, same noise")
        let saved = try JSONEncoder().encode(a.state)
        let expected = noise(a, count: 50, std: 2)
        let restored = try GaussianNoiseSource(restoring: JSONDecoder().decode(NoiseSourceState.self, from: saved))
        XCTAssertEqual(noise(restored, count: 50, std: 2), expected, "restored source continues the stream")
        XCTAssertThrowsError(try GaussianNoiseSource(restoring: NoiseSourceState(mode: .seeded))) { error in
            XCTAssertEqual((error as? PrivacyError)?.kind, .noiseStateMismatch, "\(error)")
        }
    }

    func testSecureNoiseIsPrivateAndNotRepeated() throws {
        let a = GaussianNoiseSource.secure(), b = GaussianNoiseSource.secure()
        XCTAssertTrue(a.isPrivate)
        XCTAssertEqual(a.state, NoiseSourceState(mode: .secure), "secure state carries no generator position")
        XCTAssertNotEqual(noise(a, count: 64, std: 1), noise(b, count: 64, std: 1), "two secure sources differ")
        XCTAssertTrue(try GaussianNoiseSource(restoring: a.state).isPrivate, "a restored secure source is secure")
        XCTAssertEqual(noise(a, count: 10, std: 0), [Float](repeating: 0, count: 10), "σC = 0 adds nothing")
    }

    // MARK: Poisson sampling

    func testUnionOverRanksIsTheSameForOneTwoAndThreeRanks() throws {
        let sampler = try PoissonSampler(datasetSize: 10_007, sampleRate: 0.03, seed: 99)
        for step in [0, 1, 17, 5000] {
            let whole = try sampler.indices(step: step, rank: 0, worldSize: 1)
            XCTAssertEqual(whole, (0..<10_007).filter { sampler.isSampled(index: $0, step: step) }, "W = 1 is the Poisson sample")
            for W in [2, 3] {
                let parts = try (0..<W).map { try sampler.indices(step: step, rank: $0, worldSize: W) }
                for (rank, part) in parts.enumerated() {
                    XCTAssert(part.allSatisfy { $0 % W == rank }, "rank \(rank) of \(W) holds only its shard")
                }
                XCTAssertEqual(parts.flatMap { $0 }.sorted(), whole, "step \(step): union over \(W) ranks = the W = 1 sample")
            }
        }
        let other = try PoissonSampler(datasetSize: 10_007, sampleRate: 0.03, seed: 100)
        XCTAssertNotEqual(try other.indices(step: 0, rank: 0, worldSize: 1), try sampler.indices(step: 0, rank: 0, worldSize: 1),
                          "another seed, another sample")
    }

    func testInclusionRateAndIndependenceAcrossSteps() throws {
        let N = 20_000, q = 0.02, steps = 50
        let sampler = try PoissonSampler(datasetSize: N, sampleRate: q, seed: 5)
        var total = 0, both = 0
        var previous = Set<Int>()
        for step in 0..<steps {
            let batch = try sampler.indices(step: step, rank: 0, worldSize: 1)
            total += batch.count
            if step > 0 { both += batch.filter { previous.contains($0) }.count }
            previous = Set(batch)
        }
        // total ~ Binomial(N·steps, q); indices in two consecutive steps ~ Binomial(N·(steps − 1), q²).
        let trials = Double(N * steps), mean = trials * q, sd = (trials * q * (1 - q)).squareRoot()
        XCTAssertLessThan(abs(Double(total) - mean), 5 * sd, "sampled \(total), expected \(mean) ± \(sd) (bound 5 sd)")
        let pairs = Double(N * (steps - 1)), pairMean = pairs * q * q, pairSD = (pairs * q * q * (1 - q * q)).squareRoot()
        XCTAssertLessThan(abs(Double(both) - pairMean), 5 * pairSD, "in consecutive steps \(both), expected \(pairMean) ± \(pairSD)")
        assertScalarClose(sampler.expectedBatchSize, 400, "expected batch size q·N", relativeTolerance: 1e-15)
    }

    func testPhysicalBatchesAndInvalidSettings() throws {
        let logical = Array(0..<10)
        let batches = try PoissonSampler.physicalBatches(logical, maxSize: 4)
        XCTAssertEqual(batches.map { $0.count }, [4, 4, 2])
        XCTAssertEqual(batches.flatMap { $0 }, logical, "physical batches cover the logical batch in order")
        XCTAssertTrue(try PoissonSampler.physicalBatches([], maxSize: 4).isEmpty, "an empty logical batch has no physical batch")
        XCTAssertThrowsError(try PoissonSampler.physicalBatches(logical, maxSize: 0))
        XCTAssertThrowsError(try PoissonSampler(datasetSize: 10, sampleRate: 0, seed: 1))
        XCTAssertThrowsError(try PoissonSampler(datasetSize: 0, sampleRate: 0.1, seed: 1))
        XCTAssertThrowsError(try PoissonSampler(datasetSize: 10, sampleRate: 0.1, seed: 1).indices(step: 0, rank: 2, worldSize: 2))
    }
}
