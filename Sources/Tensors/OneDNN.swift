// oneDNN's row-major sgemm under Dualign's thread count.
// oneDNN runs on OpenMP; an OpenMP thread count belongs to the thread that sets it, so every call sets it
// (cdnnl_sgemm). Two ways to use T > 1 threads: one call with T OpenMP threads, or T single-threaded
// calls on disjoint blocks of the output from `parallelFor` (no OpenMP team at all). docs/benchmarks.md
// has the measurements behind `Threading.split` as the default.

import CDNNL

/// oneDNN's sgemm, the engine and stream of its primitives, and how calls are threaded.
public enum OneDNN {
    /// How a product uses more than one thread.
    public enum Threading: String, CaseIterable, Sendable {
        /// One `dnnl_sgemm` call with `ThreadPool.threads` OpenMP threads.
        case openmp
        /// `ThreadPool.threads` single-threaded calls on row or column blocks of the output, run by `parallelFor`.
        case split
    }

    /// How products use more than one thread (see the file comment).
    nonisolated(unsafe) public static var threading: Threading = .split

    /// Products below this many multiply-adds run on one thread: splitting them costs more than it saves.
    public static let splitMinimumMACs = 1 << 18

    /// The instruction set oneDNN's kernels use here (e.g. "avx512_core_bf16", "avx2").
    public static var isaName: String {
        switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx2: return "avx2"
        case dnnl_cpu_isa_avx: return "avx"
        case dnnl_cpu_isa_sse41: return "sse41"
        default: return "other"
        }
    }

    /// oneDNN's version, e.g. "2.6.3".
    public static var version: String {
        let v = dnnl_version()!.pointee
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    /// c (m, n) = op(a) · op(b) + beta · c, row-major; op(x) = xᵀ when the flag is set, so a is stored
    /// (m, k) or (k, m) with leading dimension lda, b (k, n) or (n, k) with ldb.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: ConstFloatPtr, lda: Int,
                     b: ConstFloatPtr, ldb: Int, beta: Float, c: FloatPtr, ldc: Int, threads: Int) {
        let macs = m * n * k
        if threads <= 1 || macs < splitMinimumMACs {
            call(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc, threads: 1)
            return
        }
        switch threading {
        case .openmp:
            call(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc, threads: threads)
        case .split:
            // Splitting rows repacks all of op(b) (k·n) in every call, splitting columns all of op(a) (m·k):
            // split the longer side. Blocks are whole 16-float vectors (one AVX-512 register).
            let rows = m > n
            let extent = rows ? m : n
            let pieces = min(threads, max(1, extent / 16))
            if pieces <= 1 {
                call(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc, threads: 1)
                return
            }
            parallelFor(pieces) { p in
                let lo = p == 0 ? 0 : (extent * p / pieces) / 16 * 16
                let hi = p == pieces - 1 ? extent : (extent * (p + 1) / pieces) / 16 * 16
                guard hi > lo else { return }
                if rows {
                    let ap = transA ? a + lo : a + lo * lda
                    call(transA, transB, hi - lo, n, k, ap, lda, b, ldb, beta, c + lo * ldc, ldc, threads: 1)
                } else {
                    let bp = transB ? b + lo * ldb : b + lo
                    call(transA, transB, m, hi - lo, k, a, lda, bp, ldb, beta, c + lo, ldc, threads: 1)
                }
            }
        }
    }

    @inline(__always)
    static func call(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ a: ConstFloatPtr, _ lda: Int,
                     _ b: ConstFloatPtr, _ ldb: Int, _ beta: Float, _ c: FloatPtr, _ ldc: Int, threads: Int) {
        let status = cdnnl_sgemm(Int32(threads), transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), 1,
                                 a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
        precondition(status == dnnl_success, "dnnl_sgemm(\(m)×\(n)×\(k), lda \(lda), ldb \(ldb), ldc \(ldc)) failed: status \(status.rawValue)")
    }
}
