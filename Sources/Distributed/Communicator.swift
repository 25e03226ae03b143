// The collective operations a data-parallel trainer needs, independent of how ranks talk.

import Foundation

/// A group of ranks that reach the same collective calls in the same order.
///
/// Every rank must call every collective, in the same order and with compatible arguments
/// (same `count` for reductions and float broadcasts, same `root`). Implementations detect a
/// collective that does not complete within their timeout and name the ranks that never arrived.
public protocol Communicator: AnyObject {
    /// This process's rank, `0 ..< size`.
    var rank: Int { get }
    /// The number of ranks in the group.
    var size: Int { get }

    /// Sums `count` floats element-wise over all ranks, in place; every rank gets the sum.
    func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// Sums doubles element-wise over all ranks, in place; every rank must pass the same count.
    func allReduceSum(_ values: inout [Double]) throws
    /// Takes the element-wise maximum of doubles over all ranks, in place.
    func allReduceMax(_ values: inout [Double]) throws
    /// Replaces `bytes` on every rank with `root`'s bytes (any length; other ranks' input is ignored).
    func broadcast(_ bytes: inout [UInt8], root: Int) throws
    /// Copies `count` floats from `root`'s buffer into every other rank's buffer.
    func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws
    /// Collects every rank's payload (lengths may differ, empty allowed) on `root`, in rank order.
    ///
    /// - Returns: all payloads on `root`, `nil` on every other rank.
    func gather(_ payload: [UInt8], root: Int) throws -> [[UInt8]]?
    /// Collects every rank's payload on every rank, in rank order.
    func allGather(_ payload: [UInt8]) throws -> [[UInt8]]
    /// Returns once every rank has called `barrier()`.
    func barrier() throws
}

extension Communicator {
    /// Whether this rank is rank 0, the one that logs, writes files and solves dual variables.
    public var isRoot: Bool { rank == 0 }

    /// Averages `count` floats over all ranks in place: sum, then scale by `1 / size`.
    ///
    /// This is the gradient all-reduce of data parallelism (each rank holds the mean gradient of its
    /// shard; the mean over equal shards is the mean gradient of the global batch).
    public func allReduceMean(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try allReduceSum(buffer, count: count)
        guard size > 1 else { return }
        let scale = 1 / Float(size)
        for i in 0..<count { buffer[i] *= scale }
    }

    /// Averages the floats of an array over all ranks in place.
    public func allReduceMean(_ values: inout [Float]) throws {
        let count = values.count
        try values.withUnsafeMutableBufferPointer { try allReduceMean($0.baseAddress!, count: count) }
    }

    /// Sums the floats of an array over all ranks in place.
    public func allReduceSum(_ values: inout [Float]) throws {
        let count = values.count
        try values.withUnsafeMutableBufferPointer { try allReduceSum($0.baseAddress!, count: count) }
    }

    /// Sums one double over all ranks (a loss, a token count).
    public func allReduceSum(_ value: Double) throws -> Double {
        var values = [value]
        try allReduceSum(&values)
        return values[0]
    }

    /// Takes the maximum of one double over all ranks.
    public func allReduceMax(_ value: Double) throws -> Double {
        var values = [value]
        try allReduceMax(&values)
        return values[0]
    }

    /// Copies `root`'s floats into every rank's array (all arrays must have the same count).
    public func broadcast(_ values: inout [Float], root: Int = 0) throws {
        let count = values.count
        try values.withUnsafeMutableBufferPointer { try broadcast($0.baseAddress!, count: count, root: root) }
    }

    /// Sends a `Codable` value from `root` to every rank as JSON; returns it on every rank.
    ///
    /// Only `root`'s `value` is read (others pass `nil`). If `root` has no value or cannot encode it,
    /// every rank throws the same error, so no rank is left waiting in a later collective.
    public func broadcastValue<T: Codable>(_ value: T?, root: Int = 0, as type: T.Type = T.self) throws -> T {
        var bytes: [UInt8] = []
        if rank == root {
            do {
                guard let value else {
                    throw CommunicatorError.invalidArgument(call: "broadcastValue", message: "rank \(root) is the root but passed no value")
                }
                bytes = [1] + Array(try JSONEncoder().encode(value))
            } catch {
                bytes = [0] + Array("\(error)".utf8)
            }
        }
        try broadcast(&bytes, root: root)
        guard let tag = bytes.first else {
            throw CommunicatorError.codec(call: "broadcastValue", message: "empty broadcast from rank \(root)")
        }
        let body = Data(bytes.dropFirst())
        guard tag == 1 else {
            throw CommunicatorError.codec(call: "broadcastValue",
                                          message: "rank \(root) could not send \(T.self): \(String(decoding: body, as: UTF8.self))")
        }
        do {
            return try JSONDecoder().decode(T.self, from: body)
        } catch {
            throw CommunicatorError.codec(call: "broadcastValue", message: "cannot decode \(T.self) from rank \(root): \(error)")
        }
    }

