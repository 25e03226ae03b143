// A userspace CSPRNG: the ChaCha20 keystream (RFC 8439 §2.3–2.4) under a key of 32 bytes from the OS.
//
// This is how OpenBSD's arc4random and Linux's getrandom/random.c turn a little kernel entropy into many
// random bytes: the kernel supplies a 256-bit key, and the keystream of a stream cipher under that key is
// the output. ChaCha20's keystream is indistinguishable from random without the key (its security as a
// cipher), so the output is as good as reading the kernel generator, at a fraction of the cost: the secure
// DP-SGD noise needs 12 bytes per parameter per step (1.6 GB per step for 135 M parameters); reading
// /dev/urandom costs ≈2.5 ns of CPU per byte here (system call, kernel ChaCha20, copy), this generator
// ≈0.63 ns per byte on one thread.
//
// - Key: 32 bytes read from /dev/urandom (fallback: `SystemRandomNumberGenerator`), fresh for every
//   generator instance, so two instances (two threads' parts) never share a stream.
// - Nonce and counter as RFC 8439 §2.3: state words 12 (32-bit block counter, from 0) and 13–15 (96-bit
//   nonce, 0: each key is used for one stream only). Before the counter would wrap (2^32 blocks = 256 GiB)
//   the generator takes a new key from the OS and restarts the counter: before a refill that would pass
//   2^32, and after one that reaches it exactly.
// - Speed: eight blocks at once, one block per lane of SIMD8<UInt32> (state word i of the eight blocks in
//   one vector): two SSE2 registers per vector on baseline x86-64 (as fast as four lanes there), one AVX2
//   register when the package is built for a CPU that has it (measured 2× faster). The rotations are
//   written `(x << n) &+ (x >> (32 − n))` (equal to the rotation since the two parts share no bit): written
//   with `|`, LLVM recognises a rotate and, having no vector rotate on baseline x86-64, does it one lane at
//   a time (5× slower).
// - The secure noise's bulk does not go through this Swift code where the processor has AVX2 or AVX-512:
//   `withNextRefills` hands the cipher's state to a C kernel (SecureNoiseKernel.swift, CShims'
//   secure_noise.c) that computes the same words in the same order (0.31 ns per byte with AVX2, 0.19 with
//   AVX-512, against ≈0.63 here: CPU time on Zen 4, 2026-12-07), and the generator advances its counter and re-keys as a run of
//   `refill`s would.
// - `block` is the scalar reference of RFC 8439 §2.3.1 beside the eight-lane `eightBlocks`; `keystream`
//   gives the bytes in the RFC's order (for the test vectors). The generator hands out the eight-lane
//   words in lane order (word i of blocks 0–7, then word i + 1, …): a fixed permutation of the keystream,
//   which is as random as the keystream.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The ChaCha20 block function of RFC 8439 and an eight-block SIMD version of it.
public struct ChaCha20 {
    /// "expand 32-byte k" as four little-endian words (RFC 8439 §2.3).
    static let constants: [UInt32] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]

    /// The 16-word input state: constants, key (8 words), counter, nonce (3 words).
    public private(set) var state: [UInt32]                                      // (16)

    /// A stream under `key` (8 little-endian words) and `nonce` (3 words), starting at block `counter`.
    public init(key: [UInt32], nonce: [UInt32] = [0, 0, 0], counter: UInt32 = 0) {
        precondition(key.count == 8 && nonce.count == 3, "ChaCha20 takes a key of 8 words and a nonce of 3")
        state = Self.constants + key + [counter] + nonce
    }

    /// A stream under a 32-byte key and a 12-byte nonce, as the RFC writes them.
    public init(keyBytes: [UInt8], nonceBytes: [UInt8], counter: UInt32 = 0) {
        precondition(keyBytes.count == 32 && nonceBytes.count == 12, "ChaCha20 takes 32 key bytes and 12 nonce bytes")
        self.init(key: Self.words(keyBytes), nonce: Self.words(nonceBytes), counter: counter)
    }

    /// The block counter (state word 12).
    public var counter: UInt32 {
        get { state[12] }
        set { state[12] = newValue }
    }

    static func words(_ bytes: [UInt8]) -> [UInt32] {
        stride(from: 0, to: bytes.count, by: 4).map { i in
            UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
        }
    }

    // MARK: Scalar reference (RFC 8439 §2.1–2.3)

    @inline(__always)
    private static func rotate(_ x: UInt32, _ n: UInt32) -> UInt32 { x << n | x >> (32 - n) }

    @inline(__always)
    private static func quarterRound(_ x: inout [UInt32], _ a: Int, _ b: Int, _ c: Int, _ d: Int) {
        x[a] &+= x[b]; x[d] ^= x[a]; x[d] = rotate(x[d], 16)
        x[c] &+= x[d]; x[b] ^= x[c]; x[b] = rotate(x[b], 12)
        x[a] &+= x[b]; x[d] ^= x[a]; x[d] = rotate(x[d], 8)
        x[c] &+= x[d]; x[b] ^= x[c]; x[b] = rotate(x[b], 7)
    }

    /// One 64-byte block as 16 words: 20 rounds (10 column + diagonal pairs) on the state, plus the state.
    public static func block(_ input: [UInt32]) -> [UInt32] {
        var x = input
        for _ in 0..<10 {
            quarterRound(&x, 0, 4, 8, 12); quarterRound(&x, 1, 5, 9, 13)
            quarterRound(&x, 2, 6, 10, 14); quarterRound(&x, 3, 7, 11, 15)
            quarterRound(&x, 0, 5, 10, 15); quarterRound(&x, 1, 6, 11, 12)
            quarterRound(&x, 2, 7, 8, 13); quarterRound(&x, 3, 4, 9, 14)
        }
        return (0..<16).map { x[$0] &+ input[$0] }
    }

    // MARK: Eight blocks at once

    /// Rotation left by n, as a shift sum that stays a vector operation (see the file header).
    @inline(__always)
    private static func rotate(_ x: SIMD8<UInt32>, _ n: UInt32) -> SIMD8<UInt32> { (x &<< n) &+ (x &>> (32 - n)) }

    @inline(__always)
    private static func quarterRound(_ a: inout SIMD8<UInt32>, _ b: inout SIMD8<UInt32>, _ c: inout SIMD8<UInt32>, _ d: inout SIMD8<UInt32>) {
        a &+= b; d ^= a; d = rotate(d, 16)
        c &+= d; b ^= c; b = rotate(b, 12)
        a &+= b; d ^= a; d = rotate(d, 8)
        c &+= d; b ^= c; b = rotate(b, 7)
    }

    /// The blocks at counters c … c + 7 of the 16-word `input` (c = input[12]), lane j holding block c + j:
    /// out[i][j] is word i of block c + j. The caller keeps c + 7 from wrapping.
    @inline(__always)
    static func eightBlocks(_ input: UnsafePointer<UInt32>, into out: UnsafeMutablePointer<SIMD8<UInt32>>) {  // out: (16) × 8 lanes
        @inline(__always) func splat(_ i: Int) -> SIMD8<UInt32> { SIMD8(repeating: input[i]) }
        let counters = splat(12) &+ SIMD8<UInt32>(0, 1, 2, 3, 4, 5, 6, 7)
        var x0 = splat(0), x1 = splat(1), x2 = splat(2), x3 = splat(3)
        var x4 = splat(4), x5 = splat(5), x6 = splat(6), x7 = splat(7)
        var x8 = splat(8), x9 = splat(9), x10 = splat(10), x11 = splat(11)
        var x12 = counters, x13 = splat(13), x14 = splat(14), x15 = splat(15)
        for _ in 0..<10 {
            quarterRound(&x0, &x4, &x8, &x12); quarterRound(&x1, &x5, &x9, &x13)
            quarterRound(&x2, &x6, &x10, &x14); quarterRound(&x3, &x7, &x11, &x15)
            quarterRound(&x0, &x5, &x10, &x15); quarterRound(&x1, &x6, &x11, &x12)
            quarterRound(&x2, &x7, &x8, &x13); quarterRound(&x3, &x4, &x9, &x14)
        }
        out[0] = x0 &+ splat(0); out[1] = x1 &+ splat(1); out[2] = x2 &+ splat(2); out[3] = x3 &+ splat(3)
        out[4] = x4 &+ splat(4); out[5] = x5 &+ splat(5); out[6] = x6 &+ splat(6); out[7] = x7 &+ splat(7)
        out[8] = x8 &+ splat(8); out[9] = x9 &+ splat(9); out[10] = x10 &+ splat(10); out[11] = x11 &+ splat(11)
        out[12] = x12 &+ counters; out[13] = x13 &+ splat(13); out[14] = x14 &+ splat(14); out[15] = x15 &+ splat(15)
    }

    /// The next `8 · groups` blocks in lane order (`eightBlocks` per group), advancing the counter.
    /// - Precondition: the counter does not wrap (`counter + 8 · groups ≤ 2^32`).
    public mutating func nextBlocks(groups: Int, into out: UnsafeMutablePointer<SIMD8<UInt32>>) {   // out: (16 · groups)
        precondition(UInt64(counter) + 8 * UInt64(groups) <= 1 << 32, "ChaCha20's 32-bit block counter would wrap")
        state.withUnsafeMutableBufferPointer { s in
            for g in 0..<groups {
                Self.eightBlocks(s.baseAddress!, into: out + 16 * g)
                s[12] &+= 8
            }
        }
    }

    /// The keystream's next `8 · groups` blocks as bytes in RFC 8439 order (block by block, words
    /// little-endian), from the eight-lane path.
    public mutating func keystream(groups: Int) -> [UInt8] {
        let lanes = UnsafeMutablePointer<SIMD8<UInt32>>.allocate(capacity: 16 * groups)
        defer { lanes.deallocate() }
        nextBlocks(groups: groups, into: lanes)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(512 * groups)
        for g in 0..<groups {
            for j in 0..<8 {
                for i in 0..<16 {
                    let w = lanes[16 * g + i][j]
                    bytes += [UInt8(w & 0xff), UInt8(w >> 8 & 0xff), UInt8(w >> 16 & 0xff), UInt8(w >> 24)]
                }
            }
        }
        return bytes
    }
}

