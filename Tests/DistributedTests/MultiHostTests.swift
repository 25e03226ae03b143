// Multi-host runs simulated on one machine: every host is a network namespace of `cluster/netns-cluster.sh`,
// ranks on different hosts talk TCP over a bridge, and a fault on one host (a killed rank, a killed host, a
// cut link) must end the job within seconds with a message naming that host.

import Foundation
import XCTest

/// Runs the built `dualign` binary across simulated hosts through `cluster/netns-cluster.sh`.
///
/// Needs root, iproute2, util-linux `unshare` and Open MPI's `mpirun`: the tests skip with a message where a
/// network namespace cannot be created or mpirun is missing, and (like MPIRunTests) where the binary was
/// not built (`DUALIGN_BINARY` overrides where it is looked for). Each test has its own cluster prefix, so
/// parallel test runs do not collide, and its cluster is torn down even when the test fails.
final class MultiHostTests: XCTestCase {
    private var cluster: Cluster!

    override func setUpWithError() throws {
        cluster = try Cluster.make()
    }

    override func tearDown() {
        cluster?.down()
        cluster = nil
    }

    // MARK: Collectives across hosts

    func testCommCheckOnTwoHosts() throws {
        let run = try cluster.run(hosts: 2, ["-np", "2", cluster.binary.path, "comm-check"])
        XCTAssertEqual(run.status, 0, run.transcript)
        XCTAssertTrue(run.stdoutLines.contains("comm-check ok size=2"), run.transcript)
        XCTAssertEqual(cluster.namespaces(), [], "`run` must tear its cluster down")
    }

    func testCommCheckOnFourHosts() throws {
        let run = try cluster.run(hosts: 4, ["-np", "4", cluster.binary.path, "comm-check"])
        XCTAssertEqual(run.status, 0, run.transcript)
        XCTAssertTrue(run.stdoutLines.contains("comm-check ok size=4"), run.transcript)
        XCTAssertEqual(cluster.namespaces(), [], "`run` must tear its cluster down")
    }

    /// Hosts have their own hostnames, so the collective timeout names the host of the missing rank.
    func testStalledRankOnAnotherHostIsNamed() throws {
        let run = try cluster.run(hosts: 2, ["-np", "2", cluster.binary.path, "comm-check", "--stall-rank", "1", "--timeout", "3"])
        XCTAssertLessThan(run.seconds, 30, run.transcript)
        XCTAssertNotEqual(run.status, 0, run.transcript)
        XCTAssertTrue(run.output.contains("timed out after 3 s on rank 0; missing ranks: [1] (host \(cluster.prefix)-n1)"), run.transcript)
    }

    /// `run` passes on mpirun's exit code and deletes its cluster after a failing job and on TERM; `down` is idempotent.
    func testHarnessAlwaysTearsDown() throws {
        let failing = try cluster.run(hosts: 2, ["-np", "2", "sh", "-c", "exit 3"])
        XCTAssertEqual(failing.status, 3, failing.transcript)
        XCTAssertEqual(cluster.namespaces(), [], "cluster left behind after a failing job")

        let (arguments, _) = Cluster.longJob(cluster.binary)
        let job = try cluster.start(hosts: 2, ["-np", "2", cluster.binary.path] + arguments, options: ["--timeout", "60"])
        XCTAssertTrue(job.waitFor(timeout: 30) { !cluster.call(["ranks", "1"]).output.isEmpty }, "no rank started on host 1")
        job.terminate()
        let stopped = job.finish(timeout: 10)
        XCTAssertEqual(stopped.status, 143, stopped.transcript)
        XCTAssertEqual(cluster.namespaces(), [], "cluster left behind after TERM")
        XCTAssertFalse(FileManager.default.fileExists(atPath: cluster.stateDirectory.path), "state dir left behind")

        XCTAssertEqual(cluster.call(["down"]).status, 0)
        XCTAssertEqual(cluster.call(["down"]).status, 0)
    }

    // MARK: Faults on one host end the job within seconds, naming it

    /// The rank's orted reports its death: "mpirun noticed that process rank 1 … on node <prefix>-n1 exited on signal 9".
    func testKilledRankEndsTheJob() throws {
        let run = try cluster.runWithFault("kill-rank", onHost: 1, hosts: 3)
        XCTAssertNotEqual(run.status, 0, run.transcript)
        XCTAssertLessThan(run.secondsAfterFault, 30, run.transcript)
        XCTAssertTrue(run.output.contains("process rank 1 with PID"), run.transcript)
        XCTAssertTrue(run.output.contains("on node \(cluster.prefix)-n1"), run.transcript)
    }

