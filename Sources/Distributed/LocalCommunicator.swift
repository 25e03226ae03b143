// An in-process Communicator: ranks are threads that meet in shared state.

import Foundation

/// `Communicator` whose ranks are threads of one process, for tests and single-process debugging.
///
/// Members of one group (`LocalCommunicator.group(size:)`) meet at each collective in shared state
/// guarded by a condition variable. Reductions add in rank order (rank 0 + rank 1 + …), so results
/// are deterministic. A collective that does not complete within `collectiveTimeout` throws
/// `CommunicatorError.timeout` naming the ranks that never arrived; ranks that call different
/// operations, counts or roots in the same slot throw `CommunicatorError.mismatch`. Either failure
/// breaks the group: every later call on every member throws the same error.
public final class LocalCommunicator: Communicator {
    public let rank: Int
    public var size: Int { state.size }
    /// Seconds a collective may stay open before it throws; `nil` waits forever.
    public var collectiveTimeout: TimeInterval?

    private let state: GroupState
    private var sequence = 0

    private init(rank: Int, state: GroupState, timeout: TimeInterval?) {
        self.rank = rank
        self.state = state
        self.collectiveTimeout = timeout
    }

    /// Makes the `size` members of a new group; give member `r` to the thread that plays rank `r`.
    public static func group(size: Int, timeout: TimeInterval? = 600) -> [LocalCommunicator] {
        precondition(size >= 1, "a communicator group needs at least one rank")
        let state = GroupState(size: size)
        return (0..<size).map { LocalCommunicator(rank: $0, state: state, timeout: timeout) }
    }

