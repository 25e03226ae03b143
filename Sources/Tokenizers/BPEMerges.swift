// The BPE merge table, the merge algorithm (by rank, leftmost first) and the piece cache.

import Foundation

/// Merge ranks over token ids: merging adjacent symbols (left, right) yields `merged`, and lower
/// ranks merge first (ties: leftmost first), as in GPT-2 / Hugging Face / llama.cpp.
struct BPEMergeTable: Sendable {
    /// (left << 32 | right) → (rank << 32 | merged).
    private let table: [UInt64: UInt64]

    init(_ table: [UInt64: UInt64]) { self.table = table }

    var count: Int { table.count }

    @inline(__always)
    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// The (rank, merged id) of the pair, or nil if the pair never merges.
    @inline(__always)
    func lookup(_ left: Int32, _ right: Int32) -> (rank: Int32, merged: Int32)? {
        guard let v = table[Self.key(left, right)] else { return nil }
        return (Int32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v & 0xFFFF_FFFF))
    }

    /// Merges `symbols` in place (token ids of single bytes on entry) and returns the final ids.
    ///
    /// A binary heap of candidate pairs keyed by (rank, position) makes long pieces O(n log n).
    func merge(_ symbols: inout [Int32], scratch: inout BPEScratch) {
        let n = symbols.count
        if n < 2 { return }
        if n == 2 {
            if let m = lookup(symbols[0], symbols[1]) { symbols = [m.merged] }
            return
        }
        scratch.reset(n)
        for i in 0..<n - 1 {
            if let m = lookup(symbols[i], symbols[i + 1]) {
                scratch.push(rank: m.rank, pos: Int32(i), left: symbols[i], right: symbols[i + 1])
            }
        }
        while let c = scratch.pop() {
            let pos = Int(c.pos)
            // Skip stale candidates: the left symbol was absorbed or either side changed.
            guard scratch.alive[pos], symbols[pos] == c.left else { continue }
            let r = Int(scratch.next[pos])
            guard r < n, symbols[r] == c.right, let m = lookup(c.left, c.right) else { continue }
            symbols[pos] = m.merged
            scratch.alive[r] = false
            let rr = Int(scratch.next[r])
            scratch.next[pos] = Int32(rr)
            if rr < n { scratch.prev[rr] = Int32(pos) }
            let l = Int(scratch.prev[pos])
            if l >= 0, let ml = lookup(symbols[l], m.merged) {
                scratch.push(rank: ml.rank, pos: Int32(l), left: symbols[l], right: m.merged)
            }
            if rr < n, let mr = lookup(m.merged, symbols[rr]) {
                scratch.push(rank: mr.rank, pos: Int32(pos), left: m.merged, right: symbols[rr])
            }
        }
        var out: [Int32] = []
        out.reserveCapacity(n)
        var i = 0
        while i < n {
            out.append(symbols[i])
            i = Int(scratch.next[i])
        }
        symbols = out
    }
}

/// Reusable buffers of one merge: linked symbol list and a min-heap of candidate pairs.
struct BPEScratch {
    struct Candidate { var rank: Int32; var pos: Int32; var left: Int32; var right: Int32 }
    var prev: [Int32] = []
    var next: [Int32] = []
    var alive: [Bool] = []
    private var heap: [Candidate] = []

    mutating func reset(_ n: Int) {
        prev.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        alive.removeAll(keepingCapacity: true)
        heap.removeAll(keepingCapacity: true)
        for i in 0..<n {
            prev.append(Int32(i - 1))
            next.append(Int32(i + 1))
            alive.append(true)
        }
    }

    @inline(__always)
    private static func less(_ a: Candidate, _ b: Candidate) -> Bool {
        a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos
    }

    mutating func push(rank: Int32, pos: Int32, left: Int32, right: Int32) {
        heap.append(Candidate(rank: rank, pos: pos, left: left, right: right))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Candidate? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return top }
        heap[0] = last
        var i = 0
        let n = heap.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && Self.less(heap[l], heap[m]) { m = l }
            if r < n && Self.less(heap[r], heap[m]) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return top
    }
}

/// A thread-safe cache from piece bytes to token ids (bounded; cleared when full).
final class BPECache: @unchecked Sendable {
    private struct Entry { let bytes: [UInt8]; let ids: [Int32] }
    private var entries: [UInt64: Entry] = [:]
    private let lock = NSLock()
    private let capacity: Int

    init(capacity: Int = 1 << 17) { self.capacity = capacity }

    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for i in range {
            h = (h ^ UInt64(bytes[i])) &* 0x0000_0100_0000_01B3
        }
        return h
    }

    /// Appends the cached ids of `bytes[range]` (hash `h`) to `out`; false on a miss.
    @inline(__always)
    func lookup(_ h: UInt64, _ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into out: inout [Int]) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let e = entries[h], e.bytes.count == range.count else { return false }
        var k = range.lowerBound
        for b in e.bytes {
            if bytes[k] != b { return false }
            k += 1
        }
        for id in e.ids { out.append(Int(id)) }
        return true
    }

    func store(_ h: UInt64, bytes: [UInt8], ids: [Int32]) {
        lock.lock()
        defer { lock.unlock() }
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[h] = Entry(bytes: bytes, ids: ids)
    }
}