    /// Every process of the host dies (its kernel resets the connections). Daemonized orteds, so mpirun's
    /// own launch-agent child cannot race the report with a generic "unable to reliably start" message.
    func testKilledHostEndsTheJob() throws {
        let run = try cluster.runWithFault("kill-host", onHost: 1, hosts: 3, options: ["--daemonize"])
        XCTAssertNotEqual(run.status, 0, run.transcript)
        XCTAssertLessThan(run.secondsAfterFault, 30, run.transcript)
        XCTAssertTrue(run.output.contains("lost communication with a remote daemon"), run.transcript)
        XCTAssertTrue(run.output.contains("on node \(cluster.prefix)-n1"), run.transcript)
    }

    /// The host goes silent (no FIN, no RST): only ORTE's OOB keepalive notices, in ~5 s with --fast-fail
    /// (~480 s with Open MPI's defaults).
    func testSilentHostEndsTheJobWithFastFail() throws {
        let run = try cluster.runWithFault("cut-link", onHost: 1, hosts: 3, options: ["--fast-fail"])
        XCTAssertNotEqual(run.status, 0, run.transcript)
        XCTAssertLessThan(run.secondsAfterFault, 30, run.transcript)
        XCTAssertTrue(run.output.contains("lost communication with a remote daemon"), run.transcript)
        XCTAssertTrue(run.output.contains("on node \(cluster.prefix)-n1"), run.transcript)
    }

    // MARK: Training across hosts — TODO(trainer): enable when `dualign train dpo` lands

    /// TODO(trainer): set to true once `dualign train dpo` is merged, and check `dpoConfig` against its final schema.
    private static let trainerReady = true

    /// The same DPO run on N hosts x 1 rank (TCP) and on 1 host x N ranks (shared memory) logs the same metrics.
    func testDPORunAcrossHostsMatchesSingleHost() throws {
        guard Self.trainerReady else { throw XCTSkip("trainer not yet available") }
        for ranks in [2, 4] {
            let singleHost = try cluster.temporaryDirectory("single-\(ranks)")
            let reference = try cluster.run(hosts: 1, slotsPerHost: ranks,
                                            try trainDPO(ranks: ranks, outputDir: singleHost, maxSteps: 4), timeout: 170)
            XCTAssertEqual(reference.status, 0, reference.transcript)

            let acrossHosts = try cluster.temporaryDirectory("hosts-\(ranks)")
            let run = try cluster.run(hosts: ranks, try trainDPO(ranks: ranks, outputDir: acrossHosts, maxSteps: 4), timeout: 170)
            XCTAssertEqual(run.status, 0, run.transcript)
            try assertSameMetrics(acrossHosts, singleHost, steps: 4)
        }
    }

    /// A host dies after a checkpoint: the job aborts naming it, and rerunning the same command resumes from
    /// the last complete checkpoint (one with `DONE`) and ends with the metrics of an uninterrupted run.
    func testHostFailureThenResume() throws {
        guard Self.trainerReady else { throw XCTSkip("trainer not yet available") }
        let reference = try cluster.temporaryDirectory("uninterrupted")
        let clean = try cluster.run(hosts: 3, try trainDPO(ranks: 3, outputDir: reference, maxSteps: 6, checkpointEvery: 2), timeout: 170)
        XCTAssertEqual(clean.status, 0, clean.transcript)

        let runDir = try cluster.temporaryDirectory("resumed")
        let command = try trainDPO(ranks: 3, outputDir: runDir, maxSteps: 6, checkpointEvery: 2)
        let job = try cluster.start(hosts: 3, command, options: ["--daemonize", "--fast-fail", "--timeout", "170"])
        let firstCheckpoint = runDir.appendingPathComponent("step-00000002/DONE")
        XCTAssertTrue(job.waitFor(timeout: 120) { FileManager.default.fileExists(atPath: firstCheckpoint.path) },
                      "no complete checkpoint at step 2:\n\(job.finish(timeout: 1).transcript)")
        let faultAt = Date()
        try cluster.inject("kill-host", host: 1)
        let failed = job.finish(timeout: 60)
        XCTAssertNotEqual(failed.status, 0, failed.transcript)
        XCTAssertLessThan(failed.seconds(since: faultAt), 30, failed.transcript)
        XCTAssertTrue(failed.output.contains("on node \(cluster.prefix)-n1"), failed.transcript)

        // Resume: the same command again, on a fresh cluster.
        let resumed = try cluster.run(hosts: 3, command, timeout: 170)
        XCTAssertEqual(resumed.status, 0, resumed.transcript)
        XCTAssertTrue(resumed.output.contains("resuming from step-"), resumed.transcript)
        try assertSameMetrics(runDir, reference, steps: 6)
    }

