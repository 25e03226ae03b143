// LocalCommunicator: every collective with 1, 2 and 4 thread-ranks, exact expected values, timeouts.

import Distributed
import Foundation
import XCTest

final class LocalCommunicatorTests: XCTestCase {
    /// Runs `body` on every rank of a fresh group and returns the per-rank results, failing on any error.
    private func onRanks<T>(_ size: Int, timeout: TimeInterval? = 30, file: StaticString = #filePath, line: UInt = #line,
                            _ body: @escaping (LocalCommunicator) throws -> T) throws -> [T] {
        try LocalCommunicator.run(size: size, timeout: timeout, body).enumerated().map { rank, result in
            do { return try result.get() } catch {
                XCTFail("rank \(rank) of \(size) threw \(error)", file: file, line: line)
                throw error
            }
        }
    }

    func testRankAndSize() throws {
        for size in [1, 2, 4] {
            let seen = try onRanks(size) { ($0.rank, $0.size, $0.isRoot) }
            XCTAssertEqual(seen.map(\.0), Array(0..<size))
            XCTAssertTrue(seen.allSatisfy { $0.1 == size })
            XCTAssertEqual(seen.map(\.2), (0..<size).map { $0 == 0 })
        }
    }

    func testAllReduceSumOfFloatsIsExact() throws {
        for size in [1, 2, 4] {
            let count = 1000
            let results = try onRanks(size) { c -> [Float] in
                var values = (0..<count).map { Float(c.rank + 1) * Float($0) + 0.5 }
                try c.allReduceSum(&values)
                return values
            }
            let triangle = Float(size * (size + 1) / 2)
            let expected = (0..<count).map { triangle * Float($0) + 0.5 * Float(size) }
            for (rank, values) in results.enumerated() { XCTAssertEqual(values, expected, "size \(size) rank \(rank)") }
        }
    }

    func testAllReduceSumAddsInRankOrder() throws {
        // In Float, ((1e8 + 1) - 1e8) + 1 == 1, while other orders give 0 or 2: rank order is fixed.
        let results = try onRanks(4) { c -> [Float] in
            var values: [Float] = [[1e8, 1, -1e8, 1][c.rank]]
            try c.allReduceSum(&values)
            return values
        }
        XCTAssertEqual(results, Array(repeating: [1], count: 4))
    }

    func testAllReduceMeanOfFloats() throws {
        for size in [1, 2, 4] {
            let results = try onRanks(size) { c -> [Float] in
                var values = [Float(2 * c.rank), 1, -3]
                try values.withUnsafeMutableBufferPointer { try c.allReduceMean($0.baseAddress!, count: $0.count) }
                return values
            }
            for values in results { XCTAssertEqual(values, [Float(size - 1), 1, -3], "size \(size)") }
        }
    }

    func testAllReduceOfDoubles() throws {
        for size in [1, 2, 4] {
            let results = try onRanks(size) { c -> ([Double], [Double], Double, Double) in
                var sums = [Double(c.rank), 0.25, Double(c.rank * c.rank)]
                try c.allReduceSum(&sums)
                var maxima = [Double(c.rank), -Double(c.rank), 7]
                try c.allReduceMax(&maxima)
                return (sums, maxima, try c.allReduceSum(1.5), try c.allReduceMax(Double(10 - c.rank)))
            }
            let squares = (0..<size).reduce(0) { $0 + $1 * $1 }
            for (sums, maxima, one, top) in results {
                XCTAssertEqual(sums, [Double(size * (size - 1) / 2), 0.25 * Double(size), Double(squares)])
                XCTAssertEqual(maxima, [Double(size - 1), 0, 7])
                XCTAssertEqual(one, 1.5 * Double(size))
                XCTAssertEqual(top, 10)
            }
        }
    }

    func testBroadcastOfBytesFromEveryRoot() throws {
        for size in [1, 2, 4] {
            for root in 0..<size {
                let results = try onRanks(size) { c -> [UInt8] in
                    var bytes = [UInt8](repeating: UInt8(c.rank), count: c.rank + 2)   // lengths differ per rank
                    try c.broadcast(&bytes, root: root)
                    return bytes
                }
                XCTAssertEqual(results, Array(repeating: [UInt8](repeating: UInt8(root), count: root + 2), count: size), "size \(size) root \(root)")
            }
        }
        let empty = try onRanks(2) { c -> [UInt8] in
            var bytes: [UInt8] = c.rank == 0 ? [] : [9, 9]
            try c.broadcast(&bytes, root: 0)
            return bytes
        }
        XCTAssertEqual(empty, [[], []])
    }

    func testBroadcastOfFloats() throws {
        for size in [1, 2, 4] {
            let root = size - 1
            let results = try onRanks(size) { c -> [Float] in
                var values = (0..<100).map { c.rank == root ? Float($0) / 8 : -1 }
                try values.withUnsafeMutableBufferPointer { try c.broadcast($0.baseAddress!, count: $0.count, root: root) }
                return values
            }
            for values in results { XCTAssertEqual(values, (0..<100).map { Float($0) / 8 }, "size \(size)") }
        }
    }

