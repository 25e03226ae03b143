// XXH64 (xxHash, 64-bit), implemented from the public xxHash specification; the manifest checksum.

import Foundation

/// The XXH64 hash, usable in one call or incrementally (`update` then `digest`).
///
/// Matches the reference implementation bit for bit (the same function zstd uses for frame checksums,
/// which keep its low 32 bits). Used for checkpoint files, where it runs at memory speed.
public struct XXH64: Sendable {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    private let seed: UInt64
    private var v1, v2, v3, v4: UInt64
    private var total: UInt64 = 0
    /// Up to 31 bytes not yet consumed by a full 32-byte stripe.
    private var pending: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var pendingCount = 0

    /// A fresh hash state.
    public init(seed: UInt64 = 0) {
        self.seed = seed
        v1 = seed &+ Self.p1 &+ Self.p2
        v2 = seed &+ Self.p2
        v3 = seed
        v4 = seed &- Self.p1
    }

    /// The hash of `bytes` in one call.
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        var h = XXH64(seed: seed)
        h.update(bytes)
        return h.digest()
    }

    /// The hash of `data` in one call.
    public static func hash(_ data: Data, seed: UInt64 = 0) -> UInt64 {
        data.withUnsafeBytes { hash($0, seed: seed) }
    }

    /// The hash of a byte array in one call.
    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }

    /// Formats a hash as 16 lowercase hex digits (the manifest's spelling).
    public static func hex(_ value: UInt64) -> String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x &<< r) | (x &>> (64 &- r)) }

    @inline(__always) private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }

    @inline(__always) private static func merge(_ acc: UInt64, _ v: UInt64) -> UInt64 {
        (acc ^ round(0, v)) &* p1 &+ p4
    }

    /// Consumes 32-byte stripes from `p` (count must be a multiple of 32).
    @inline(__always)
    private mutating func stripes(_ p: UnsafeRawPointer, _ count: Int) {
        var a = v1, b = v2, c = v3, d = v4
        var i = 0
        while i < count {
            a = Self.round(a, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            b = Self.round(b, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i &+ 8, as: UInt64.self)))
            c = Self.round(c, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i &+ 16, as: UInt64.self)))
            d = Self.round(d, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i &+ 24, as: UInt64.self)))
            i &+= 32
        }
        v1 = a; v2 = b; v3 = c; v4 = d
    }

    /// Feeds more bytes.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var p = bytes.baseAddress, bytes.count > 0 else { return }
        var n = bytes.count
        total &+= UInt64(n)
        if pendingCount > 0 {
            let take = min(32 - pendingCount, n)
            let at = pendingCount
            withUnsafeMutableBytes(of: &pending) { $0.baseAddress!.advanced(by: at).copyMemory(from: p, byteCount: take) }
            pendingCount += take; p += take; n -= take
            guard pendingCount == 32 else { return }
            var stripe = pending
            withUnsafeBytes(of: &stripe) { stripes($0.baseAddress!, 32) }
            pendingCount = 0
        }
        let whole = n & ~31
        if whole > 0 { stripes(p, whole) }
        if n > whole {
            withUnsafeMutableBytes(of: &pending) { $0.baseAddress!.copyMemory(from: p + whole, byteCount: n - whole) }
            pendingCount = n - whole
        }
    }

    /// Feeds the bytes of `data`.
    public mutating func update(_ data: Data) {
        data.withUnsafeBytes { update($0) }
    }

    /// The hash of everything fed so far (the state stays usable).
    public func digest() -> UInt64 {
        var h: UInt64
        if total >= 32 {
            h = Self.rotl(v1, 1) &+ Self.rotl(v2, 7) &+ Self.rotl(v3, 12) &+ Self.rotl(v4, 18)
            h = Self.merge(h, v1); h = Self.merge(h, v2); h = Self.merge(h, v3); h = Self.merge(h, v4)
        } else {
            h = seed &+ Self.p5
        }
        h &+= total
        var rest = pending
        let count = pendingCount
        withUnsafeBytes(of: &rest) { raw in
            let p = raw.baseAddress!
            var i = 0
            while i + 8 <= count {
                h ^= Self.round(0, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                h = Self.rotl(h, 27) &* Self.p1 &+ Self.p4
                i += 8
            }
            if i + 4 <= count {
                h ^= UInt64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* Self.p1
                h = Self.rotl(h, 23) &* Self.p2 &+ Self.p3
                i += 4
            }
            while i < count {
                h ^= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) &* Self.p5
                h = Self.rotl(h, 11) &* Self.p1
                i += 1
            }
        }
        h ^= h &>> 33; h &*= Self.p2
        h ^= h &>> 29; h &*= Self.p3
        h ^= h &>> 32
        return h
    }
}

/// A file's size and XXH64, as recorded in a checkpoint manifest.
public struct FileChecksum: Sendable, Equatable, CustomStringConvertible {
    /// Bytes in the file.
    public let size: Int
    /// XXH64 (seed 0) of the file's bytes.
    public let xxh64: UInt64

    public init(size: Int, xxh64: UInt64) { self.size = size; self.xxh64 = xxh64 }

    /// Reads `url` in 8 MiB chunks and hashes it; throws `CheckpointIOError` when it cannot be read.
    public init(contentsOf url: URL) throws {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointIOError(path: url.path, operation: "open for reading", errno: errno) }
        defer { close(fd) }
        let chunk = 8 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var state = XXH64()
        var size = 0
        while true {
            let n = read(fd, buffer, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw CheckpointIOError(path: url.path, operation: "read", errno: errno)
            }
            if n == 0 { break }
            state.update(UnsafeRawBufferPointer(start: buffer, count: n))
            size += n
        }
        self.size = size
        self.xxh64 = state.digest()
    }

    public var description: String { "\(size) bytes, xxh64 \(XXH64.hex(xxh64))" }
}
