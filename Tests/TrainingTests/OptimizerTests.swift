// Tests of AdamW, gradient clipping and learning-rate schedules against a PyTorch / transformers twin.
//
// Fixtures/adamw.json comes from Tests/fixtures/generate_optimizer_fixtures.py (torch.optim.AdamW, clip_grad_norm_,
// transformers' get_*_schedule_with_warmup). It is read from the source tree, so TrainingTests needs no resources.

import Foundation
import XCTest
import Tensors
@testable import Training

final class OptimizerTests: XCTestCase {
    // MARK: Fixture

    /// The generator's output.
    struct Fixture: Decodable {
        var torch: String
        var adamw: AdamWCase
        var schedules: [ScheduleCase]
    }

    /// Five AdamW steps with clipping and a cosine schedule, as PyTorch ran them.
    struct AdamWCase: Decodable {
        var count: Int
        var decayRange: [Int]
        var peakLearningRate: Double
        var warmupSteps: Int
        var totalSteps: Int
        var beta1: Double
        var beta2: Double
        var epsilon: Double
        var weightDecay: Double
        var maxNorm: Double
        var initial: [Double]
        var gradients: [[Double]]
        var learningRates: [Double]
        var preClipNorms: [Double]
        var paramsAfterStep: [[Double]]
    }

    /// transformers' LambdaLR multipliers for one schedule setting.
    struct ScheduleCase: Decodable {
        var kind: String
        var warmupSteps: Int
        var totalSteps: Int
        var multipliers: [Double]
    }

    static let fixtureURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/adamw.json")

    private func loadFixture() throws -> Fixture {
        let data = try Data(contentsOf: Self.fixtureURL)
        return try JSONDecoder().decode(Fixture.self, from: data)
    }

    // MARK: AdamW

    /// Clip → AdamW step → schedule, five times, matches torch.optim.AdamW to 1e-6 relative on every parameter.
    func testAdamWMatchesPyTorch() throws {
        let fixture = try loadFixture().adamw
        let config = AdamWConfig(learningRate: Float(fixture.peakLearningRate), beta1: Float(fixture.beta1),
                                 beta2: Float(fixture.beta2), epsilon: Float(fixture.epsilon),
                                 weightDecay: Float(fixture.weightDecay))
        let schedule = LearningRateSchedule(kind: .cosine, peak: Float(fixture.peakLearningRate),
                                            warmupSteps: fixture.warmupSteps, totalSteps: fixture.totalSteps)
        let optimizer = AdamW(parameterCount: fixture.count, config: config)
        let parameters = FloatBuffer(fixture.initial.map { Float($0) })
        let decayRanges = [fixture.decayRange[0]..<fixture.decayRange[1]]

        for step in 0..<fixture.gradients.count {
            let gradients = FloatBuffer(fixture.gradients[step].map { Float($0) })
            let norm = clipGradientNorm(gradients.pointer, count: gradients.count, maxNorm: fixture.maxNorm)
            assertRelativelyClose(norm, fixture.preClipNorms[step], tolerance: 1e-6, "pre-clip gradient norm at step \(step + 1)")

            let learningRate = schedule.rate(at: optimizer.step)
            assertRelativelyClose(Double(learningRate), fixture.learningRates[step], tolerance: 1e-7,
                                  "learning rate at step \(step + 1)", floor: 1e-12)

            optimizer.update(parameters: parameters.pointer, gradients: UnsafePointer(gradients.pointer),
                             count: parameters.count, learningRate: learningRate, decayRanges: decayRanges)
            XCTAssertEqual(optimizer.step, step + 1, "optimizer step counter after \(step + 1) updates")
            assertArraysRelativelyClose(parameters.array, fixture.paramsAfterStep[step], tolerance: 1e-6,
                                        "parameters after AdamW step \(step + 1)")
        }
    }

