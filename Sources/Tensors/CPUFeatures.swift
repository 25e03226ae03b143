// The processor features the matrix kernels are chosen by, read once with cpuid (CShims).

import CShims

/// Vector-instruction features of this processor that the operating system has enabled.
public struct CPUFeatures: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let avx2 = CPUFeatures(rawValue: UInt32(DUALIGN_CPU_AVX2))
    public static let fma = CPUFeatures(rawValue: UInt32(DUALIGN_CPU_FMA))
    public static let avx512f = CPUFeatures(rawValue: UInt32(DUALIGN_CPU_AVX512F))
    public static let avx512bw = CPUFeatures(rawValue: UInt32(DUALIGN_CPU_AVX512BW))
    public static let avx512dq = CPUFeatures(rawValue: UInt32(DUALIGN_CPU_AVX512DQ))
    public static let avx512vl = CPUFeatures(rawValue: UInt32(DUALIGN_CPU_AVX512VL))
    public static let avx512vnni = CPUFeatures(rawValue: UInt32(DUALIGN_CPU_AVX512VNNI))
    public static let avx512bf16 = CPUFeatures(rawValue: UInt32(DUALIGN_CPU_AVX512BF16))

    /// AVX-512 F, BW, DQ and VL: what oneDNN calls `avx512_core`, the level its AVX-512 kernels need.
    public static let avx512Core: CPUFeatures = [.avx512f, .avx512bw, .avx512dq, .avx512vl]

    /// This processor's features.
    public static let current = CPUFeatures(rawValue: dualign_cpu_features())

    public var description: String {
        let names: [(CPUFeatures, String)] = [(.avx2, "avx2"), (.fma, "fma"), (.avx512f, "avx512f"), (.avx512bw, "avx512bw"),
                                              (.avx512dq, "avx512dq"), (.avx512vl, "avx512vl"), (.avx512vnni, "avx512vnni"),
                                              (.avx512bf16, "avx512bf16")]
        return names.filter { contains($0.0) }.map(\.1).joined(separator: " ")
    }

    /// The processor's family and model numbers (cpuid leaf 1, extended fields added), e.g. 25/17 for
    /// AMD Zen 4 (Genoa), 26/2 for Zen 5: AVX-512 runs on 256-bit units on Zen 4, on 512-bit units on Zen 5.
    public static let signature: (family: Int, model: Int) = {
        var family: Int32 = 0, model: Int32 = 0
        dualign_cpu_signature(&family, &model)
        return (Int(family), Int(model))
    }()
}