/// Random words from ChaCha20 under a key from the OS (see the file header); re-keyed from the OS before the
/// block counter wraps. One instance per thread; not restorable (its key is never saved).
public final class ChaCha20Random: RandomNumberGenerator {
    /// Eight-block groups computed per refill: 24 blocks, 1536 bytes (48 vectors: a multiple of 3 vectors,
    /// the noise's unit of 8 values).
    static let groupsPerRefill = 3
    private var cipher: ChaCha20
    private let buffer: UnsafeMutablePointer<SIMD8<UInt32>>           // (16 · groupsPerRefill) × 8 lanes
    private var position: Int                                         // the next unused word of `buffer`
    /// How many times the generator has taken a key from the OS (1 at creation).
    public private(set) var keyCount = 1

    public init() {
        cipher = ChaCha20(key: Self.osKey())
        buffer = .allocate(capacity: 16 * Self.groupsPerRefill)
        position = Self.wordsPerRefill
    }

    /// A generator under a fixed key (tests comparing the noise kernels on the same stream; not private).
    /// Re-keying still reads the OS.
    init(key: [UInt32]) {
        cipher = ChaCha20(key: key)
        buffer = .allocate(capacity: 16 * Self.groupsPerRefill)
        position = Self.wordsPerRefill
    }

    deinit { buffer.deallocate() }