    /// With zero moments and zero gradients only the decoupled decay acts, and only inside the decay ranges
    /// (given unsorted and overlapping, across several work chunks).
    func testWeightDecayAppliesOnlyInsideDecayRanges() {
        let chunk = AdamW.chunkSize
        let count = 3 * chunk + 5
        let optimizer = AdamW(parameterCount: count, config: AdamWConfig(weightDecay: 0.5))
        let parameters = FloatBuffer(count: count)
        for i in 0..<count { parameters.pointer[i] = 1 }
        let gradients = FloatBuffer(count: count)
        let decayRanges = [(2 * chunk + 3)..<count, 10..<20, 15..<(chunk + 7)]
        optimizer.update(parameters: parameters.pointer, gradients: UnsafePointer(gradients.pointer), count: count,
                         learningRate: 0.1, decayRanges: decayRanges)

        let decayed = Float(1 - 0.1 * 0.5)
        var wrong = 0
        var firstWrong = -1
        for i in 0..<count {
            let inside = decayRanges.contains { $0.contains(i) }
            let expected: Float = inside ? decayed : 1
            if parameters.pointer[i] != expected {
                wrong += 1
                if firstWrong < 0 { firstWrong = i }
            }
        }
        XCTAssertEqual(wrong, 0, "parameters with the wrong decay: \(wrong) of \(count), first at index \(firstWrong) "
            + "(value \(firstWrong >= 0 ? parameters.pointer[firstWrong] : 0)); tolerance 0")
    }

    /// The parallel, chunked update equals a plain single-loop reference of the PyTorch formula over a slab
    /// larger than one chunk, for several steps.
    func testChunkedUpdateMatchesScalarReference() {
        let count = 2 * AdamW.chunkSize + 1234
        let config = AdamWConfig(learningRate: 1e-3, weightDecay: 0.1)
        let optimizer = AdamW(parameterCount: count, config: config)
        var generator = SplitMix64(seed: 7)
        let parameters = FloatBuffer((0..<count).map { _ in generator.nextFloat() })
        var referenceParameters = parameters.array.map { Double($0) }
        var referenceM = [Double](repeating: 0, count: count)
        var referenceV = [Double](repeating: 0, count: count)
        let decayEnd = count / 2 + 17

        for step in 1...3 {
            let gradients = FloatBuffer((0..<count).map { _ in generator.nextFloat() * 0.01 })
            let learningRate: Float = 1e-3 * Float(step)
            optimizer.update(parameters: parameters.pointer, gradients: UnsafePointer(gradients.pointer), count: count,
                             learningRate: learningRate, decayRanges: [0..<decayEnd])
            // Double-precision reference of the same recurrence.
            let lr = Double(learningRate)
            let bias1 = 1 - pow(0.9, Double(step))
            let bias2 = 1 - pow(0.999, Double(step))
            for i in 0..<count {
                let g = Double(gradients.pointer[i])
                if i < decayEnd { referenceParameters[i] *= 1 - lr * 0.1 }
                referenceM[i] = 0.9 * referenceM[i] + 0.1 * g
                referenceV[i] = 0.999 * referenceV[i] + 0.001 * g * g
                let denominator = referenceV[i].squareRoot() / bias2.squareRoot() + 1e-8
                referenceParameters[i] -= lr / bias1 * referenceM[i] / denominator
            }
            assertArraysRelativelyClose(parameters.array, referenceParameters, tolerance: 1e-5,
                                        "parameters after chunked AdamW step \(step) vs Double reference (relative to max(|p|, 1e-3))",
                                        floor: 1e-3)
            assertArraysRelativelyClose(optimizer.m.array, referenceM, tolerance: 1e-5,
                                        "first moment after step \(step) vs Double reference (relative to max(|m|, 1e-4))",
                                        floor: 1e-4)
        }
    }

    // MARK: Clipping

    func testClipGradientNormScalesToMaxNorm() {
        let gradients = FloatBuffer([3, 4, 0, 0, 0])
        let norm = clipGradientNorm(gradients.pointer, count: gradients.count, maxNorm: 1)
        assertRelativelyClose(norm, 5, tolerance: 0, "pre-clip norm of (3, 4)")
        let coefficient = 1 / (5 + 1e-6)
        assertArraysRelativelyClose(gradients.array, [3 * coefficient, 4 * coefficient, 0, 0, 0], tolerance: 1e-7,
                                    "clipped gradients (coef 1/(5 + 1e-6))")
        let after = globalGradientNorm(UnsafePointer(gradients.pointer), count: gradients.count)
        assertRelativelyClose(after, 1, tolerance: 1e-6, "norm after clipping to 1")
    }

    func testClipGradientNormIsNoOpBelowMaxNorm() {
        let values: [Float] = [0.3, -0.4, 0.0, 1e-3]
        let gradients = FloatBuffer(values)
        let norm = clipGradientNorm(gradients.pointer, count: gradients.count, maxNorm: 1)
        let expected = (0.3 * 0.3 + 0.4 * 0.4 + 1e-6 as Double).squareRoot()
        assertRelativelyClose(norm, expected, tolerance: 1e-7, "pre-clip norm below max")
        XCTAssertEqual(gradients.array, values, "gradients below max norm must be untouched (tolerance 0)")
    }

