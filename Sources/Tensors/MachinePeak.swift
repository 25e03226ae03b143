// The machine's fp32 peak, measured rather than looked up: clock speeds of cloud cores are not
// published, and the vector width that counts differs (Zen 4 runs AVX-512 on 256-bit units, Zen 5 on
// 512-bit ones). The denominator of "MFU against the machine" in `dualign bench`.

import CShims
import Foundation

public enum MachinePeak {
    static func flopsPerCall(_ width: Int, _ iterations: Int) -> Double { 2 * Double(width / 32) * 16 * Double(iterations) }

    /// GFLOP/s of fp32 multiply-adds on the widest vectors this processor has (AVX-512, else AVX2),
    /// on `threads` threads at once for about `seconds`: the best of three rounds.
    public static func fp32GFLOPS(threads: Int, seconds: Double = 0.2) -> (gflops: Double, width: Int) {
        let features = CPUFeatures.current
        let width = features.contains(.avx512f) ? 512 : (features.isSuperset(of: [.avx2, .fma]) ? 256 : 0)
        guard width > 0 else { return (0, 0) }
        // Calibrate the iteration count to `seconds` on one thread.
        var sink: Float = 0
        var iterations = 1 << 16
        while true {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = dualign_fma_flops(Int32(width), iterations, &sink)
            let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if s > 0.02 { iterations = max(1, Int(Double(iterations) * seconds / s)); break }
            iterations *= 4
        }
        let saved = ThreadPool.threads
        ThreadPool.threads = threads
        defer { ThreadPool.threads = saved }
        var best = 0.0
        for _ in 0..<3 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            parallelFor(threads) { _ in
                var s: Float = 0
                _ = dualign_fma_flops(Int32(width), iterations, &s)
            }
            let wall = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = max(best, Double(threads) * flopsPerCall(width, iterations) / wall / 1e9)
        }
        return (best, width)
    }
}
