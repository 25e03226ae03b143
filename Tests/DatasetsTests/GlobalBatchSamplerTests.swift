// Sharding invariants: world-size-independent step sets, disjoint ranks, epochs, cursor resume.

import Datasets
import XCTest
import Tensors

final class GlobalBatchSamplerTests: XCTestCase {
    func testSplitMix64MatchesTheReferenceSequence() {
        var rng = SplitMix64(seed: 0)
        XCTAssertEqual([rng.next(), rng.next(), rng.next()], [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
    }

    func testPermutationMatchesThePythonTwin() throws {
        // From the documented algorithm in Python (seed ^ golden·(epoch+1), Fisher–Yates, rejection sampling).
        let s = try GlobalBatchSampler(datasetSize: 10, globalBatchSize: 2, seed: 42)
        XCTAssertEqual(s.permutation(epoch: 0), [2, 3, 9, 7, 5, 8, 6, 4, 0, 1])
        XCTAssertEqual(s.permutation(epoch: 1), [0, 8, 1, 6, 4, 3, 5, 9, 2, 7])
        XCTAssertEqual(try GlobalBatchSampler(datasetSize: 16, globalBatchSize: 4, seed: 7).permutation(epoch: 0),
                       [7, 4, 8, 13, 0, 10, 15, 9, 11, 3, 5, 12, 2, 6, 14, 1])
    }

    func testPermutationDependsOnlyOnSeedEpochAndSize() throws {
        let a = try GlobalBatchSampler(datasetSize: 1000, globalBatchSize: 8, worldSize: 1, seed: 9)
        let b = try GlobalBatchSampler(datasetSize: 1000, globalBatchSize: 64, worldSize: 4, accumulationSteps: 2, seed: 9)
        XCTAssertEqual(a.permutation(epoch: 3), b.permutation(epoch: 3))
        XCTAssertEqual(a.permutation(epoch: 0).sorted(), Array(0..<1000))
        XCTAssertNotEqual(a.permutation(epoch: 0), a.permutation(epoch: 1), "each epoch is shuffled anew")
        XCTAssertNotEqual(a.permutation(epoch: 0), try GlobalBatchSampler(datasetSize: 1000, globalBatchSize: 8, seed: 10).permutation(epoch: 0))
        let ordered = try GlobalBatchSampler(datasetSize: 10, globalBatchSize: 5, seed: 9, shuffle: false)
        XCTAssertEqual(ordered.stepIndices(epoch: 4, step: 1), [5, 6, 7, 8, 9])
    }

    func testStepSetsAreIdenticalForEveryWorldSizeAndAccumulation() throws {
        let n = 203, g = 16
        let reference = try GlobalBatchSampler(datasetSize: n, globalBatchSize: g, seed: 1234)
        XCTAssertEqual(reference.stepsPerEpoch, 12)
        XCTAssertEqual(reference.droppedPerEpoch, 11)
        for r in [1, 2, 4] {
            for a in [1, 2] {
                let s = try GlobalBatchSampler(datasetSize: n, globalBatchSize: g, worldSize: r, accumulationSteps: a, seed: 1234)
                XCTAssertEqual(s.microBatchSize, g / (r * a))
                for epoch in 0..<2 {
                    var epochSeen = Set<Int>()
                    for step in 0..<s.stepsPerEpoch {
                        var union: [Int] = []
                        var perRank: [Set<Int>] = []
                        for rank in 0..<r {
                            let mine = s.rankIndices(epoch: epoch, step: step, rank: rank)
                            XCTAssertEqual(mine.count, g / r)
                            for micro in 0..<a {
                                XCTAssertEqual(s.microBatch(epoch: epoch, step: step, rank: rank, microStep: micro).count, g / (r * a))
                            }
                            perRank.append(Set(mine))
                            union += mine
                        }
                        for i in 0..<r { for j in (i + 1)..<max(i + 1, r) { XCTAssertTrue(perRank[i].isDisjoint(with: perRank[j]), "R=\(r) A=\(a) ranks \(i),\(j) overlap") } }
                        XCTAssertEqual(union.count, g)
                        XCTAssertEqual(Set(union), Set(reference.stepIndices(epoch: epoch, step: step)), "R=\(r) A=\(a) epoch \(epoch) step \(step)")
                        XCTAssertTrue(epochSeen.isDisjoint(with: union), "a sample repeats within an epoch")
                        epochSeen.formUnion(union)
                    }
                    XCTAssertEqual(epochSeen.count, n - n % g)
                }
            }
        }
    }

    func testTwoRanksEqualOneRankWithTwoMicroSteps() throws {
        let ranks = try GlobalBatchSampler(datasetSize: 100, globalBatchSize: 8, worldSize: 2, accumulationSteps: 1, seed: 5)
        let accumulate = try GlobalBatchSampler(datasetSize: 100, globalBatchSize: 8, worldSize: 1, accumulationSteps: 2, seed: 5)
        for step in 0..<ranks.stepsPerEpoch {
            XCTAssertEqual(ranks.microBatch(epoch: 0, step: step, rank: 1, microStep: 0),
                           accumulate.microBatch(epoch: 0, step: step, rank: 0, microStep: 1))
        }
    }

    func testIndivisibleGlobalBatchSaysWhatToChange() {
        let e = expectDatasetError(try GlobalBatchSampler(datasetSize: 100, globalBatchSize: 10, worldSize: 4, seed: 0))
        XCTAssertEqual(e?.kind, .invalidConfiguration)
        XCTAssertEqual(e?.field, "globalBatchSize")
        XCTAssertTrue(e?.message.contains("multiple of 4") ?? false, e?.message ?? "")
        XCTAssertTrue(e?.message.contains("8 or 12") ?? false, e?.message ?? "")
        let tooBig = expectDatasetError(try GlobalBatchSampler(datasetSize: 10, globalBatchSize: 16, seed: 0))
        XCTAssertTrue(tooBig?.message.contains("fewer than one global batch") ?? false)
    }

    /// Runs `steps` optimizer steps from `cursor`, returning each step's sample set and the final cursor.
    private func run(_ s: GlobalBatchSampler, from cursor: DataCursor, steps: Int) -> ([Set<Int>], DataCursor) {
        var c = cursor
        var sets: [Set<Int>] = []
        for _ in 0..<steps {
            var set = Set<Int>()
            for rank in 0..<s.worldSize { set.formUnion(s.microBatches(at: c, rank: rank).joined()) }
            sets.append(set)
            c = s.advanced(c)
        }
        return (sets, c)
    }

    func testResumeOnAnotherWorldSizeContinuesWithTheSameSamples() throws {
        let n = 50, g = 8 // 6 steps per epoch, 2 samples dropped each epoch
        let one = try GlobalBatchSampler(datasetSize: n, globalBatchSize: g, worldSize: 1, seed: 77)
        let (expected, end) = run(one, from: one.startCursor(), steps: 20)
        XCTAssertEqual(end.epoch, 3)
        XCTAssertEqual(end.samplesConsumed, 160)
        XCTAssertEqual(end.globalStep, 20)

        let two = try GlobalBatchSampler(datasetSize: n, globalBatchSize: g, worldSize: 2, accumulationSteps: 2, seed: 77)
        let (first, saved) = run(two, from: two.startCursor(), steps: 7) // crosses into epoch 1
        XCTAssertEqual(saved.epoch, 1)
        XCTAssertEqual(saved.stepInEpoch, 1)
        // Save and restore through JSON (as a checkpoint would), then resume on 4 ranks.
        let restored = try JSONDecoder().decode(DataCursor.self, from: JSONEncoder().encode(saved))
        let four = try GlobalBatchSampler(datasetSize: n, globalBatchSize: g, worldSize: 4, accumulationSteps: 1, seed: 77)
        try four.validate(restored)
        let (rest, _) = run(four, from: restored, steps: 13)
        XCTAssertEqual(first + rest, expected)
    }

    func testCursorFromDifferentDataOrBatchIsRejected() throws {
        let s = try GlobalBatchSampler(datasetSize: 50, globalBatchSize: 8, seed: 1)
        let c = s.advanced(s.startCursor())
        XCTAssertEqual(expectDatasetError(try GlobalBatchSampler(datasetSize: 50, globalBatchSize: 16, seed: 1).validate(c))?.field, "globalBatchSize")
        XCTAssertEqual(expectDatasetError(try GlobalBatchSampler(datasetSize: 51, globalBatchSize: 8, seed: 1).validate(c))?.field, "datasetSize")
        XCTAssertEqual(expectDatasetError(try GlobalBatchSampler(datasetSize: 50, globalBatchSize: 8, seed: 2).validate(c))?.field, "seed")
    }
}

final class HeldOutSplitTests: XCTestCase {
    func testHashMatchesThePythonTwinAndSplitIsStable() throws {
        XCTAssertEqual(HeldOutSplit.fnv1a("hello"), 0xA430_D846_80AA_BD0B)
        // u/2^53 for seed 5: "a" 0.829, "b" 0.632, "prompt 1" 0.531, "prompt 2" 0.477.
        let split = try HeldOutSplit(fraction: 0.5, seed: 5)
        XCTAssertEqual(["a", "b", "prompt 1", "prompt 2"].map(split.isHeldOut), [false, false, false, true])
        let items = (0..<5000).map { "sample-\($0)" }
        let (train, held) = try HeldOutSplit(fraction: 0.1, seed: 3).split(items) { $0 }
        XCTAssertEqual(train.count + held.count, 5000)
        XCTAssertEqual(Double(held.count) / 5000, 0.1, accuracy: 0.015)
        let (_, heldReversed) = try HeldOutSplit(fraction: 0.1, seed: 3).split(items.reversed()) { $0 }
        XCTAssertEqual(Set(held), Set(heldReversed), "membership does not depend on order")
        XCTAssertNotEqual(Set(held), Set(try HeldOutSplit(fraction: 0.1, seed: 4).split(items) { $0 }.heldOut))
        XCTAssertEqual(expectDatasetError(try HeldOutSplit(fraction: 1.01))?.field, "evalFraction")
        XCTAssertEqual(expectDatasetError(try HeldOutSplit(fraction: -0.1))?.field, "evalFraction")
        XCTAssertTrue(items.allSatisfy(try HeldOutSplit(fraction: 1, seed: 3).isHeldOut), "fraction 1 holds every item out")
        XCTAssertFalse(items.contains(where: try HeldOutSplit(fraction: 0, seed: 3).isHeldOut), "fraction 0 holds nothing out")
    }

    func testPairsOfOnePromptStayTogether() throws {
        let pairs = (0..<400).map { i in
            PreferencePair(id: "\(i)", prompt: [.user("prompt \(i / 4)")], chosen: "a\(i)", rejected: "b\(i)",
                           source: SourceLocation(file: "mem", line: i + 1))
        }
        let (train, held) = try HeldOutSplit(fraction: 0.2, seed: 11).split(pairs)
        XCTAssertFalse(held.isEmpty)
        XCTAssertTrue(Set(train.map(\.promptKey)).isDisjoint(with: held.map(\.promptKey)))
        XCTAssertEqual(held.count % 4, 0)
    }
}
