// Running the built `dualign` binary from tests, alone or under `mpirun`, with a time bound.

import Foundation
import XCTest

/// One finished process: exit status, captured output and wall time.
struct JobRun {
    var status: Int32
    var stdout: String
    var stderr: String
    var seconds: Double
    var transcript: String { "exit \(status) after \(String(format: "%.1f", seconds)) s\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

enum Jobs {
    /// Runs `dualign arguments` (under `mpirun -np np` when np is given) and waits at most `timeout` seconds;
    /// `whileRunning` is called every 50 ms with the process (fault injection), until it returns false.
    static func run(np: Int?, _ arguments: [String], timeout: TimeInterval, environment extra: [String: String] = [:],
                    whileRunning: ((Process) -> Bool)? = nil) throws -> JobRun {
        let binary = try dualignBinary()
        let process = Process()
        if let np {
            guard let launcher = onPath("mpirun") else { throw XCTSkip("mpirun is not on PATH; install openmpi-bin to run multi-rank tests") }
            process.executableURL = launcher
            process.arguments = ["--allow-run-as-root", "--oversubscribe", "-np", String(np), binary.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dualign-job-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let outURL = directory.appendingPathComponent("stdout"), errURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        process.environment = cleanEnvironment().merging(extra) { $1 }
        process.standardOutput = out
        process.standardError = err
        let start = Date()
        try process.run()
        var watching = whileRunning != nil
        while process.isRunning && Date().timeIntervalSince(start) < timeout {
            if watching { watching = whileRunning!(process) }
            usleep(50_000)
        }
        if process.isRunning {
            process.terminate()
            usleep(500_000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            XCTFail("\(arguments.first ?? "job") did not finish within \(Int(timeout)) s")
        }
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        try out.close()
        try err.close()
        return JobRun(status: process.terminationStatus,
                      stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "", seconds: seconds)
    }

    /// This process's environment without what a singleton `MPI_Init` (another test) put there:
    /// inherited, those variables make `mpirun` think it runs inside an existing job.
    /// Oversubscription is allowed (tests may start more ranks than cores).
    static func cleanEnvironment() -> [String: String] {
        var environment = singletonFreeEnvironment()
        environment["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        return environment
    }

    /// This process's environment less the variables of a singleton `MPI_Init`.
    static func singletonFreeEnvironment() -> [String: String] {
        let singletonPrefixes = ["PMIX_", "OMPI_MCA_ess", "OMPI_MCA_orte_", "OMPI_MCA_pmix", "OMPI_APP_CTX_", "OMPI_COMM_WORLD",
                                 "OMPI_UNIVERSE_SIZE", "OMPI_NUM_APP_CTX", "OMPI_FIRST_RANKS", "OMPI_FILE_LOCATION", "OMPI_MCA_initial_wdir"]
        return ProcessInfo.processInfo.environment.filter { key, _ in !singletonPrefixes.contains { key.hasPrefix($0) } }
    }

    /// The `dualign` executable beside the test bundle (or DUALIGN_BINARY); skips when there is none.
    static func dualignBinary() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["DUALIGN_BINARY"] { return URL(fileURLWithPath: path) }
        var directory = Bundle(for: JobMarker.self).bundleURL
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("dualign")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue,
               FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
            directory.deleteLastPathComponent()
        }
        throw XCTSkip("no built dualign binary beside the test bundle (\(Bundle(for: JobMarker.self).bundleURL.path)); run `swift build` first or set DUALIGN_BINARY")
    }

    /// Skips when the binary predates `subcommand`.
    static func requireSubcommand(_ subcommand: String) throws {
        let process = Process()
        process.executableURL = try dualignBinary()
        process.arguments = [subcommand, "--help"]
        process.environment = cleanEnvironment()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        if process.terminationStatus != 0 { throw XCTSkip("the dualign binary has no `\(subcommand)` subcommand") }
    }

    /// The executable `name` on PATH or in the system directories.
    static func onPath(_ name: String) -> URL? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
        return path.split(separator: ":").map { URL(fileURLWithPath: String($0)).appendingPathComponent(name) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }
}

/// A class whose bundle locates the test bundle.
final class JobMarker {}