    /// `mpirun` arguments of a tiny DPO run on a small random model. TODO(trainer): check the keys against the
    /// final schema (launch/configs/dpo-hh-smollm2.yaml); `init-model` needs the tokenizer of `launch/assets.sh model`.
    private func trainDPO(ranks: Int, outputDir: URL, maxSteps: Int, checkpointEvery: Int = 0) throws -> [String] {
        let model = cluster.scratch.appendingPathComponent("tiny.gguf")
        if !FileManager.default.fileExists(atPath: model.path) {
            let made = Cluster.capture(cluster.binary.path, ["init-model", "--out", model.path], environment: Cluster.cleanEnvironment())
            guard made.status == 0 else { throw XCTSkip("cannot make a tiny model (`dualign init-model`): \(made.output)") }
        }
        let data = try TestDataRoot.require("hh-rlhf/harmless-base-test.jsonl.gz")
        let config = """
        model: \(model.path)
        outputDir: \(outputDir.path)
        seed: 0
        data:
          template: hh-rlhf
          maxLength: 64
          maxPromptLength: 40
          maxPairs: 48
          datasets:
            - schema: hh-rlhf
              paths: [\(data.path)]
              evalFraction: 0.05
        optimizer: {globalBatchSize: 12, microBatchSize: 1, maxSteps: \(maxSteps), learningRate: 1.0e-4}
        checkpoint: {every: \(checkpointEvery), keepLast: 2}
        evaluation: {every: 0, maxPairs: 8}
        distributed: {threads: 1, collectiveTimeout: 60}   # 1 BLAS thread per rank: the hosts share this machine's cores
        """
        let file = outputDir.deletingLastPathComponent().appendingPathComponent(outputDir.lastPathComponent + ".yaml")
        try config.write(to: file, atomically: true, encoding: .utf8)
        return ["-np", String(ranks), cluster.binary.path, "train", "dpo", "--config", file.path]
    }

    /// Both runs logged steps 1...steps with the same loss (to float rounding: only the transport differs).
    private func assertSameMetrics(_ run: URL, _ reference: URL, steps: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        func losses(_ dir: URL) throws -> [Int: Double] {
            let text = try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            var byStep: [Int: Double] = [:]
            for row in text.split(separator: "\n") {
                guard let object = try JSONSerialization.jsonObject(with: Data(row.utf8)) as? [String: Any],
                      let step = object["step"] as? Int, let loss = object["loss"] as? Double else { continue }
                XCTAssertNil(byStep[step], "step \(step) logged twice in \(dir.path)", file: file, line: line)
                byStep[step] = loss
            }
            return byStep
        }
        let got = try losses(run), want = try losses(reference)
        XCTAssertEqual(got.keys.sorted(), Array(1...steps), file: file, line: line)
        for (step, loss) in want {
            XCTAssertEqual(got[step] ?? .nan, loss, accuracy: 1e-5 * max(1, abs(loss)), "loss at step \(step)", file: file, line: line)
        }
    }
}

// MARK: - The harness, driven through Process

/// One simulated cluster (namespace prefix) and the commands that act on it.
private struct Cluster {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = packageRoot.appendingPathComponent("cluster/netns-cluster.sh")

    let binary: URL
    let prefix: String
    let environment: [String: String]
    let scratch: URL

