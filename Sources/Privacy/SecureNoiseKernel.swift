// The secure noise's vector kernels, chosen at run time: `addNoise`'s whole refills (24 ChaCha20 blocks,
// 128 values each) drawn by CShims' secure_noise.c in AVX2 or AVX-512 where the processor has them, by the
// Swift path (`ChaCha20.eightBlocks`, `FastGaussian.opacusNormals`: SIMD8 on baseline x86-64 SSE2)
// everywhere else. The package itself stays baseline; only the C functions carry `target` attributes.
//
// The C code computes exactly what the Swift path computes: the same keystream words in the same lane order,
// the same words per value and the same float operations in the same order (no FMA contraction), so the
// noise under a given key is bit-identical whichever kernel draws it (SecureNoiseKernelTests). The discarded
// draw, the tail (fewer than 128 values) and the re-keying stay in Swift (`ChaCha20Random.withNextRefills`).
//
// DUALIGN_SECURE_NOISE_KERNEL=swift|avx2|avx512 chooses one (a kernel the processor lacks falls back to the
// best it has); tests set `FastGaussian.kernel` to run each path.

import CShims
import Foundation
import Tensors

extension FastGaussian {
    /// The code that draws `addNoise`'s whole refills.
    public enum Kernel: String, CaseIterable, Sendable {
        /// Swift SIMD8 (two SSE2 registers per vector on baseline x86-64): every processor.
        case swift
        /// secure_noise.c for AVX2 and FMA: eight blocks / eight values per 256-bit vector.
        case avx2
        /// secure_noise.c for AVX-512F: sixteen blocks (two refills side by side) per 512-bit vector, and
        /// vprold for ChaCha20's rotations.
        case avx512

        /// Whether this processor and its OS run it.
        public var isAvailable: Bool {
            let features = CPUFeatures.current
            switch self {
            case .swift: return true
            case .avx2: return features.isSuperset(of: [.avx2, .fma])
            case .avx512: return features.isSuperset(of: [.avx2, .fma, .avx512f])
            }
        }

        /// The kernels this processor runs, slowest first.
        public static var available: [Kernel] { allCases.filter(\.isAvailable) }

        /// The vector width the C functions take.
        var width: Int32 { self == .avx512 ? 512 : 256 }

        /// The one DUALIGN_SECURE_NOISE_KERNEL names when the processor runs it, else the fastest available.
        static func chosen(environment: [String: String] = ProcessInfo.processInfo.environment) -> Kernel {
            if let name = environment["DUALIGN_SECURE_NOISE_KERNEL"], let k = Kernel(rawValue: name.lowercased()), k.isAvailable {
                return k
            }
            return available.last!
        }
    }

    /// The kernel `addNoise` uses (`Kernel.chosen()` at start; tests set it to run each path).
    nonisolated(unsafe) public static var kernel: Kernel = Kernel.chosen()

    /// Adds `refills` whole refills of noise to `values` with a C kernel: the keystream of blocks
    /// c … c + 24·refills − 1 of `state` (c = state[12], which stays), 128 values per refill.
    static func kernelAddNoise(_ kernel: Kernel, state: UnsafePointer<UInt32>, refills: Int, scale: Float,
                               values: UnsafeMutablePointer<Float>) {                 // state: (16); values: (128 · refills)
        precondition(kernel != .swift && kernel.isAvailable, "the \(kernel) noise kernel does not run on this processor")
        dualign_secure_noise_add(kernel.width, state, refills, scale, values)
    }

    /// The blocks c … c + 8·groups − 1 of `cipher` (c its counter, which stays) from a C kernel, in the
    /// lane order of `ChaCha20.nextBlocks` (tests).
    static func kernelBlocks(_ kernel: Kernel, cipher: ChaCha20, groups: Int, into out: UnsafeMutablePointer<Words>) {  // out: (16 · groups)
        precondition(kernel != .swift && kernel.isAvailable, "the \(kernel) noise kernel does not run on this processor")
        precondition(UInt64(cipher.counter) + 8 * UInt64(groups) <= 1 << 32, "ChaCha20's 32-bit block counter would wrap")
        cipher.state.withUnsafeBufferPointer { s in
            UnsafeMutableRawPointer(out).withMemoryRebound(to: UInt32.self, capacity: 128 * groups) {
                dualign_chacha20_blocks(kernel.width, s.baseAddress!, groups, $0)
            }
        }
    }

    /// `opacusNormals` of `sets` triples of word vectors (set s: words[3s], words[3s + 1], words[3s + 2])
    /// from a C kernel (tests).
    static func kernelNormals(_ kernel: Kernel, words: UnsafePointer<Words>, sets: Int, into out: UnsafeMutablePointer<Float>) {  // words: (3 · sets); out: (8 · sets)
        precondition(kernel != .swift && kernel.isAvailable, "the \(kernel) noise kernel does not run on this processor")
        UnsafeRawPointer(words).withMemoryRebound(to: UInt32.self, capacity: 24 * sets) {
            dualign_opacus_normals(kernel.width, $0, sets, out)
        }
    }
}
