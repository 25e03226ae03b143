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

    private struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
        var seconds: Double
        var transcript: String { "exit \(status) after \(String(format: "%.1f", seconds)) s\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
    }

    private func mpirun(np: Int, _ arguments: [String], timeout: TimeInterval) throws -> Run {
        guard let launcher = Self.onPath("mpirun") else { throw XCTSkip("mpirun is not on PATH; install openmpi-bin to run multi-rank tests") }
        guard let binary = Self.dualignBinary() else {
            throw XCTSkip("no built dualign binary beside the test bundle (\(Bundle(for: Self.self).bundleURL.path)); run `swift build` first or set DUALIGN_BINARY")
        }
        try Self.requireSubcommand(binary, "comm-check")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mpirun-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let outURL = directory.appendingPathComponent("stdout"), errURL = directory.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)

        let process = Process()
        process.executableURL = launcher
        process.arguments = ["--allow-run-as-root", "--oversubscribe", "-np", String(np), binary.path] + arguments
        process.environment = Self.cleanEnvironment()
        process.standardOutput = out
        process.standardError = err
        let start = Date()
        try process.run()
        while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(50_000) }
        if process.isRunning {
            process.terminate()
            usleep(500_000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            XCTFail("mpirun did not finish within \(Int(timeout)) s")
        }
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        try out.close()
        try err.close()
        return Run(status: process.terminationStatus,
                   stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                   stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "", seconds: seconds)
    }

    /// This process's environment without what a singleton `MPI_Init` (another test) put there:
    /// inherited, those variables make `mpirun` think it runs inside an existing job.
    private static func cleanEnvironment() -> [String: String] {
        let singletonPrefixes = ["PMIX_", "OMPI_MCA_ess", "OMPI_MCA_orte_", "OMPI_MCA_pmix", "OMPI_APP_CTX_", "OMPI_COMM_WORLD",
                                 "OMPI_UNIVERSE_SIZE", "OMPI_NUM_APP_CTX", "OMPI_FIRST_RANKS", "OMPI_FILE_LOCATION", "OMPI_MCA_initial_wdir"]
        var environment = ProcessInfo.processInfo.environment.filter { key, _ in !singletonPrefixes.contains { key.hasPrefix($0) } }
        environment["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        return environment
    }

    /// The `dualign` executable in the directory of this test bundle or one of its parents.
    private static func dualignBinary() -> URL? {
        if let path = ProcessInfo.processInfo.environment["DUALIGN_BINARY"] { return URL(fileURLWithPath: path) }
        var directory = Bundle(for: MPIRunTests.self).bundleURL
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("dualign")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue,
               FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
            directory.deleteLastPathComponent()
        }
        return nil
    }

    /// Skips when the binary predates `subcommand` (the command tree is registered in Dualign.swift).
    private static func requireSubcommand(_ binary: URL, _ subcommand: String) throws {
        let process = Process()
        process.executableURL = binary
        process.arguments = [subcommand, "--help"]
        process.environment = cleanEnvironment()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            throw XCTSkip("\(binary.path) has no `\(subcommand)` subcommand; register CommCheck.self in Sources/dualign/Dualign.swift")
        }
    }

    private static func onPath(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { URL(fileURLWithPath: String($0)).appendingPathComponent(name) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }
}
