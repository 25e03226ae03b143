// `dualign comm-check` (hidden): runs every collective over MPI with known inputs and verifies them.

import ArgumentParser
import Distributed
import Foundation

/// Checks the MPI communicator end to end under `mpirun`: every collective, rank-dependent inputs.
///
/// Rank 0 prints `comm-check ok size=N`, or `comm-check FAILED …` and every rank exits 1.
/// `--stall-rank R` makes rank R sleep forever before a collective, so the others hit the collective
/// timeout (`--timeout`) and abort the job naming R. `--bench K` times all-reduces of
/// `--elements` floats with and without the timeout machinery (the watchdog, or with `--polling` the polled
/// non-blocking calls).
struct CommCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "comm-check",
        abstract: "Verify every MPI collective across the ranks of this job (run under mpirun).",
        shouldDisplay: false)

    @Option(parsing: .unconditional, help: "Collective timeout in seconds (default: the communicator's, 600 s).")
    var timeout: Double?
    @Option(parsing: .unconditional, help: "Rank that sleeps forever before a collective, to exercise the timeout.")
    var stallRank: Int?
    @Option(parsing: .unconditional, help: "Rank that passes a longer buffer to an all-reduce than the others, to exercise mismatch detection.")
    var mismatchRank: Int?
    @Flag(help: "Watch collectives by polling non-blocking calls instead of with the watchdog thread.")
    var polling = false
    @Option(parsing: .unconditional, help: "Time this many all-reduces per mode after the checks.")
    var bench = 0
    @Option(parsing: .unconditional, help: "Floats per benchmark all-reduce.")
    var elements = 1 << 20
    @Option(parsing: .unconditional, help: "After the checks, run this many checked all-reduces of --elements floats (a long-running job for fault tests).")
    var iterations = 0
    @Option(name: .customLong("sleep"), parsing: .unconditional, help: "Seconds to sleep after each --iterations all-reduce.")
    var sleepSeconds: Double = 0

    func validate() throws {
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
        if bench < 0 || elements < 1 { throw ValidationError("--bench must be at least 0 and --elements at least 1") }
        if iterations < 0 || sleepSeconds < 0 { throw ValidationError("--iterations and --sleep must be at least 0") }
    }

    func run() throws {
        let world = try MPICommunicator.world()
        if let timeout { world.collectiveTimeout = timeout }
        if polling { world.timeoutMechanism = .polling }
        let configured = world.collectiveTimeout

        for (name, rank) in [("--stall-rank", stallRank), ("--mismatch-rank", mismatchRank)] {
            if let rank, rank < 0 || rank >= world.size {
                if world.isRoot { say("comm-check FAILED: \(name) \(rank) is not a rank of a world of size \(world.size)") }
                throw ExitCode(1)
            }
        }
        if let stallRank {
            try world.barrier()
            if world.rank == stallRank { while true { sleep(3600) } }
            var values = [Float](repeating: 1, count: 16)
            try world.allReduceSum(&values)
            if world.isRoot { say("comm-check FAILED: the all-reduce completed although rank \(stallRank) stalled") }
            throw ExitCode(1)
        }

        if let mismatchRank {
            try world.barrier()
            var values = [Float](repeating: 1, count: world.rank == mismatchRank ? 17 : 16)
            try world.allReduceSum(&values)
            try world.barrier()
            if world.isRoot { say("comm-check FAILED: all-reduces of 16 and 17 floats were not reported as a mismatch") }
            throw ExitCode(1)
        }

        var failures: [String] = []
        let mechanism = world.timeoutMechanism
        for mode in Self.modes(world, timeout: configured) {
            mode.apply(world)
            failures += try Self.checkAll(world).map { "\(mode.label): \($0)" }
            world.maxElementsPerCall = Int(Int32.max)
        }
        world.collectiveTimeout = configured
        world.timeoutMechanism = mechanism

        // Every rank learns whether any rank failed, so all exit the same way.
        let anyFailed = try world.allReduceMax(failures.isEmpty ? 0 : 1)
        let reports = try world.gather(Array(failures.joined(separator: "; ").utf8), root: 0)
        if let reports, anyFailed > 0 {
            let lines = reports.enumerated().filter { !$0.element.isEmpty }
                .map { "rank \($0.offset): \(String(decoding: $0.element, as: UTF8.self))" }
            say("comm-check FAILED size=\(world.size): " + lines.joined(separator: " | "))
        }
        if anyFailed > 0 { throw ExitCode(1) }

        if bench > 0 {
            try benchmark(world, modes: [Mode(label: "blocking", timeout: nil, mechanism: mechanism),
                                         Mode(label: "\(mechanism)", timeout: configured ?? 600, mechanism: mechanism)])
            world.collectiveTimeout = configured
            world.timeoutMechanism = mechanism
        }
        if iterations > 0 { try loop(world) }
        if world.isRoot { say("comm-check ok size=\(world.size)") }
        try MPICommunicator.finalize()
    }

    /// Runs each collective with inputs that depend on the rank and returns what did not match.
    static func checkAll(_ world: MPICommunicator) throws -> [String] {
        let n = world.size, r = world.rank
        var failures: [String] = []
        func expect(_ ok: Bool, _ what: @autoclosure () -> String) { if !ok { failures.append(what()) } }

        // Sum and mean of floats: rank r holds (r + 1) * (i % 7); every value is a small integer, so sums are exact.
        let count = 1000
        var floats = (0..<count).map { Float(r + 1) * Float($0 % 7) }
        try world.allReduceSum(&floats)
        let triangle = Float(n * (n + 1) / 2)
        expect(floats == (0..<count).map { triangle * Float($0 % 7) }, "allReduceSum floats \(floats.prefix(4))")
        var means = [Float](repeating: Float(r), count: 10)
        try world.allReduceMean(&means)
        expect(means.allSatisfy { abs($0 - Float(n - 1) / 2) < 1e-6 }, "allReduceMean floats \(means.prefix(2))")

        var doubles = [Double(r), Double(r * r), 0.5]
        try world.allReduceSum(&doubles)
        let squares = (0..<n).reduce(0) { $0 + $1 * $1 }
        expect(doubles == [Double(n * (n - 1) / 2), Double(squares), 0.5 * Double(n)], "allReduceSum doubles \(doubles)")
        var maxima = [Double(r), -Double(r), Double(r % 2)]
        try world.allReduceMax(&maxima)
        expect(maxima == [Double(n - 1), 0, n > 1 ? 1 : 0], "allReduceMax \(maxima)")

        // Broadcast bytes from the last rank (lengths differ per rank), floats from rank 0.
        let last = n - 1
        var bytes = Array("rank \(r) says hello".utf8)
        try world.broadcast(&bytes, root: last)
        expect(bytes == Array("rank \(last) says hello".utf8), "broadcast bytes \(String(decoding: bytes, as: UTF8.self))")
        var empty: [UInt8] = r == 0 ? [] : [1, 2, 3]
        try world.broadcast(&empty, root: 0)
        expect(empty.isEmpty, "broadcast of empty bytes gave \(empty.count) bytes")
        var weights = (0..<count).map { r == 0 ? Float($0) * 0.25 : -1 }
        try world.broadcast(&weights, root: 0)
        expect(weights == (0..<count).map { Float($0) * 0.25 }, "broadcast floats \(weights.prefix(4))")

        // Variable-length gathers: rank r sends r bytes of value r (rank 0's payload is empty).
        let payload = [UInt8](repeating: UInt8(r % 256), count: r)
        let expected = (0..<n).map { [UInt8](repeating: UInt8($0 % 256), count: $0) }
        let gathered = try world.gather(payload, root: last)
        expect(r == last ? gathered == expected : gathered == nil, "gather to rank \(last) gave \(gathered.map { $0.map(\.count) } as Any)")
        let everyone = try world.allGather(payload)
        expect(everyone == expected, "allGather gave lengths \(everyone.map(\.count))")
        try world.barrier()

        // Helpers: a Codable value and a string from rank 0.
        struct Settings: Codable, Equatable { var name: String; var steps: Int; var beta: Double }
        let sent = Settings(name: "mocan", steps: 1200, beta: 0.1)
        let settings = try world.broadcastValue(r == 0 ? sent : nil)
        expect(settings == sent, "broadcastValue gave \(settings)")
        let text = try world.broadcastString(r == 0 ? "run: ✓" : nil)
        expect(text == "run: ✓", "broadcastString gave \(text)")
        return failures
    }

    /// One way of running collectives: timeout on or off, how it is watched, how buffers are split.
    struct Mode {
        var label: String
        var timeout: TimeInterval?
        var mechanism: MPICommunicator.TimeoutMechanism
        var chunk = Int(Int32.max)

        func apply(_ world: MPICommunicator) {
            world.collectiveTimeout = timeout
            world.timeoutMechanism = mechanism
            world.maxElementsPerCall = chunk
        }
    }

    /// Every mode this MPI supports: the watchdog needs MPI_THREAD_MULTIPLE; "chunked" splits buffers into 3-element calls.
    static func modes(_ world: MPICommunicator, timeout: TimeInterval?) -> [Mode] {
        let seconds = timeout ?? 600
        let watched: MPICommunicator.TimeoutMechanism = world.timeoutMechanism
        var modes = [Mode(label: "blocking", timeout: nil, mechanism: watched)]
        if watched == .watchdog { modes.append(Mode(label: "watchdog", timeout: seconds, mechanism: .watchdog)) }
        modes.append(Mode(label: "polling", timeout: seconds, mechanism: .polling))
        modes.append(Mode(label: "chunked", timeout: seconds, mechanism: watched, chunk: 3))
        return modes
    }

    /// `iterations` all-reduces whose sums are checked exactly, `sleep` seconds apart.
    private func loop(_ world: MPICommunicator) throws {
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: elements)
        defer { buffer.deallocate() }
        let expected = Float(world.size * (world.size + 1) / 2)
        for i in 0..<iterations {
            buffer.initialize(repeating: Float(world.rank + 1), count: elements)
            try world.allReduceSum(buffer, count: elements)
            if buffer[0] != expected || buffer[elements - 1] != expected {
                say("comm-check FAILED loop iteration \(i): got \(buffer[0]), expected \(expected)")
                throw ExitCode(1)
            }
            if i == 0 && world.isRoot { say("comm-check loop started size=\(world.size)") }
            if sleepSeconds > 0 { usleep(useconds_t(sleepSeconds * 1e6)) }
        }
        if world.isRoot { say("comm-check loop done iterations=\(iterations)") }
    }

    /// Times `bench` all-reduces of `elements` floats in each mode.
    private func benchmark(_ world: MPICommunicator, modes: [Mode]) throws {
        var slab = [Float](repeating: 1, count: elements)
        var samples = [[Double]](repeating: [], count: modes.count)
        for mode in modes {
            mode.apply(world)
            for _ in 0..<3 { try world.allReduceSum(&slab) }   // warm-up
        }
        // Alternate the modes call by call, so drift on a noisy machine hits them alike.
        for _ in 0..<bench {
            for (index, mode) in modes.enumerated() {
                mode.apply(world)
                try world.barrier()
                let start = DispatchTime.now().uptimeNanoseconds
                try world.allReduceSum(&slab)
                samples[index].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3)
            }
        }
        var report: [String] = []
        for (index, mode) in modes.enumerated() {
            let sorted = samples[index].sorted()
            // The slowest rank's median is the all-reduce's cost.
            let median = try world.allReduceMax(sorted[sorted.count / 2])
            let best = try world.allReduceMax(sorted[0])
            report.append(String(format: "%@ median %.1f µs (best %.1f)", mode.label, median, best))
        }
        if world.isRoot { say("comm-check bench allReduceSum \(elements) floats, \(bench) per mode, size=\(world.size): " + report.joined(separator: "; ")) }
    }

    private func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