    /// Sends a string (a config file's text, a run name) from `root` to every rank.
    ///
    /// Only `root`'s `string` is read (others pass `nil`); a `nil` on root is an error on every rank.
    public func broadcastString(_ string: String?, root: Int = 0) throws -> String {
        var bytes: [UInt8] = []
        if rank == root { bytes = string.map { [1] + Array($0.utf8) } ?? [0] }
        try broadcast(&bytes, root: root)
        guard bytes.first == 1 else {
            throw CommunicatorError.invalidArgument(call: "broadcastString", message: "rank \(root) is the root but passed no string")
        }
        return String(decoding: bytes.dropFirst(), as: UTF8.self)
    }
}

/// Why a collective failed: the failing call, what the library said, or which ranks never arrived.
public enum CommunicatorError: Error, Equatable, CustomStringConvertible {
    /// An MPI call returned an error code; `message` is `MPI_Error_string`'s text.
    case mpi(call: String, site: String, code: Int32, message: String)
    /// A collective did not complete within `seconds`; `missingRanks` never reached it.
    case timeout(missingRanks: [Int], collective: String, sequence: Int, rank: Int, seconds: Double)
    /// Ranks reached the same collective slot with different operations, counts or roots.
    case mismatch(call: String, message: String)
    /// A caller passed an argument the collective cannot accept (bad root, negative count).
    case invalidArgument(call: String, message: String)
    /// A broadcast value could not be encoded or decoded.
    case codec(call: String, message: String)
    /// The communicator can no longer be used (MPI finalized, or an in-process group failed earlier).
    case unavailable(call: String, message: String)

    /// The operation that failed.
    public var callSite: String {
        switch self {
        case .mpi(let call, let site, _, _): return "\(call) in \(site)"
        case .timeout(_, let collective, let sequence, _, _): return "\(collective) #\(sequence)"
        case .mismatch(let call, _), .invalidArgument(let call, _), .codec(let call, _), .unavailable(let call, _): return call
        }
    }

    /// What went wrong, without the call site.
    public var message: String {
        switch self {
        case .mpi(_, _, let code, let message): return "\(message) (MPI error \(code))"
        case .timeout(let missing, _, _, let rank, let seconds):
            return "timed out after \(Self.format(seconds)) s on rank \(rank); missing ranks: \(missing)"
        case .mismatch(_, let message), .invalidArgument(_, let message), .codec(_, let message), .unavailable(_, let message):
            return message
        }
    }

    public var description: String {
        switch self {
        case .timeout: return "collective \(callSite) \(message)"
        default: return "\(callSite): \(message)"
        }
    }

    static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(format: "%.3g", seconds)
    }
}

/// Which collective a rank is in, as the implementations announce and compare it.
enum CollectiveKind: Int64, CustomStringConvertible {
    case setup = 1, allReduceSum, allReduceMax, broadcast, gather, allGather, barrier

    var description: String {
        switch self {
        case .setup: return "setup"
        case .allReduceSum: return "allReduceSum"
        case .allReduceMax: return "allReduceMax"
        case .broadcast: return "broadcast"
        case .gather: return "gather"
        case .allGather: return "allGather"
        case .barrier: return "barrier"
        }
    }
}

/// One rank's view of a collective slot: the operation, its element count (-1: free per rank) and root (-1: none).
struct CollectiveRecord: Equatable, CustomStringConvertible {
    var kind: CollectiveKind
    var count: Int
    var root: Int

    /// Whether two ranks' calls in the same slot can belong to one collective.
    func isCompatible(with other: CollectiveRecord) -> Bool {
        kind == other.kind && root == other.root && (count < 0 || other.count < 0 || count == other.count)
    }

    var description: String {
        var parts: [String] = []
        if count >= 0 { parts.append("count \(count)") }
        if root >= 0 { parts.append("root \(root)") }
        return parts.isEmpty ? kind.description : "\(kind)(\(parts.joined(separator: ", ")))"
    }
}