    /// A cluster with a fresh prefix, or XCTSkip saying what is missing.
    static func make() throws -> Cluster {
        if let reason = unavailable { throw XCTSkip(reason) }
        guard let binary = dualignBinary() else {
            throw XCTSkip("no built dualign binary beside the test bundle (\(Bundle(for: MultiHostTests.self).bundleURL.path)); run `swift build` first or set DUALIGN_BINARY")
        }
        guard succeeds(binary.path, ["comm-check", "--help"]) else {
            throw XCTSkip("\(binary.path) has no `comm-check` subcommand")
        }
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        let prefix = "mh" + String((0..<6).map { _ in letters.randomElement()! })
        // The harness's defaults (subnet derived from the prefix, state dir, Open MPI's keepalive) unless a test asks.
        var environment = cleanEnvironment().filter { key, _ in !key.hasPrefix("DNC_") && key != "DUALIGN_OOB_KEEPALIVE" }
        environment["DNC_PREFIX"] = prefix
        environment["OPENBLAS_NUM_THREADS"] = "1"           // the simulated hosts share this machine's cores
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("multihost-\(prefix)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        return Cluster(binary: binary, prefix: prefix, environment: environment, scratch: scratch)
    }

    /// Why multi-host tests cannot run here, or nil. Probed once: `ip netns add` (root, a kernel with network
    /// namespaces, iproute2), then the other tools.
    static let unavailable: String? = {
        for tool in ["mpirun", "orted"] where onPath(tool) == nil {
            return "\(tool) is not on PATH; install openmpi-bin to run multi-host tests"
        }
        for tool in ["ip", "unshare", "bash", "timeout"] where onPath(tool) == nil {
            return "\(tool) is not on PATH; multi-host tests need iproute2, util-linux and coreutils"
        }
        let probe = "mhprobe\(getpid() % 100_000)"
        let (status, output) = capture(onPath("ip")!.path, ["netns", "add", probe])
        defer { _ = capture(onPath("ip")!.path, ["netns", "del", probe]) }
        guard status == 0 else {
            return "cannot create a network namespace (`ip netns add` failed: \(output.trimmingCharacters(in: .whitespacesAndNewlines))); multi-host tests need root and network namespaces"
        }
        return nil
    }()

    // Running jobs

    /// `netns-cluster.sh run HOSTS OPTIONS -- MPIRUN-ARGS` to the end (its cluster is always torn down).
    func run(hosts: Int, slotsPerHost: Int = 1, _ mpirunArguments: [String], options: [String] = [],
             timeout: TimeInterval = 90) throws -> Finished {
        try start(hosts: hosts, slotsPerHost: slotsPerHost, mpirunArguments, options: options + ["--timeout", String(Int(timeout))])
            .finish(timeout: timeout + 20)
    }

    /// Starts `netns-cluster.sh run …` in the background.
    func start(hosts: Int, slotsPerHost: Int = 1, _ mpirunArguments: [String], options: [String] = []) throws -> Job {
        var environment = self.environment
        environment["DNC_SLOTS"] = String(slotsPerHost)
        return try Job(Self.script.path, ["run", String(hosts)] + options + ["--"] + mpirunArguments,
                       environment: environment, directory: scratch)
    }

    /// Runs a long MPI job on `hosts` hosts, injects `fault` (kill-rank, kill-host, cut-link) on `host` once
    /// every rank is running, and waits for the job to end.
    func runWithFault(_ fault: String, onHost host: Int, hosts: Int, options: [String] = []) throws -> Finished {
        let (arguments, readyLine) = Self.longJob(binary)
        let job = try start(hosts: hosts, ["-np", String(hosts), binary.path] + arguments, options: options + ["--timeout", "90"])
        let ready: Bool
        if let readyLine {
            ready = job.waitFor(timeout: 60) { job.stdout.contains(readyLine) }
        } else {
            // No progress line: wait until every host runs its rank, then give MPI_Init and the checks time.
            ready = job.waitFor(timeout: 60) { (0..<hosts).allSatisfy { !self.call(["ranks", String($0)]).output.isEmpty } }
            if ready { usleep(2_500_000) }
        }
        guard ready, job.isRunning else {
            let early = job.finish(timeout: 5)
            XCTFail("the job did not get going on \(hosts) hosts:\n\(early.transcript)")
            return early
        }
        let faultAt = Date()
        try inject(fault, host: host)
        var finished = job.finish(timeout: 110)
        finished.secondsAfterFault = finished.seconds(since: faultAt)
        print("MultiHostTests: \(fault) on host \(host) of \(hosts)\(options.isEmpty ? "" : " (\(options.joined(separator: " ")))"): "
              + "job ended \(String(format: "%.1f", finished.secondsAfterFault)) s after the fault, exit \(finished.status)")
        XCTAssertEqual(namespaces(), [], "`run` must tear its cluster down after a fault")
        return finished
    }

    /// A collective loop that runs until a fault ends it: `comm-check --iterations` when the binary has it
    /// (ready once rank 0 prints its start line), else an endless `--bench`.
    static func longJob(_ binary: URL) -> (arguments: [String], readyLine: String?) {
        if capture(binary.path, ["comm-check", "--help"]).output.contains("--iterations") {
            return (["comm-check", "--iterations", "100000", "--sleep", "0.01", "--elements", "4096"], "comm-check loop started")
        }
        return (["comm-check", "--bench", "10000000", "--elements", "16384"], nil)
    }

    func inject(_ fault: String, host: Int) throws {
        let result = call([fault, String(host)])
        guard result.status == 0 else { throw HarnessError("netns-cluster.sh \(fault) \(host) failed: \(result.output)") }
    }

    // Cluster commands

    func call(_ arguments: [String]) -> (status: Int32, output: String) {
        Self.capture(Self.script.path, arguments, environment: environment)
    }

    func down() {
        _ = call(["down"])
        try? FileManager.default.removeItem(at: scratch)
    }

    /// This cluster's namespaces that exist now.
    func namespaces() -> [String] {
        let (_, output) = Self.capture(Self.onPath("ip")!.path, ["netns", "list"])
        return output.split(separator: "\n").map { String($0.split(separator: " ")[0]) }.filter { $0.hasPrefix(prefix + "-") }.sorted()
    }

    /// The harness's hostfile, agent and session dirs (`DNC_STATE`'s default).
    var stateDirectory: URL {
        URL(fileURLWithPath: environment["TMPDIR"] ?? "/tmp").appendingPathComponent("netns-cluster.\(prefix)")
    }

    func temporaryDirectory(_ name: String) throws -> URL {
        let url = scratch.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    // Processes

    static func capture(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return (-1, "\(executable): \(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func succeeds(_ executable: String, _ arguments: [String]) -> Bool {
        capture(executable, arguments, environment: cleanEnvironment()).status == 0
    }

    /// The environment less a singleton `MPI_Init`'s variables (see Jobs).
    static func cleanEnvironment() -> [String: String] { Jobs.singletonFreeEnvironment() }

    /// The built `dualign` (see Jobs), or nil.
    static func dualignBinary() -> URL? { try? Jobs.dualignBinary() }

    static func onPath(_ name: String) -> URL? { Jobs.onPath(name) }
}

/// A background `netns-cluster.sh` invocation with its output in files.
private final class Job {
    private let process = Process()
    private let outURL: URL, errURL: URL
    private let out: FileHandle, err: FileHandle
    let started = Date()

    init(_ executable: String, _ arguments: [String], environment: [String: String], directory: URL) throws {
        let name = UUID().uuidString
        outURL = directory.appendingPathComponent("\(name).out")
        errURL = directory.appendingPathComponent("\(name).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        out = try FileHandle(forWritingTo: outURL)
        err = try FileHandle(forWritingTo: errURL)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try process.run()
    }

    var isRunning: Bool { process.isRunning }
    func terminate() { process.terminate() }
    var stdout: String { (try? String(contentsOf: outURL, encoding: .utf8)) ?? "" }

    /// Polls `condition` until it holds (true) or the job ends or `timeout` passes (false).
    func waitFor(timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline && process.isRunning {
            if condition() { return true }
            usleep(200_000)
        }
        return condition()
    }

    /// Waits for the end; past `timeout`, TERM (the harness then tears its cluster down), later KILL.
    func finish(timeout: TimeInterval) -> Finished {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        var timedOut = false
        if process.isRunning {
            timedOut = true
            process.terminate()
            let grace = Date().addingTimeInterval(15)
            while process.isRunning && Date() < grace { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        let ended = Date()
        try? out.close()
        try? err.close()
        if timedOut { XCTFail("netns-cluster.sh \(process.arguments?.joined(separator: " ") ?? "") did not finish within \(Int(timeout)) s") }
        return Finished(status: process.terminationStatus, stdout: stdout,
                        stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "", started: started, ended: ended)
    }
}

private struct Finished {
    var status: Int32
    var stdout: String
    var stderr: String
    var started: Date
    var ended: Date
    var secondsAfterFault: Double = .nan

    var seconds: Double { ended.timeIntervalSince(started) }
    func seconds(since moment: Date) -> Double { ended.timeIntervalSince(moment) }
    var output: String { stdout + "\n" + stderr }
    var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
    var transcript: String {
        "exit \(status) after \(String(format: "%.1f", seconds)) s\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)"
    }
}

private struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
