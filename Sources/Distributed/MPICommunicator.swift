// The MPI implementation of Communicator, with a collective timeout that names the missing ranks.

import CMPI
import Foundation

/// `Communicator` over MPI's world: one shared instance per process, initialised lazily.
///
/// Started without `mpirun`, the process initialises MPI as a singleton (world size 1). Collectives
/// run on a private duplicate of `MPI_COMM_WORLD` with `MPI_ERRORS_RETURN`; every failing call throws
/// `CommunicatorError.mpi` carrying `MPI_Error_string` and the call site.
///
/// **Timeout.** With `collectiveTimeout` set (the default, 600 s), before each collective every non-root
/// rank sends rank 0 a 32-byte arrival notice (sequence number, operation, count, root) on a second
/// private communicator, so rank 0 knows who reached which collective. The collective itself is a plain
/// blocking MPI call watched by a watchdog thread (`MPI_THREAD_MULTIPLE`); without that thread level it is
/// non-blocking (`MPI_Iallreduce`, `MPI_Ibcast`, …) polled with `MPI_Test` (slower: Open MPI 4.1's
/// non-blocking all-reduce is several times slower than the blocking one). A collective still open at the
/// deadline prints one line to stderr, e.g.
/// `dualign: collective allReduceSum #42 timed out after 30 s on rank 0; missing ranks: [1] (host node-b)`,
/// and ends the job with `MPI_Abort(…, 3)`. A waiting rank 0 tells the others it is there; another rank
/// that times out while rank 0 waits too lets rank 0 report first, and otherwise names rank 0 as missing.
/// Rank 0 also aborts when a rank announces a different operation, count or root for the same collective
/// slot (checked at rank 0's next collective, while it waits, or when the collective fails). Set the
/// timeout identically on every rank (`nil` turns the machinery off: plain blocking collectives, no notices).
///
/// Call collectives from one thread at a time, in the same order on every rank.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    /// Every rank's host (`MPI_Get_processor_name`), indexed by rank.
    public private(set) var hostnames: [String] = []
    /// The thread support MPI granted: `MPI_THREAD_MULTIPLE` where available.
    public let threadLevel: Int
    /// Seconds a collective may stay open before the job is aborted; `nil` waits forever.
    ///
    /// Defaults to `DUALIGN_COLLECTIVE_TIMEOUT` from the environment (seconds; `0` or `none` for no
    /// timeout), else 600 s. Must be set the same way on every rank.
    public var collectiveTimeout: TimeInterval?
    /// The largest element count passed to one MPI call; bigger buffers go in several collectives.
    public var maxElementsPerCall = Int(Int32.max) {
        didSet { maxElementsPerCall = min(max(1, maxElementsPerCall), Int(Int32.max)) }
    }

    /// How collectives are watched for the timeout: `.watchdog` when MPI grants `MPI_THREAD_MULTIPLE`.
    public var timeoutMechanism: TimeoutMechanism

    /// How a timed collective is watched.
    public enum TimeoutMechanism: Sendable {
        /// Blocking MPI collectives; a watchdog thread reports and aborts at the deadline (needs `MPI_THREAD_MULTIPLE`).
        case watchdog
        /// Non-blocking MPI collectives polled with `MPI_Test` on the calling thread (any thread level; slower).
        case polling
    }

    private let comm: MPI_Comm            // collectives
    private let side: MPI_Comm            // arrival and waiting notices
    private let lock = NSLock()           // one collective at a time
    private var sequence = 0

    // Notice state, shared with the watchdog thread under `noticeLock`.
    private let noticeLock = NSLock()
    private var sends: [(request: MPI_Request?, buffer: UnsafeMutablePointer<Int64>)] = []
    // Rank 0: its latest collective, the latest each rank announced, its own recent records, notices from ranks ahead.
    private var ownNumber = 0
    private var announced: [Int]
    private var ownRecords: [Int: CollectiveRecord] = [:]
    private var aheadNotices: [Int: [(rank: Int, record: CollectiveRecord)]] = [:]
    // Other ranks: the latest collective rank 0 said it is waiting in, and when that was heard.
    private var rootWaiting: (number: Int, heardAt: UInt64)?

    // The open blocking collective, read by the watchdog thread under `watchLock`.
    private struct Watched {
        var number: Int
        var record: CollectiveRecord
        var timeout: TimeInterval
        var started: UInt64
    }
    private let watchLock = NSLock()
    private var watched: Watched?
    private var watchdogRunning = false, watchdogStop = false
    private let watchdogStopped = DispatchSemaphore(value: 0)

    private enum Tag {
        static let arrival: Int32 = 1
        static let rootWaiting: Int32 = 2
    }

    // MARK: Shared instance

    private static let sharedLock = NSLock()
    nonisolated(unsafe) private static var shared: MPICommunicator?
    nonisolated(unsafe) private static var finalized = false

    /// The world communicator, initialising MPI on first use (thread-safe, idempotent).
    public static func world() throws -> MPICommunicator {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if let shared { return shared }
        guard !finalized else {
            throw CommunicatorError.unavailable(call: "MPICommunicator.world()", message: "MPI was finalized in this process and cannot start again")
        }
        let communicator = try MPICommunicator()
        try communicator.exchangeHostnames()
        shared = communicator
        return communicator
    }

    /// Finalizes MPI if this process initialised it; for the CLI's exit path, never for tests.
    ///
    /// Every rank must call it. Afterwards `world()` throws: MPI cannot start twice in one process.
    public static func finalize() throws {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        guard let communicator = shared else { return }
        try communicator.shutDown()
        shared = nil
        finalized = true
    }

    /// Ends the command after an error: with one rank (or before MPI started) finalizes and returns
    /// false so the caller exits normally; with several ranks prints `line` and ends every rank of the
    /// job with `MPI_Abort` (an error on one rank must not leave the others waiting in a collective).
    public static func abortIfParallel(_ line: String, code: Int32 = 1) -> Bool {
        sharedLock.lock()
        let communicator = shared
        sharedLock.unlock()
        guard let communicator, communicator.size > 1 else {
            try? finalize()
            return false
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
        MPI_Abort(cmpi_comm_world(), code)
        exit(code)
    }

    private init() throws {
        let site = "MPICommunicator.world()"
        var flag: Int32 = 0
        try Self.check(MPI_Finalized(&flag), "MPI_Finalized", site)
        guard flag == 0 else {
            throw CommunicatorError.unavailable(call: site, message: "MPI was finalized in this process and cannot start again")
        }
        try Self.check(MPI_Initialized(&flag), "MPI_Initialized", site)
        var provided: Int32 = 0
        if flag == 0 {
            try Self.check(MPI_Init_thread(nil, nil, Int32(MPI_THREAD_MULTIPLE), &provided), "MPI_Init_thread", site)
        } else {
            try Self.check(MPI_Query_thread(&provided), "MPI_Query_thread", site)
        }
        threadLevel = Int(provided)
        let world = cmpi_comm_world()
        try Self.check(MPI_Comm_set_errhandler(world, cmpi_errors_return()), "MPI_Comm_set_errhandler", site)
        var value: Int32 = 0
        try Self.check(MPI_Comm_rank(world, &value), "MPI_Comm_rank", site)
        rank = Int(value)
        try Self.check(MPI_Comm_size(world, &value), "MPI_Comm_size", site)
        size = Int(value)
        var duplicate: MPI_Comm?
        try Self.check(MPI_Comm_dup(world, &duplicate), "MPI_Comm_dup", site)
        comm = duplicate!
        try Self.check(MPI_Comm_dup(world, &duplicate), "MPI_Comm_dup", site)
        side = duplicate!
        for handle in [comm, side] {
            try Self.check(MPI_Comm_set_errhandler(handle, cmpi_errors_return()), "MPI_Comm_set_errhandler", site)
        }
        announced = Array(repeating: 0, count: size)
        collectiveTimeout = Self.environmentTimeout()
        timeoutMechanism = provided >= Int32(MPI_THREAD_MULTIPLE) ? .watchdog : .polling
    }

    private static func environmentTimeout() -> TimeInterval? {
        guard let text = ProcessInfo.processInfo.environment["DUALIGN_COLLECTIVE_TIMEOUT"] else { return 600 }
        if let seconds = Double(text) { return seconds > 0 ? seconds : nil }
        return ["none", "off", "inf"].contains(text.lowercased()) ? nil : 600
    }

    /// Gathers every rank's processor name, so timeout reports can say where a missing rank runs.
    private func exchangeHostnames() throws {
        let site = "MPICommunicator.world()"
        let width = Int(cmpi_max_processor_name())
        var mine = [CChar](repeating: 0, count: width)
        var length: Int32 = 0
        try Self.check(MPI_Get_processor_name(&mine, &length), "MPI_Get_processor_name", site)
        var all = [CChar](repeating: 0, count: width * size)
        lock.lock()
        defer { lock.unlock() }
        try mine.withUnsafeBufferPointer { send in
            try all.withUnsafeMutableBufferPointer { receive in
                try perform(CollectiveRecord(kind: .setup, count: width, root: -1), names: ("MPI_Allgather", "MPI_Iallgather"), site: site,
                            blocking: { MPI_Allgather(send.baseAddress, Int32(width), cmpi_byte(), receive.baseAddress, Int32(width), cmpi_byte(), comm) },
                            start: { MPI_Iallgather(send.baseAddress, Int32(width), cmpi_byte(), receive.baseAddress, Int32(width), cmpi_byte(), comm, $0) })
            }
        }
        hostnames = (0..<size).map { r in
            let bytes = all[(r * width)..<((r + 1) * width)].prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    private func shutDown() throws {
        lock.lock()
        defer { lock.unlock() }
        let site = "MPICommunicator.finalize()"
        stopWatchdog()
        noticeLock.lock()
        defer { noticeLock.unlock() }
        for index in sends.indices {
            try Self.check(MPI_Wait(&sends[index].request, cmpi_status_ignore()), "MPI_Wait", site)
            sends[index].buffer.deallocate()
        }
        sends.removeAll()
        if rank == 0 { try drainArrivals(site: site) }
        var handle: MPI_Comm? = comm
        try Self.check(MPI_Comm_free(&handle), "MPI_Comm_free", site)
        handle = side
        try Self.check(MPI_Comm_free(&handle), "MPI_Comm_free", site)
        try Self.check(MPI_Finalize(), "MPI_Finalize", site)
    }

    // MARK: Collectives

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try reduce(UnsafeMutableRawPointer(buffer), count: count, stride: MemoryLayout<Float>.stride, type: cmpi_float(),
                   op: cmpi_sum(), kind: .allReduceSum, site: "allReduceSum(_:count:)")
    }

    public func allReduceSum(_ values: inout [Double]) throws {
        let count = values.count
        try values.withUnsafeMutableBytes { bytes in
            try reduce(bytes.baseAddress ?? Self.scratch, count: count, stride: MemoryLayout<Double>.stride, type: cmpi_double(),
                       op: cmpi_sum(), kind: .allReduceSum, site: "allReduceSum(_: inout [Double])")
        }
    }

    public func allReduceMax(_ values: inout [Double]) throws {
        let count = values.count
        try values.withUnsafeMutableBytes { bytes in
            try reduce(bytes.baseAddress ?? Self.scratch, count: count, stride: MemoryLayout<Double>.stride, type: cmpi_double(),
                       op: cmpi_max(), kind: .allReduceMax, site: "allReduceMax(_:)")
        }
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        let site = "broadcast(_:count:root:)"
        try validate(count: count, root: root, site: site)
        lock.lock()
        defer { lock.unlock() }
        try broadcastChunks(UnsafeMutableRawPointer(buffer), count: count, stride: MemoryLayout<Float>.stride, type: cmpi_float(),
                            root: root, site: site)
    }

    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {
        let site = "broadcast(_: inout [UInt8], root:)"
        try validate(count: 0, root: root, site: site)
        lock.lock()
        defer { lock.unlock() }
        var length = [Int64(rank == root ? bytes.count : 0)]
        try length.withUnsafeMutableBytes {
            try broadcastChunks($0.baseAddress!, count: 1, stride: 8, type: cmpi_int64(), root: root, site: site)
        }
        let count = Int(length[0])
        if rank != root { bytes = [UInt8](repeating: 0, count: count) }
        guard count > 0 else { return }
        try bytes.withUnsafeMutableBytes {
            try broadcastChunks($0.baseAddress!, count: count, stride: 1, type: cmpi_byte(), root: root, site: site)
        }
    }

    public func gather(_ payload: [UInt8], root: Int) throws -> [[UInt8]]? {
        let site = "gather(_:root:)"
        try validate(count: 0, root: root, site: site)
        lock.lock()
        defer { lock.unlock() }
        return try gatherVariable(payload, root: root, site: site)
    }

    public func allGather(_ payload: [UInt8]) throws -> [[UInt8]] {
        lock.lock()
        defer { lock.unlock() }
        return try gatherVariable(payload, root: nil, site: "allGather(_:)")!
    }

    public func barrier() throws {
        lock.lock()
        defer { lock.unlock() }
        try perform(CollectiveRecord(kind: .barrier, count: -1, root: -1), names: ("MPI_Barrier", "MPI_Ibarrier"), site: "barrier()",
                    blocking: { MPI_Barrier(comm) }, start: { MPI_Ibarrier(comm, $0) })
    }

    // MARK: Chunked operations

    /// A valid address for zero-length buffers (MPI rejects null buffers in some builds).
    private static let scratch = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)

    private func validate(count: Int, root: Int, site: String) throws {
        guard count >= 0 else { throw CommunicatorError.invalidArgument(call: site, message: "count \(count) is negative") }
        guard (0..<size).contains(root) else {
            throw CommunicatorError.invalidArgument(call: site, message: "root \(root) is not a rank of a world of size \(size)")
        }
    }

    private func reduce(_ base: UnsafeMutableRawPointer, count: Int, stride: Int, type: MPI_Datatype, op: MPI_Op,
                        kind: CollectiveKind, site: String) throws {
        guard count >= 0 else { throw CommunicatorError.invalidArgument(call: site, message: "count \(count) is negative") }
        lock.lock()
        defer { lock.unlock() }
        var offset = 0
        repeat {
            let n = min(count - offset, maxElementsPerCall)
            let chunk = base + offset * stride
            try perform(CollectiveRecord(kind: kind, count: n, root: -1), names: ("MPI_Allreduce", "MPI_Iallreduce"), site: site,
                        blocking: { MPI_Allreduce(cmpi_in_place(), chunk, Int32(n), type, op, comm) },
                        start: { MPI_Iallreduce(cmpi_in_place(), chunk, Int32(n), type, op, comm, $0) })
            offset += n
        } while offset < count
    }

    private func broadcastChunks(_ base: UnsafeMutableRawPointer, count: Int, stride: Int, type: MPI_Datatype,
                                 root: Int, site: String) throws {
        var offset = 0
        repeat {
            let n = min(count - offset, maxElementsPerCall)
            let chunk = base + offset * stride
            try perform(CollectiveRecord(kind: .broadcast, count: n, root: root), names: ("MPI_Bcast", "MPI_Ibcast"), site: site,
                        blocking: { MPI_Bcast(chunk, Int32(n), type, Int32(root), comm) },
                        start: { MPI_Ibcast(chunk, Int32(n), type, Int32(root), comm, $0) })
            offset += n
        } while offset < count
    }

    /// Gathers variable-length payloads on `root` (or on every rank when `root` is nil).
    ///
    /// All ranks first exchange payload sizes, so they agree on how many `MPI_(I)(all)gatherv` rounds
    /// keep every count and displacement within `maxElementsPerCall`.
    private func gatherVariable(_ payload: [UInt8], root: Int?, site: String) throws -> [[UInt8]]? {
        let kind: CollectiveKind = root == nil ? .allGather : .gather
        let rootIndex = root ?? -1
        var sizes = [Int64](repeating: 0, count: size)
        var mine = Int64(payload.count)
        try sizes.withUnsafeMutableBytes { all in
            try withUnsafeMutableBytes(of: &mine) { own in
                try perform(CollectiveRecord(kind: kind, count: 1, root: rootIndex), names: ("MPI_Allgather", "MPI_Iallgather"), site: site,
                            blocking: { MPI_Allgather(own.baseAddress, 1, cmpi_int64(), all.baseAddress, 1, cmpi_int64(), comm) },
                            start: { MPI_Iallgather(own.baseAddress, 1, cmpi_int64(), all.baseAddress, 1, cmpi_int64(), comm, $0) })
            }
        }
        let lengths = sizes.map { Int($0) }
        let receives = root == nil || root == rank
        var result: [[UInt8]] = receives ? lengths.map { length in
            var bytes: [UInt8] = []
            bytes.reserveCapacity(length)
            return bytes
        } : []
        let perRound = max(1, maxElementsPerCall / size)
        let longest = lengths.max() ?? 0
        let rounds = (longest + perRound - 1) / perRound
        for round in 0..<rounds {
            let start = round * perRound
            let counts = lengths.map { Int32(max(0, min(perRound, $0 - start))) }
            var displacements = [Int32](repeating: 0, count: size)
            for r in 1..<max(size, 1) { displacements[r] = displacements[r - 1] + counts[r - 1] }
            let total = Int(counts.reduce(0, +))
            var received = [UInt8](repeating: 0, count: receives ? total : 0)
            let sendCount = counts[rank]
            try payload.withUnsafeBytes { sendBytes in
                let send = sendCount > 0 ? UnsafeRawPointer(sendBytes.baseAddress! + start) : UnsafeRawPointer(Self.scratch)
                try received.withUnsafeMutableBytes { receiveBytes in
                    let receive = receiveBytes.baseAddress ?? Self.scratch
                    try counts.withUnsafeBufferPointer { countsPointer in
                        try displacements.withUnsafeBufferPointer { displacementsPointer in
                            let c = countsPointer.baseAddress, d = displacementsPointer.baseAddress
                            let record = CollectiveRecord(kind: kind, count: -1, root: rootIndex)
                            if let root {
                                try perform(record, names: ("MPI_Gatherv", "MPI_Igatherv"), site: site,
                                            blocking: { MPI_Gatherv(send, sendCount, cmpi_byte(), receive, c, d, cmpi_byte(), Int32(root), comm) },
                                            start: { MPI_Igatherv(send, sendCount, cmpi_byte(), receive, c, d, cmpi_byte(), Int32(root), comm, $0) })
                            } else {
                                try perform(record, names: ("MPI_Allgatherv", "MPI_Iallgatherv"), site: site,
                                            blocking: { MPI_Allgatherv(send, sendCount, cmpi_byte(), receive, c, d, cmpi_byte(), comm) },
                                            start: { MPI_Iallgatherv(send, sendCount, cmpi_byte(), receive, c, d, cmpi_byte(), comm, $0) })
                            }
                        }
                    }
                }
            }
            if receives {
                for r in 0..<size where counts[r] > 0 {
                    let from = Int(displacements[r])
                    result[r].append(contentsOf: received[from..<(from + Int(counts[r]))])
                }
            }
        }
        return receives ? result : nil
    }

    // MARK: Timed collectives

    /// Runs one collective: plain blocking without a timeout, otherwise announced and watched.
    private func perform(_ record: CollectiveRecord, names: (blocking: String, nonBlocking: String), site: String,
                         blocking: () -> Int32, start: (UnsafeMutablePointer<MPI_Request?>) -> Int32) throws {
        sequence += 1
        guard let timeout = collectiveTimeout else {
            try Self.check(blocking(), names.blocking, site)
            return
        }
        let number = sequence
        try withNotices { try announce(number, record, site: site) }
        do {
            try watch(number, record, timeout: timeout, names: names, site: site, blocking: blocking, start: start)
        } catch {
            // A failed collective is often a mismatched one (MPI_ERR_TRUNCATE): rank 0 names it if it can.
            if rank == 0 && size > 1 {
                for _ in 0..<10 {
                    withNotices { try? drainArrivals(site: site) }
                    usleep(10_000)
                }
            }
            throw error
        }
    }

    /// Runs collective `number` with the current timeout mechanism.
    private func watch(_ number: Int, _ record: CollectiveRecord, timeout: TimeInterval, names: (blocking: String, nonBlocking: String),
                       site: String, blocking: () -> Int32, start: (UnsafeMutablePointer<MPI_Request?>) -> Int32) throws {
        switch timeoutMechanism {
        case .watchdog:
            startWatchdog()
            watchLock.lock()
            watched = Watched(number: number, record: record, timeout: timeout, started: Self.now())
            watchLock.unlock()
            let code = blocking()
            watchLock.lock()
            watched = nil
            watchLock.unlock()
            try Self.check(code, names.blocking, site)
        case .polling:
            var request: MPI_Request? = cmpi_request_null()
            try Self.check(start(&request), names.nonBlocking, site)
            try poll(&request, number: number, record: record, timeout: timeout, site: site)
        }
    }

    /// Runs `body` holding the lock over notice state (the watchdog thread reads and sends notices too).
    private func withNotices<T>(_ body: () throws -> T) rethrows -> T {
        noticeLock.lock()
        defer { noticeLock.unlock() }
        return try body()
    }

    /// Tells rank 0 this rank reached collective `number` (rank 0 records its own and reads the others').
    private func announce(_ number: Int, _ record: CollectiveRecord, site: String) throws {
        guard size > 1 else { return }
        try reapSends(site: site)
        if rank == 0 {
            ownNumber = number
            ownRecords[number] = record
            ownRecords[number - 4096] = nil
            for notice in aheadNotices.removeValue(forKey: number) ?? [] {
                checkCompatible(notice.record, from: notice.rank, number: number)
            }
            try drainArrivals(site: site)
        } else {
            try send([Int64(number), record.kind.rawValue, Int64(record.count), Int64(record.root)], to: 0,
                     tag: Tag.arrival, site: site)
            try drainRootNotices(site: site)
        }
    }

    /// Seconds after which a waiting rank 0 tells the others it is waiting.
    private static func notifyAfter(_ timeout: TimeInterval) -> UInt64 { UInt64(min(1.0, timeout / 4) * 1e9) }

    /// The deadline of a non-root rank that times out while rank 0 waits too: rank 0's own deadline
    /// (estimated from when its notice arrived) plus 2 s, so rank 0, which knows every rank's arrival, reports first.
    private func rootDeadline(_ number: Int, timeout: TimeInterval) -> UInt64? {
        guard rank != 0, let waiting = rootWaiting, waiting.number >= number else { return nil }
        return waiting.heardAt &- Self.notifyAfter(timeout) &+ UInt64(timeout * 1e9) &+ 2_000_000_000
    }

    // MARK: Watchdog (MPI_THREAD_MULTIPLE)

    /// Starts the thread that watches blocking collectives, once.
    private func startWatchdog() {
        watchLock.lock()
        defer { watchLock.unlock() }
        guard !watchdogRunning else { return }
        watchdogRunning = true
        let thread = Thread { [unowned self] in self.watch() }
        thread.name = "dualign-collective-watchdog"
        thread.start()
    }

    /// Stops the watchdog thread and waits until it no longer touches MPI.
    private func stopWatchdog() {
        watchLock.lock()
        let running = watchdogRunning
        watchdogStop = true
        watchLock.unlock()
        if running { watchdogStopped.wait() }
    }

    /// The watchdog loop: ticks while a collective is open, tells the others when rank 0 waits,
    /// and at the deadline reports the missing ranks and aborts the job.
    private func watch() {
        var notified = 0, deferred = 0
        var deadline: UInt64 = 0
        while true {
            watchLock.lock()
            let stop = watchdogStop, current = watched
            watchLock.unlock()
            if stop {
                watchdogStopped.signal()
                return
            }
            var tick: UInt64 = 100_000_000
            if let current {
                let timeoutNs = UInt64(current.timeout * 1e9), notifyNs = Self.notifyAfter(current.timeout)
                tick = min(max(timeoutNs / 20, 5_000_000), 100_000_000)
                let now = Self.now()
                let elapsed = now > current.started ? now - current.started : 0
                if deferred != current.number { deadline = current.started &+ timeoutNs }
                if elapsed >= notifyNs {
                    withNotices {
                        if rank == 0 {
                            try? drainArrivals(site: "watchdog")
                            if notified != current.number {
                                notified = current.number
                                for r in 1..<max(size, 1) {
                                    try? send([Int64(current.number), current.record.kind.rawValue, -1, -1], to: r, tag: Tag.rootWaiting, site: "watchdog")
                                }
                            }
                        } else {
                            try? drainRootNotices(site: "watchdog")
                        }
                    }
                }
                if now >= deadline && stillWatching(current.number) {
                    let extended = withNotices { rootDeadline(current.number, timeout: current.timeout) }
                    if deferred != current.number, let extended, extended > deadline {
                        deferred = current.number
                        deadline = extended
                    } else {
                        noticeLock.lock()
                        timedOut(current.number, current.record, timeout: current.timeout, rootIsWaiting: deferred == current.number)
                    }
                }
            }
            usleep(UInt32(tick / 1000))
        }
    }

    private func stillWatching(_ number: Int) -> Bool {
        watchLock.lock()
        defer { watchLock.unlock() }
        return watched?.number == number
    }

    // MARK: Polling (without MPI_THREAD_MULTIPLE)

    /// Polls a non-blocking collective until it completes or the deadline passes, then reports and aborts.
    private func poll(_ request: inout MPI_Request?, number: Int, record: CollectiveRecord,
                      timeout: TimeInterval, site: String) throws {
        var done: Int32 = 0
        let started = Self.now()
        let notifyNs = Self.notifyAfter(timeout)
        let spinNs = min(100_000_000, notifyNs)
        var deadline = started + UInt64(timeout * 1e9)
        var notified = false, deferred = false
        var pause: UInt32 = 20
        while true {
            try Self.check(MPI_Test(&request, &done, cmpi_status_ignore()), "MPI_Test", site)
            if done != 0 { return }
            let now = Self.now()
            if now - started < spinNs { continue }
            try withNotices {
                if rank == 0 {
                    try drainArrivals(site: site)
                    if !notified && now - started >= notifyNs {
                        notified = true
                        for r in 1..<size { try send([Int64(number), record.kind.rawValue, -1, -1], to: r, tag: Tag.rootWaiting, site: site) }
                    }
                } else {
                    try drainRootNotices(site: site)
                }
            }
            if now >= deadline {
                if !deferred, let extended = withNotices({ rootDeadline(number, timeout: timeout) }), extended > deadline {
                    deferred = true
                    deadline = extended
                    continue
                }
                noticeLock.lock()
                timedOut(number, record, timeout: timeout, rootIsWaiting: deferred)
            }
            usleep(pause)
            pause = min(pause * 2, 1000)
        }
    }

    /// Reports a collective that timed out and aborts the job (caller holds the notice lock).
    private func timedOut(_ number: Int, _ record: CollectiveRecord, timeout: TimeInterval, rootIsWaiting: Bool) -> Never {
        var line = "dualign: collective \(record.kind) #\(number) timed out after \(CommunicatorError.format(timeout)) s on rank \(rank)"
        if rank == 0 {
            try? drainArrivals(site: "timeout")
            let missing = (1..<max(size, 1)).filter { announced[$0] < number }
            if missing.isEmpty {
                line += "; every rank arrived, but \(record) did not complete (MPI or network failure)"
            } else {
                line += "; missing ranks: \(missing) (\(hostList(missing)))"
            }
        } else {
            line += " (host \(hostnames.indices.contains(rank) ? hostnames[rank] : "?"))"
            if rootIsWaiting {
                line += "; rank 0 waits in this collective too but did not report; missing ranks unknown"
            } else {
                line += "; missing ranks: [0] (\(hostList([0])))"
                if size > 2 { line += " and possibly others (rank 0 tracks arrivals)" }
            }
        }
        Self.abort(line)
    }

    private func hostList(_ ranks: [Int]) -> String {
        let named = ranks.prefix(32).map { r in (r, hostnames.indices.contains(r) ? hostnames[r] : "?") }
        if Set(named.map(\.1)).count == 1, let host = named.first?.1 { return "host \(host)" }
        return "hosts " + named.map { "\($0.0)=\($0.1)" }.joined(separator: ", ") + (ranks.count > 32 ? ", …" : "")
    }

    // MARK: Notices (caller holds the notice lock)

    private func send(_ values: [Int64], to destination: Int, tag: Int32, site: String) throws {
        let buffer = UnsafeMutablePointer<Int64>.allocate(capacity: 4)
        buffer.initialize(repeating: 0, count: 4)
        for (i, v) in values.prefix(4).enumerated() { buffer[i] = v }
        var request: MPI_Request? = cmpi_request_null()
        let code = MPI_Isend(buffer, 4, cmpi_int64(), Int32(destination), tag, side, &request)
        guard code == MPI_SUCCESS else {
            buffer.deallocate()
            try Self.check(code, "MPI_Isend", site)
            return
        }
        sends.append((request, buffer))
    }

    /// Frees the buffers of notices whose sends completed.
    private func reapSends(site: String) throws {
        guard !sends.isEmpty else { return }
        var index = 0
        while index < sends.count {
            var done: Int32 = 0
            try Self.check(MPI_Test(&sends[index].request, &done, cmpi_status_ignore()), "MPI_Test", site)
            if done != 0 {
                sends[index].buffer.deallocate()
                sends.remove(at: index)
            } else {
                index += 1
            }
        }
    }

    /// Rank 0: reads every arrival notice that came in and checks it against its own call.
    private func drainArrivals(site: String) throws {
        var flag: Int32 = 0
        var status = MPI_Status()
        var notice = [Int64](repeating: 0, count: 4)
        while true {
            try Self.check(MPI_Iprobe(cmpi_any_source(), Tag.arrival, side, &flag, &status), "MPI_Iprobe", site)
            guard flag != 0 else { return }
            let source = Int(status.MPI_SOURCE)
            try Self.check(MPI_Recv(&notice, 4, cmpi_int64(), status.MPI_SOURCE, Tag.arrival, side, cmpi_status_ignore()), "MPI_Recv", site)
            let number = Int(notice[0])
            guard let kind = CollectiveKind(rawValue: notice[1]) else { continue }
            let record = CollectiveRecord(kind: kind, count: Int(notice[2]), root: Int(notice[3]))
            announced[source] = max(announced[source], number)
            if number > ownNumber {
                aheadNotices[number, default: []].append((source, record))
            } else {
                checkCompatible(record, from: source, number: number)
            }
        }
    }

    private func checkCompatible(_ record: CollectiveRecord, from source: Int, number: Int) {
        guard let own = ownRecords[number], !own.isCompatible(with: record) else { return }
        Self.abort("dualign: collective mismatch at #\(number): rank 0 called \(own) but rank \(source) (host \(hostnames.indices.contains(source) ? hostnames[source] : "?")) called \(record)")
    }

    /// Other ranks: reads rank 0's "waiting in collective #n" notices.
    private func drainRootNotices(site: String) throws {
        var flag: Int32 = 0
        var notice = [Int64](repeating: 0, count: 4)
        while true {
            try Self.check(MPI_Iprobe(0, Tag.rootWaiting, side, &flag, cmpi_status_ignore()), "MPI_Iprobe", site)
            guard flag != 0 else { return }
            try Self.check(MPI_Recv(&notice, 4, cmpi_int64(), 0, Tag.rootWaiting, side, cmpi_status_ignore()), "MPI_Recv", site)
            let number = Int(notice[0])
            if number > rootWaiting?.number ?? 0 { rootWaiting = (number, Self.now()) }
        }
    }

    // MARK: Helpers

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Prints one whole line to stderr and ends every rank of the job.
    private static func abort(_ line: String) -> Never {
        FileHandle.standardError.write(Data((line + "\n").utf8))
        MPI_Abort(cmpi_comm_world(), 3)
        exit(3)
    }

    private static func check(_ code: Int32, _ call: String, _ site: String) throws {
        guard code != MPI_SUCCESS else { return }
        throw CommunicatorError.mpi(call: call, site: site, code: code, message: errorString(code))
    }

    /// `MPI_Error_string`'s text for an error code.
    static func errorString(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(code, &text, &length) == MPI_SUCCESS else { return "unknown MPI error" }
        return String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