    static var wordsPerRefill: Int { 128 * groupsPerRefill }

    /// The next eight keystream words as a vector (after `next()`, the rest of a partly used vector is skipped).
    @inline(__always)
    public func nextVector() -> SIMD8<UInt32> {
        position = (position + 7) & ~7
        if position == Self.wordsPerRefill { refill() }
        let v = buffer[position >> 3]
        position += 8
        return v
    }

    /// Calls `body` with a whole refill of fresh keystream vectors (those left in the buffer are skipped).
    @inline(__always)
    public func withNextRefill(_ body: (UnsafePointer<SIMD8<UInt32>>) -> Void) {   // (16 · groupsPerRefill) vectors
        refill()
        body(buffer)
        position = Self.wordsPerRefill
    }

    /// The next 64 random bits (two keystream words).
    public func next() -> UInt64 {
        if position + 2 > Self.wordsPerRefill { refill() }
        let words = UnsafeRawPointer(buffer).assumingMemoryBound(to: UInt32.self)
        let r = UInt64(words[position]) | UInt64(words[position + 1]) << 32
        position += 2
        return r
    }

    /// Hands `body` the cipher's 16-word state for `count` whole refills computed elsewhere (the noise's C
    /// kernels), in runs (first refill, refills) that stay below the counter's wrap, then advances the counter
    /// past them, re-keying as `refill` would; the words left in the buffer are skipped. `body` computes blocks
    /// state[12] … state[12] + 24 · refills − 1 and must not change the state.
    public func withNextRefills(_ count: Int, _ body: (UnsafePointer<UInt32>, Int, Int) -> Void) {   // state: (16)
        guard count > 0 else { return }
        let blocks = UInt64(8 * Self.groupsPerRefill)
        var done = 0
        while done < count {
            if UInt64(cipher.counter) + blocks > 1 << 32 { rekey() }
            let run = min(count - done, Int(((1 << 32) - UInt64(cipher.counter)) / blocks))
            cipher.state.withUnsafeBufferPointer { body($0.baseAddress!, done, run) }
            cipher.counter = UInt32(truncatingIfNeeded: UInt64(cipher.counter) + blocks * UInt64(run))
            if cipher.counter == 0 { rekey() }                            // reached 2³² exactly
            done += run
        }
        position = Self.wordsPerRefill
    }