    /// The norm of a 10M-element slab is bit-identical across repeats and thread counts and matches a plain sum.
    func testGlobalGradientNormIsDeterministic() {
        let count = 10_000_000
        let gradients = FloatBuffer(count: count)
        var generator = SplitMix64(seed: 42)
        for i in 0..<count { gradients.pointer[i] = generator.nextFloat() }
        let pointer = UnsafePointer(gradients.pointer)

        let savedThreads = ThreadPool.threads
        defer { ThreadPool.threads = savedThreads }
        ThreadPool.threads = max(savedThreads, 2)
        let parallel = globalGradientNorm(pointer, count: count)
        let again = globalGradientNorm(pointer, count: count)
        ThreadPool.threads = 1
        let serial = globalGradientNorm(pointer, count: count)

        XCTAssertEqual(parallel.bitPattern, again.bitPattern,
                       "global norm repeated: \(parallel) vs \(again), difference \(abs(parallel - again)); tolerance 0 (bitwise)")
        XCTAssertEqual(parallel.bitPattern, serial.bitPattern,
                       "global norm parallel vs 1 thread: \(parallel) vs \(serial), difference \(abs(parallel - serial)); tolerance 0 (bitwise)")

        var sum = 0.0
        for i in 0..<count { sum += Double(pointer[i]) * Double(pointer[i]) }
        assertRelativelyClose(parallel, sum.squareRoot(), tolerance: 1e-9, "global norm vs sequential Double sum")
    }

    // MARK: Schedules

    /// Every schedule multiplier transformers computed (constant, linear, cosine; several warmups) matches.
    func testSchedulesMatchTransformers() throws {
        let fixture = try loadFixture()
        XCTAssertFalse(fixture.schedules.isEmpty, "fixture has schedule cases")
        for scheduleCase in fixture.schedules {
            let kind = try XCTUnwrap(LearningRateSchedule.Kind(rawValue: scheduleCase.kind), "schedule kind \(scheduleCase.kind)")
            let schedule = LearningRateSchedule(kind: kind, peak: 1, warmupSteps: scheduleCase.warmupSteps,
                                                totalSteps: scheduleCase.totalSteps)
            for (step, expected) in scheduleCase.multipliers.enumerated() {
                let name = "\(kind) multiplier (warmup \(scheduleCase.warmupSteps), total \(scheduleCase.totalSteps)) at step \(step)"
                assertAbsolutelyClose(schedule.multiplier(at: step), expected, tolerance: 1e-15, name)
                assertAbsolutelyClose(Double(schedule.rate(at: step)), expected, tolerance: 1e-7, "rate of peak-1 \(name)")
            }
        }
    }

    /// Closed-form values: warmup is linear from 0, linear decay hits 0 at totalSteps, cosine is half-way at mid-decay.
    func testSchedulesClosedForm() {
        let linear = LearningRateSchedule(kind: .linear, peak: 2e-5, warmupSteps: 10, totalSteps: 110)
        assertAbsolutelyClose(Double(linear.rate(at: 0)), 0, tolerance: 0, "linear rate at step 0")
        assertAbsolutelyClose(Double(linear.rate(at: 5)), 1e-5, tolerance: 4e-12, "linear rate half-way through warmup (Float32 rounding)")
        assertAbsolutelyClose(Double(linear.rate(at: 10)), 2e-5, tolerance: 4e-12, "linear rate at end of warmup (Float32 rounding)")
        assertAbsolutelyClose(Double(linear.rate(at: 60)), 1e-5, tolerance: 4e-12, "linear rate half-way through decay (Float32 rounding)")
        assertAbsolutelyClose(Double(linear.rate(at: 110)), 0, tolerance: 0, "linear rate at totalSteps")
        assertAbsolutelyClose(Double(linear.rate(at: 200)), 0, tolerance: 0, "linear rate past totalSteps")

        let cosine = LearningRateSchedule(kind: .cosine, peak: 1, warmupSteps: 4, totalSteps: 104)
        assertAbsolutelyClose(cosine.multiplier(at: 2), 0.5, tolerance: 1e-15, "cosine multiplier in warmup")
        assertAbsolutelyClose(cosine.multiplier(at: 54), 0.5, tolerance: 1e-15, "cosine multiplier at mid-decay")
        assertAbsolutelyClose(cosine.multiplier(at: 29), 0.5 * (1 + cos(Double.pi / 4)), tolerance: 1e-15,
                              "cosine multiplier at a quarter of the decay")
        assertAbsolutelyClose(cosine.multiplier(at: 104), 0, tolerance: 1e-15, "cosine multiplier at totalSteps")

        let constant = LearningRateSchedule(kind: .constant, peak: 3e-4, warmupSteps: 3, totalSteps: 0)
        assertAbsolutelyClose(Double(constant.rate(at: 1)), 1e-4, tolerance: 1e-11, "constant rate in warmup (Float32 rounding)")
        assertAbsolutelyClose(Double(constant.rate(at: 1000)), Double(Float(3e-4)), tolerance: 0, "constant rate after warmup")

        let noWarmup = LearningRateSchedule(kind: .linear, peak: 1, warmupSteps: 0, totalSteps: 4)
        assertAbsolutelyClose(noWarmup.multiplier(at: 0), 1, tolerance: 0, "linear multiplier at step 0 without warmup")
        assertAbsolutelyClose(noWarmup.multiplier(at: 1), 0.75, tolerance: 0, "linear multiplier at step 1 without warmup")
    }