    func testGatherOfVariableLengthPayloadsInRankOrder() throws {
        for size in [1, 2, 4] {
            // Rank r sends r bytes of value 10 + r: rank 0's payload is empty.
            let expected = (0..<size).map { [UInt8](repeating: UInt8(10 + $0), count: $0) }
            for root in 0..<size {
                let results = try onRanks(size) { c in
                    try c.gather([UInt8](repeating: UInt8(10 + c.rank), count: c.rank), root: root)
                }
                for (rank, gathered) in results.enumerated() {
                    if rank == root { XCTAssertEqual(gathered, expected, "size \(size) root \(root)") } else { XCTAssertNil(gathered) }
                }
            }
            let everyone = try onRanks(size) { c in try c.allGather([UInt8](repeating: UInt8(10 + c.rank), count: c.rank)) }
            XCTAssertEqual(everyone, Array(repeating: expected, count: size))
        }
        let allEmpty = try onRanks(3) { c in try c.gather([], root: 1) }
        XCTAssertEqual(allEmpty[1], [[], [], []])
    }

    func testBarrierWaitsForEveryRank() throws {
        for size in [1, 2, 4] {
            let arrived = Counter()
            let seen = try onRanks(size) { c -> Int in
                if c.rank == size - 1 { Thread.sleep(forTimeInterval: 0.05) }
                arrived.increment()
                try c.barrier()
                return arrived.value
            }
            XCTAssertEqual(seen, Array(repeating: size, count: size), "size \(size)")
        }
    }

    func testBroadcastOfCodableValueAndString() throws {
        struct Plan: Codable, Equatable { var name: String; var ranks: [Int]; var lambda: Double }
        let plan = Plan(name: "pecan", ranks: [0, 1, 2, 3], lambda: 0.75)
        let results = try onRanks(4) { c -> (Plan, String) in
            (try c.broadcastValue(c.isRoot ? plan : nil), try c.broadcastString(c.isRoot ? "beta: 0.1\n" : nil))
        }
        for (value, text) in results {
            XCTAssertEqual(value, plan)
            XCTAssertEqual(text, "beta: 0.1\n")
        }
    }

    func testMissingValueOnRootFailsOnEveryRank() {
        let results = LocalCommunicator.run(size: 2, timeout: 5) { c in try c.broadcastValue(nil as Int?) }
        for result in results {
            XCTAssertThrowsError(try result.get()) { error in
                XCTAssertTrue("\(error)".contains("passed no value"), "\(error)")
            }
        }
    }

    func testTimeoutNamesTheMissingRank() {
        let start = Date()
        let results = LocalCommunicator.run(size: 3, timeout: 0.3) { c -> Void in
            try c.barrier()
            guard c.rank != 2 else { return }   // rank 2 never reaches the all-reduce
            var values: [Float] = [1]
            try c.allReduceSum(&values)
        }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertNoThrow(try results[2].get())
        for rank in 0..<2 {
            XCTAssertThrowsError(try results[rank].get()) { error in
                guard case CommunicatorError.timeout(let missing, let collective, let sequence, _, let seconds) = error else {
                    return XCTFail("rank \(rank): expected a timeout, got \(error)")
                }
                XCTAssertEqual(missing, [2])
                XCTAssertEqual(collective, "allReduceSum")
                XCTAssertEqual(sequence, 2)
                XCTAssertEqual(seconds, 0.3)
                XCTAssertTrue("\(error)".contains("missing ranks: [2]"), "\(error)")
            }
        }
        XCTAssertLessThan(elapsed, 5, "the timeout should fire after about 0.3 s")
    }

    func testGroupStaysBrokenAfterATimeout() {
        let members = LocalCommunicator.group(size: 2, timeout: 0.2)
        XCTAssertThrowsError(try members[0].barrier())
        XCTAssertThrowsError(try members[1].barrier()) { error in
            guard case CommunicatorError.timeout(let missing, _, _, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(missing, [1])
        }
    }

    func testMismatchedCountsAreReported() {
        let results = LocalCommunicator.run(size: 2, timeout: 5) { c in
            var values = [Double](repeating: 1, count: 3 + c.rank)
            try c.allReduceSum(&values)
        }
        for result in results {
            XCTAssertThrowsError(try result.get()) { error in
                guard case CommunicatorError.mismatch = error else { return XCTFail("expected a mismatch, got \(error)") }
            }
        }
    }

    func testInvalidRootIsRejected() throws {
        let c = LocalCommunicator.group(size: 1)[0]
        var bytes: [UInt8] = [1]
        XCTAssertThrowsError(try c.broadcast(&bytes, root: 1)) { error in
            guard case CommunicatorError.invalidArgument(let call, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(call, "broadcast(_: inout [UInt8], root:)")
        }
    }

    func testSingleRankIsIdentity() throws {
        let c = LocalCommunicator.group(size: 1, timeout: nil)[0]
        var floats: [Float] = [1, -2, 3.5]
        try c.allReduceSum(&floats)
        try c.allReduceMean(&floats)
        XCTAssertEqual(floats, [1, -2, 3.5])
        XCTAssertEqual(try c.gather([1, 2], root: 0), [[1, 2]])
        XCTAssertEqual(try c.allGather([]), [[]])
        try c.barrier()
    }
}

/// A thread-safe counter for the barrier test.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func increment() {
        lock.lock()
        count += 1
        lock.unlock()
    }

    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }
}