    /// Computes the next 24 blocks, re-keying from the OS before a refill that would pass 2³² blocks and
    /// after one that reaches it exactly (the counter is then back at 0 under the spent key).
    private func refill() {
        if UInt64(cipher.counter) + 8 * UInt64(Self.groupsPerRefill) > 1 << 32 { rekey() }
        cipher.nextBlocks(groups: Self.groupsPerRefill, into: buffer)
        if cipher.counter == 0 { rekey() }
        position = 0
    }

    /// A new key from the OS and the counter back at 0.
    func rekey() {
        cipher = ChaCha20(key: Self.osKey())
        keyCount += 1
    }

    /// Moves the block counter (tests of the re-keying).
    func setCounter(_ value: UInt32) { cipher.counter = value }

    /// The current block counter.
    var counter: UInt32 { cipher.counter }

    /// 32 bytes from /dev/urandom as 8 words, or from `SystemRandomNumberGenerator` if the device cannot be read.
    static func osKey() -> [UInt32] {
        var key = [UInt32](repeating: 0, count: 8)
        var done = 0
        let descriptor = open("/dev/urandom", O_RDONLY)
        if descriptor >= 0 {
            done = key.withUnsafeMutableBytes { SecureRandomSource.readFully(descriptor, into: $0) }
            close(descriptor)
        }
        if done < 32 {
            var system = SystemRandomNumberGenerator()
            for i in 0..<8 { key[i] = UInt32(truncatingIfNeeded: system.next()) }
        }
        return key
    }
}
