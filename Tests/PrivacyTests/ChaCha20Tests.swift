// ChaCha20 against RFC 8439's test vectors (the block function, §2.3.2, and the keystream of the
// encryption example, §2.4.2: the exact bytes), the eight-lane path against the scalar reference, and the
// generator's keys: two instances differ, and the counter never wraps (re-key from the OS, also after a
// refill that reaches 2³² exactly).

import Foundation
import XCTest
@testable import Privacy

final class ChaCha20Tests: XCTestCase {
    /// Bytes from hex text (spaces, colons and newlines ignored), as the RFC prints them.
    private func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.filter { $0.isHexDigit })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// The RFC's key 00:01:02:…:1f.
    private let rfcKey = (0..<32).map { UInt8($0) }

    func testBlockFunctionMatchesRFC8439Section232() {
        var cipher = ChaCha20(keyBytes: rfcKey, nonceBytes: hex("00:00:00:09:00:00:00:4a:00:00:00:00"), counter: 1)
        let expectedWords: [UInt32] = [
            0xe4e7_f110, 0x1559_3bd1, 0x1fdd_0f50, 0xc471_20a3, 0xc7f4_d1c7, 0x0368_c033, 0x9aaa_2204, 0x4e6c_d4c3,
            0x4664_82d2, 0x09aa_9f07, 0x05d7_c214, 0xa202_8bd9, 0xd19c_12b5, 0xb94e_16de, 0xe883_d0cb, 0x4e3c_50a2,
        ]
        XCTAssertEqual(ChaCha20.block(cipher.state), expectedWords, "scalar block function vs RFC 8439 §2.3.2 state")
        let serialized = hex("""
            10 f1 e7 e4 d1 3b 59 15 50 0f dd 1f a3 20 71 c4 c7 d1 f4 c7 33 c0 68 03 04 22 aa 9a c3 d4 6c 4e
            d2 82 64 46 07 9f aa 09 14 c2 d7 05 d9 8b 02 a2 b5 12 9c d1 de 16 4e b9 cb d0 83 e8 a2 50 3c 4e
            """)
        let keystream = cipher.keystream(groups: 1)
        XCTAssertEqual(Array(keystream[0..<64]), serialized, "eight-lane block 0 vs RFC 8439 §2.3.2 serialized block")
        XCTAssertEqual(cipher.counter, 9, "one group advances the counter by 8 blocks")
    }

    func testKeystreamMatchesRFC8439Section242() {
        // The keystream is plaintext ⊕ ciphertext of the RFC's example (key as above, nonce …4a…, counter 1).
        var cipher = ChaCha20(keyBytes: rfcKey, nonceBytes: hex("00:00:00:00:00:00:00:4a:00:00:00:00"), counter: 1)
        let plaintext = Array(("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
                               + "sunscreen would be it.").utf8)
        let ciphertext = hex("""
            6e 2e 35 9a 25 68 f9 80 41 ba 07 28 dd 0d 69 81 e9 7e 7a ec 1d 43 60 c2 0a 27 af cc fd 9f ae 0b
            f9 1b 65 c5 52 47 33 ab 8f 59 3d ab cd 62 b3 57 16 39 d6 24 e6 51 52 ab 8f 53 0c 35 9f 08 61 d8
            07 ca 0d bf 50 0d 6a 61 56 a3 8e 08 8a 22 b6 5e 52 bc 51 4d 16 cc f8 06 81 8c e9 1a b7 79 37 36
            5a f9 0b bf 74 a3 5b e6 b4 0b 8e ed f2 78 5e 42 87 4d
            """)
        XCTAssertEqual(plaintext.count, 114, "the RFC's plaintext is 114 bytes")
        let keystream = cipher.keystream(groups: 1)
        let encrypted = zip(plaintext, keystream).map { $0 ^ $1 }
        XCTAssertEqual(encrypted, ciphertext, "plaintext ⊕ keystream vs RFC 8439 §2.4.2 ciphertext")
    }

    func testEightLanesMatchTheScalarBlockFunction() {
        let key: [UInt32] = (0..<8).map { 0x9e37_79b9 &* UInt32($0 + 1) }
        var cipher = ChaCha20(key: key, nonce: [7, 8, 9], counter: 0xffff_ffe0)  // the last 32 blocks before the wrap
        let bytes = cipher.keystream(groups: 4)
        for b in 0..<32 {
            let words = ChaCha20.block(ChaCha20(key: key, nonce: [7, 8, 9], counter: 0xffff_ffe0 &+ UInt32(b)).state)
            let expected = words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }
            XCTAssertEqual(Array(bytes[(64 * b)..<(64 * b + 64)]), expected, "block \(b) of 32: eight-lane vs scalar")
        }
    }

    func testGeneratorsHaveTheirOwnKeysAndReKeyBeforeTheCounterWraps() {
        let a = ChaCha20Random(), b = ChaCha20Random()
        let wordsA = (0..<64).map { _ in a.next() }, wordsB = (0..<64).map { _ in b.next() }
        XCTAssertNotEqual(wordsA, wordsB, "two generators (two OS keys) give different streams")
        XCTAssertEqual(Set(wordsA).count, 64, "no repeated 64-bit word in 64 draws")
        // Put the counter 10 blocks before 2³²: the next refill (24 blocks) would wrap, so it takes a new key.
        a.setCounter(UInt32.max - 9)
        a.withNextRefill { _ in }
        XCTAssertEqual(a.keyCount, 2, "a refill that would pass 2³² blocks takes a new key from the OS")
        XCTAssertEqual(a.counter, 24, "after re-keying the counter starts again at 0 (then one refill of 24 blocks)")
    }

    func testGeneratorReKeysAfterARefillThatReachesTheWrapExactly() {
        let g = ChaCha20Random()
        g.setCounter(UInt32(truncatingIfNeeded: (1 << 32) - 24))           // one refill ends at block 2³² − 1
        g.withNextRefill { _ in }
        XCTAssertEqual(g.keyCount, 2, "the counter back at 0 under the spent key: a new key from the OS")
        XCTAssertEqual(g.counter, 0, "the new key starts at block 0")
        g.withNextRefill { _ in }
        XCTAssertEqual(g.counter, 24, "and its first refill takes blocks 0–23")
    }
}