    /// Runs `body` once per rank of a new group, each on its own thread, and returns the results in rank order.
    public static func run<T>(size: Int, timeout: TimeInterval? = 600,
                              _ body: @escaping (LocalCommunicator) throws -> T) -> [Result<T, Error>] {
        let members = group(size: size, timeout: timeout)
        let results = ResultSlots<T>(count: size)
        let finished = DispatchGroup()
        for member in members {
            finished.enter()
            let thread = Thread {
                results.set(member.rank, Result { try body(member) })
                finished.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        finished.wait()
        return results.values
    }

    // MARK: Collectives

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        let site = "allReduceSum(_:count:)"
        try validate(count: count, root: 0, site: site)
        let sum = try meet(CollectiveRecord(kind: .allReduceSum, count: count, root: -1), .floats(Array(UnsafeBufferPointer(start: buffer, count: count))), site: site) { inputs in
            guard case .floats(var total) = inputs[0] else { return .none }
            for case .floats(let next) in inputs.dropFirst() { for i in 0..<count { total[i] += next[i] } }
            return .floats(total)
        }
        guard case .floats(let values) = sum else { return }
        values.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: count) }
    }

    public func allReduceSum(_ values: inout [Double]) throws {
        try reduceDoubles(&values, kind: .allReduceSum, site: "allReduceSum(_: inout [Double])") { $0 + $1 }
    }

    public func allReduceMax(_ values: inout [Double]) throws {
        try reduceDoubles(&values, kind: .allReduceMax, site: "allReduceMax(_:)") { Swift.max($0, $1) }
    }

    public func broadcast(_ bytes: inout [UInt8], root: Int) throws {
        let site = "broadcast(_: inout [UInt8], root:)"
        try validate(count: 0, root: root, site: site)
        let result = try meet(CollectiveRecord(kind: .broadcast, count: -1, root: root), rank == root ? .bytes(bytes) : .none, site: site) { $0[root] }
        if case .bytes(let value) = result { bytes = value }
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        let site = "broadcast(_:count:root:)"
        try validate(count: count, root: root, site: site)
        let input: Payload = rank == root ? .floats(Array(UnsafeBufferPointer(start: buffer, count: count))) : .none
        let result = try meet(CollectiveRecord(kind: .broadcast, count: count, root: root), input, site: site) { $0[root] }
        guard rank != root, case .floats(let values) = result else { return }
        values.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: count) }
    }

    public func gather(_ payload: [UInt8], root: Int) throws -> [[UInt8]]? {
        let site = "gather(_:root:)"
        try validate(count: 0, root: root, site: site)
        let result = try meet(CollectiveRecord(kind: .gather, count: -1, root: root), .bytes(payload), site: site) { .list($0) }
        return rank == root ? result.byteList : nil
    }

    public func allGather(_ payload: [UInt8]) throws -> [[UInt8]] {
        try meet(CollectiveRecord(kind: .allGather, count: -1, root: -1), .bytes(payload), site: "allGather(_:)") { .list($0) }.byteList
    }

    public func barrier() throws {
        _ = try meet(CollectiveRecord(kind: .barrier, count: -1, root: -1), .none, site: "barrier()") { _ in .none }
    }

    // MARK: Rendezvous

    private func validate(count: Int, root: Int, site: String) throws {
        guard count >= 0 else { throw CommunicatorError.invalidArgument(call: site, message: "count \(count) is negative") }
        guard (0..<size).contains(root) else {
            throw CommunicatorError.invalidArgument(call: site, message: "root \(root) is not a rank of a group of size \(size)")
        }
    }

    private func reduceDoubles(_ values: inout [Double], kind: CollectiveKind, site: String,
                               _ combine: @escaping (Double, Double) -> Double) throws {
        let count = values.count
        let result = try meet(CollectiveRecord(kind: kind, count: count, root: -1), .doubles(values), site: site) { inputs in
            guard case .doubles(var total) = inputs[0] else { return .none }
            for case .doubles(let next) in inputs.dropFirst() { for i in 0..<count { total[i] = combine(total[i], next[i]) } }
            return .doubles(total)
        }
        if case .doubles(let reduced) = result { values = reduced }
    }

    /// Deposits this rank's input for its next collective, waits for all ranks, returns the combined result.
    ///
    /// The last rank to arrive runs `combine` over the inputs in rank order.
    private func meet(_ record: CollectiveRecord, _ input: Payload, site: String,
                      combine: @escaping ([Payload]) -> Payload) throws -> Payload {
        sequence += 1
        let number = sequence
        let deadline = collectiveTimeout.map { Date(timeIntervalSinceNow: $0) }
        let condition = state.condition
        condition.lock()
        defer { condition.unlock() }
        if let failure = state.failure { throw failure }
        let round = state.rounds[number] ?? {
            let created = Round(size: size, record: record)
            state.rounds[number] = created
            return created
        }()
        guard round.record.isCompatible(with: record) else {
            let failure = CommunicatorError.mismatch(call: site, message: "collective #\(number): rank \(round.firstRank ?? 0) called \(round.record) but rank \(rank) called \(record)")
            state.fail(failure)
            throw failure
        }
        if round.firstRank == nil { round.firstRank = rank }
        round.inputs[rank] = input
        round.arrived += 1
        if round.arrived == size {
            round.result = combine(round.inputs.map { $0 ?? .none })
            round.inputs = []
            condition.broadcast()
        }
        while round.result == nil {
            if let failure = state.failure { throw failure }
            if let deadline {
                if !condition.wait(until: deadline) && round.result == nil && state.failure == nil {
                    let missing = (0..<size).filter { round.inputs[$0] == nil }
                    let failure = CommunicatorError.timeout(missingRanks: missing, collective: record.kind.description, sequence: number,
                                                            rank: rank, seconds: collectiveTimeout ?? 0)
                    state.fail(failure)
                    throw failure
                }
            } else {
                condition.wait()
            }
        }
        let result = round.result!
        round.consumed += 1
        if round.consumed == size { state.rounds[number] = nil }
        return result
    }
}

/// What a rank contributes to, or receives from, one collective.
private enum Payload {
    case none
    case floats([Float])
    case doubles([Double])
    case bytes([UInt8])
    case list([Payload])

    var byteList: [[UInt8]] {
        guard case .list(let items) = self else { return [] }
        return items.map { if case .bytes(let b) = $0 { return b } else { return [] } }
    }
}

/// One collective slot of a group: who arrived with what, and the combined result.
private final class Round {
    let record: CollectiveRecord
    var firstRank: Int?
    var inputs: [Payload?]
    var arrived = 0
    var consumed = 0
    var result: Payload?

    init(size: Int, record: CollectiveRecord) {
        self.record = record
        self.inputs = Array(repeating: nil, count: size)
    }
}

/// The state every member of a group shares, guarded by `condition`.
private final class GroupState: @unchecked Sendable {
    let size: Int
    let condition = NSCondition()
    var rounds: [Int: Round] = [:]
    var failure: CommunicatorError?

    init(size: Int) { self.size = size }

    /// Breaks the group (caller holds the lock): wakes every waiting member to throw `error`.
    func fail(_ error: CommunicatorError) {
        if failure == nil { failure = error }
        condition.broadcast()
    }
}

/// Per-rank result slots filled by the threads of `LocalCommunicator.run`.
private final class ResultSlots<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<T, Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: Result<T, Error>) {
        lock.lock()
        slots[index] = value
        lock.unlock()
    }

    var values: [Result<T, Error>] {
        lock.lock()
        defer { lock.unlock() }
        return slots.map { $0! }
    }
}
