// Real multi-rank runs: `mpirun -np 2 dualign comm-check`, and a stalled rank that the timeout reports.

import Foundation
import XCTest

/// Runs the built `dualign` binary under `mpirun` with two ranks.
///
/// The binary is found beside this test bundle (the same build directory), or at `DUALIGN_BINARY`.
/// The tests skip with a message when `mpirun` is not on PATH or the binary was not built.
final class MPIRunTests: XCTestCase {
    func testCommCheckPassesOnTwoRanks() throws {
        let run = try mpirun(np: 2, ["comm-check"], timeout: 60)
        XCTAssertEqual(run.status, 0, "comm-check failed:\n\(run.transcript)")
        XCTAssertTrue(run.stdout.split(separator: "\n").contains("comm-check ok size=2"), run.transcript)
    }

    func testStalledRankIsNamedAndTheJobAborts() throws {
        let run = try mpirun(np: 2, ["comm-check", "--stall-rank", "1", "--timeout", "3"], timeout: 60)
        XCTAssertLessThan(run.seconds, 20, "the job should end soon after the 3 s collective timeout:\n\(run.transcript)")
        XCTAssertNotEqual(run.status, 0, run.transcript)
        XCTAssertTrue(run.stderr.contains("dualign: collective allReduceSum #"), run.transcript)
        XCTAssertTrue(run.stderr.contains("timed out after 3 s on rank 0; missing ranks: [1] (host "), run.transcript)
    }

    func testStalledRootIsNamedByTheOtherRank() throws {
        let run = try mpirun(np: 2, ["comm-check", "--stall-rank", "0", "--timeout", "3"], timeout: 60)
        XCTAssertLessThan(run.seconds, 20, run.transcript)
        XCTAssertNotEqual(run.status, 0, run.transcript)
        XCTAssertTrue(run.stderr.contains("timed out after 3 s on rank 1 (host "), run.transcript)
        XCTAssertTrue(run.stderr.contains("missing ranks: [0] (host "), run.transcript)
    }

    func testStalledRankIsNamedWhenPolling() throws {
        let run = try mpirun(np: 2, ["comm-check", "--stall-rank", "1", "--timeout", "3", "--polling"], timeout: 60)
        XCTAssertLessThan(run.seconds, 20, run.transcript)
        XCTAssertNotEqual(run.status, 0, run.transcript)
        XCTAssertTrue(run.stderr.contains("timed out after 3 s on rank 0; missing ranks: [1] (host "), run.transcript)
    }

    func testMismatchedCountsAbortTheJob() throws {
        let run = try mpirun(np: 2, ["comm-check", "--mismatch-rank", "1", "--timeout", "10"], timeout: 60)
        XCTAssertLessThan(run.seconds, 20, run.transcript)
        XCTAssertNotEqual(run.status, 0, run.transcript)
        XCTAssertTrue(run.stderr.contains("dualign: collective mismatch at #3: rank 0 called allReduceSum(count 16) but rank 1 (host "),
                      run.transcript)
    }

    // MARK: Running mpirun

    private func mpirun(np: Int, _ arguments: [String], timeout: TimeInterval) throws -> JobRun {
        try Jobs.requireSubcommand("comm-check")
        return try Jobs.run(np: np, arguments, timeout: timeout)
    }
}