    func testScheduleAndConfigRoundTripThroughJSON() throws {
        let schedule = LearningRateSchedule(kind: .cosine, peak: 2e-5, warmupSteps: 7, totalSteps: 99)
        let decodedSchedule = try JSONDecoder().decode(LearningRateSchedule.self, from: JSONEncoder().encode(schedule))
        XCTAssertEqual(decodedSchedule, schedule, "schedule JSON round trip")
        let config = AdamWConfig(learningRate: 5e-7, weightDecay: 0.1)
        let decodedConfig = try JSONDecoder().decode(AdamWConfig.self, from: JSONEncoder().encode(config))
        XCTAssertEqual(decodedConfig, config, "AdamW config JSON round trip")
    }

    /// Asserts |actual − expected| ≤ tolerance, naming the quantity, the difference and the tolerance.
    private func assertAbsolutelyClose(_ actual: Double, _ expected: Double, tolerance: Double, _ name: String,
                                       file: StaticString = #filePath, line: UInt = #line) {
        let difference = abs(actual - expected)
        XCTAssertTrue(difference <= tolerance,
                      "\(name): got \(actual), expected \(expected); |difference| \(difference) > absolute tolerance \(tolerance)",
                      file: file, line: line)
    }

    /// Asserts |actual − expected| ≤ tolerance · max(|expected|, floor).
    private func assertRelativelyClose(_ actual: Double, _ expected: Double, tolerance: Double, _ name: String,
                                       floor: Double = 1e-30, file: StaticString = #filePath, line: UInt = #line) {
        let relative = abs(actual - expected) / max(abs(expected), floor)
        XCTAssertTrue(relative <= tolerance,
                      "\(name): got \(actual), expected \(expected); relative difference \(relative) > relative tolerance \(tolerance)",
                      file: file, line: line)
    }

    /// Asserts every element satisfies |actual − expected| ≤ tolerance · max(|expected|, floor); reports the worst one.
    private func assertArraysRelativelyClose(_ actual: [Float], _ expected: [Double], tolerance: Double, _ name: String,
                                             floor: Double = 1e-30, file: StaticString = #filePath, line: UInt = #line) {
        guard actual.count == expected.count else {
            XCTFail("\(name): \(actual.count) values, expected \(expected.count)", file: file, line: line)
            return
        }
        var worst = 0.0
        var worstIndex = 0
        for i in 0..<actual.count {
            let relative = abs(Double(actual[i]) - expected[i]) / max(abs(expected[i]), floor)
            if !(relative <= worst) {
                worst = relative
                worstIndex = i
            }
        }
        XCTAssertTrue(worst <= tolerance,
                      "\(name): max relative difference \(worst) at index \(worstIndex) (got \(actual[worstIndex]), "
                        + "expected \(expected[worstIndex])) > relative tolerance \(tolerance)",
                      file: file, line: line)
    }
}

// MARK: Test data

private extension SplitMix64 {
    /// A uniform Float in [−1, 1) (the library's nextUniform() spans [0, 1)).
    mutating func nextFloat() -> Float { 2 * nextUniform() - 1 }
}
