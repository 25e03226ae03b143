// Every matrix backend that can run here against the Double reference, at shapes that take each
// threading path; how the backend is chosen; and the thread limits of parallelFor and oneDNN.

import XCTest
import Foundation
import CDNNL
import Tensors
import TestSupport

final class MatmulBackendTests: XCTestCase {
    /// Each (backend, threading, threads) the product can run under here.
    static var configurations: [(MatmulBackend, OneDNN.Threading, Int)] {
        MatmulBackend.available.flatMap { b -> [(MatmulBackend, OneDNN.Threading, Int)] in
            let threadings: [OneDNN.Threading] = b == .onednn ? OneDNN.Threading.allCases : [.split]
            return threadings.flatMap { t in [1, 2].map { (b, t, $0) } }
        }
    }

    /// Runs `body` under one configuration, restoring the process-wide settings afterwards.
    static func with(_ c: (MatmulBackend, OneDNN.Threading, Int), _ body: () -> Void) {
        let (threading, threads, blas) = (OneDNN.threading, ThreadPool.threads, BLAS.threads)
        OneDNN.threading = c.1
        ThreadPool.threads = c.2
        BLAS.setThreads(c.2)
        defer { OneDNN.threading = threading; ThreadPool.threads = threads; BLAS.setThreads(blas) }
        Matmul.withBackend(c.0, body)
    }

    /// Forward (plain, accumulating, strided) and both gradients against the reference, for shapes
    /// below the split threshold, split by rows (M > N) and split by columns (N > M), fp32: 1e-5 of scale.
    func testEveryBackendMatchesReference() {
        // (M, N, K): small; rows split; columns split with a ragged last block; one row (decoding).
        let shapes = [(37, 53, 29), (301, 97, 75), (9, 1000, 70), (1, 777, 96)]
        for config in Self.configurations {
            let name = "\(config.0)/\(config.1)/\(config.2) threads"
            for (M, N, K) in shapes {
                let inp = randomFloats(M * K, seed: 1), w = randomFloats(N * K, seed: 2), dout = randomFloats(M * N, seed: 3)
                let i = FloatBuffer(inp), wb = FloatBuffer(w), d = FloatBuffer(dout)
                let ref = FloatBuffer(count: M * N)
                Matmul.forwardReference(ref.pointer, i.pointer, wb.pointer, M: M, N: N, K: K)
                let rdinp = FloatBuffer(count: M * K), rdw = FloatBuffer(count: N * K)
                for k in 0..<rdinp.count { rdinp[k] = 0.5 }
                Matmul.backwardReference(dinp: rdinp.pointer, dweight: rdw.pointer, dout: d.pointer, inp: i.pointer, weight: wb.pointer,
                                         M: M, N: N, K: K)
                Self.with(config) {
                    let out = FloatBuffer(count: M * N)
                    Matmul.forward(out.pointer, i.pointer, wb.pointer, M: M, N: N, K: K)
                    assertTensorClose(out.array, ref.array, "\(name) \(M)×\(N)×\(K) out", relativeTolerance: 1e-5)

                    // Accumulating into a strided output from a strided input (row pitch + 3 and + 5).
                    let ldI = K + 3, ldO = N + 5
                    let si = FloatBuffer(count: M * ldI), so = FloatBuffer(count: M * ldO)
                    for m in 0..<M {
                        for k in 0..<K { si[m * ldI + k] = inp[m * K + k] }
                        for n in 0..<ldO { so[m * ldO + n] = n < N ? 1 : 7 }
                    }
                    Matmul.forward(so.pointer, si.pointer, wb.pointer, M: M, N: N, K: K, accumulate: true, ldInp: ldI, ldOut: ldO)
                    var strided: [Float] = [], padding: [Float] = []
                    for m in 0..<M {
                        strided += (0..<N).map { so[m * ldO + $0] - 1 }
                        padding += (N..<ldO).map { so[m * ldO + $0] }
                    }
                    assertTensorClose(strided, ref.array, "\(name) \(M)×\(N)×\(K) strided accumulate", relativeTolerance: 1e-5)
                    XCTAssertEqual(padding, [Float](repeating: 7, count: padding.count), "\(name): elements past N in a strided row must stay untouched")

                    let dinp = FloatBuffer(count: M * K), dw = FloatBuffer(count: N * K)
                    for k in 0..<dinp.count { dinp[k] = 0.5 }
                    Matmul.backward(dinp: dinp.pointer, dweight: dw.pointer, dout: d.pointer, inp: i.pointer, weight: wb.pointer, M: M, N: N, K: K)
                    assertTensorClose(dinp.array, rdinp.array, "\(name) \(M)×\(N)×\(K) dinp", relativeTolerance: 1e-5)
                    assertTensorClose(dw.array, rdw.array, "\(name) \(M)×\(N)×\(K) dweight", relativeTolerance: 1e-5)
                    // overwriteInput stores dout · W without the 0.5 already there.
                    Matmul.backward(dinp: dinp.pointer, dweight: nil, dout: d.pointer, inp: i.pointer, weight: wb.pointer, M: M, N: N, K: K,
                                    overwriteInput: true)
                    assertTensorClose(dinp.array, rdinp.array.map { $0 - 0.5 }, "\(name) \(M)×\(N)×\(K) dinp overwritten", relativeTolerance: 1e-5)
                }
            }
        }
    }

    /// DUALIGN_MATMUL beats the config key, which beats the processor's choice; "auto" defers.
    func testResolveOrder() throws {
        let avx512: CPUFeatures = [.avx2, .fma, .avx512Core]
        XCTAssertEqual(try MatmulBackend.resolve(environment: [:], configured: nil, features: avx512).backend, .onednn)
        XCTAssertEqual(try MatmulBackend.resolve(environment: [:], configured: nil, features: [.avx2, .fma]).backend, .openblas,
                       "without AVX-512 the automatic choice must be OpenBLAS")
        XCTAssertEqual(try MatmulBackend.resolve(environment: [:], configured: nil, features: [.avx2, .avx512f]).backend, .openblas,
                       "AVX-512F alone is not oneDNN's avx512_core level")
        XCTAssertEqual(try MatmulBackend.resolve(environment: [:], configured: "openblas", features: avx512).backend, .openblas)
        XCTAssertEqual(try MatmulBackend.resolve(environment: [:], configured: "auto", features: avx512).backend, .onednn)
        let forced = try MatmulBackend.resolve(environment: ["DUALIGN_MATMUL": "openblas"], configured: "onednn", features: avx512)
        XCTAssertEqual(forced.backend, .openblas, "the environment variable must win over the config key")
        XCTAssertEqual(forced.reason, "forced by environment variable DUALIGN_MATMUL")
        XCTAssertEqual(try MatmulBackend.resolve(environment: ["DUALIGN_MATMUL": "ONEDNN"], configured: nil, features: []).backend, .onednn,
                       "a forced backend runs even where the automatic choice would not pick it")
    }

    /// DUALIGN_MATMUL, when set (launch/test.sh sets it per backend), is the backend the products run on.
    func testEnvironmentVariableSelectsTheBackend() throws {
        guard let forced = ProcessInfo.processInfo.environment["DUALIGN_MATMUL"] else {
            XCTAssertEqual(Matmul.backend, MatmulBackend.automatic(), "without DUALIGN_MATMUL the processor's choice runs")
            return
        }
        XCTAssertEqual(Matmul.backend.rawValue, forced.lowercased(), "DUALIGN_MATMUL=\(forced) must select the backend of this test run")
    }

    /// An unknown name is a typed error naming where it came from and the choices.
    func testUnknownBackendNamesItsSource() {
        XCTAssertThrowsError(try MatmulBackend.resolve(environment: ["DUALIGN_MATMUL": "mkl"], configured: nil)) { error in
            let e = error as? MatmulBackendError
            XCTAssertEqual(e?.source, "environment variable DUALIGN_MATMUL")
            XCTAssertTrue(e?.description.contains("openblas, onednn, blis") == true, "\(error)")
        }
        XCTAssertThrowsError(try MatmulBackend.resolve(environment: [:], configured: "fast", configKey: "distributed.matmulBackend")) { error in
            XCTAssertEqual((error as? MatmulBackendError)?.source, "config key distributed.matmulBackend")
        }
    }

    /// The processor report agrees with /proc/cpuinfo's flags (Linux), so the automatic choice sees
    /// what the kernel sees.
    func testCPUFeaturesMatchProcCpuinfo() throws {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else {
            throw XCTSkip("no /proc/cpuinfo flags line on this system")
        }
        let flags = Set(line.split(separator: ":")[1].split(separator: " ").map(String.init))
        let pairs: [(CPUFeatures, String)] = [(.avx2, "avx2"), (.fma, "fma"), (.avx512f, "avx512f"), (.avx512bw, "avx512bw"),
                                              (.avx512dq, "avx512dq"), (.avx512vl, "avx512vl"), (.avx512vnni, "avx512_vnni"),
                                              (.avx512bf16, "avx512_bf16")]
        for (feature, flag) in pairs {
            XCTAssertEqual(CPUFeatures.current.contains(feature), flags.contains(flag), "cpuid vs /proc/cpuinfo for \(flag)")
        }
    }

    /// parallelFor never runs more bodies at once than ThreadPool.threads, uses that many when the
    /// bodies block, and runs every index exactly once.
    func testParallelForHonoursThreadCount() {
        let saved = ThreadPool.threads
        defer { ThreadPool.threads = saved }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        for threads in [1, 2, 3] {
            ThreadPool.threads = threads
            let lock = NSLock()
            var active = 0, peak = 0
            var seen = [Int](repeating: 0, count: 61)
            parallelFor(61) { i in
                lock.lock(); active += 1; peak = max(peak, active); seen[i] += 1; lock.unlock()
                usleep(1000)
                lock.lock(); active -= 1; lock.unlock()
            }
            XCTAssertLessThanOrEqual(peak, threads, "parallelFor ran \(peak) bodies at once with ThreadPool.threads = \(threads)")
            XCTAssertEqual(peak, min(threads, cores), "parallelFor should use \(min(threads, cores)) threads when bodies block, used \(peak)")
            XCTAssertEqual(seen, [Int](repeating: 1, count: 61), "every index exactly once with \(threads) threads")
        }
        // minimumPerThread: 10 items with at least 8 per thread leave one thread.
        ThreadPool.threads = 2
        var thread: [ObjectIdentifier] = []
        let lock = NSLock()
        parallelFor(10, minimumPerThread: 8) { _ in lock.lock(); thread.append(ObjectIdentifier(Thread.current)); lock.unlock() }
        XCTAssertEqual(Set(thread).count, 1, "10 items at ≥ 8 per thread must run on one thread")
    }

    /// oneDNN's OpenMP team is the configured size: after a product with openmp threading the calling
    /// thread's OpenMP setting (what oneDNN sizes its team by) is ThreadPool.threads; and with one thread
    /// (either threading) the whole product runs on the calling thread, so the process uses no more CPU
    /// time than that thread (no OpenMP workers running beside it: 2 ranks × 1 thread stay on 2 cores).
    func testOneDNNKeepsToConfiguredThreads() {
        let M = 512, N = 512, K = 512
        let a = FloatBuffer(randomFloats(M * K, seed: 4)), b = FloatBuffer(randomFloats(N * K, seed: 5)), c = FloatBuffer(count: M * N)
        for threads in [2, 1] {
            Self.with((.onednn, .openmp, threads)) {
                Matmul.forward(c.pointer, a.pointer, b.pointer, M: M, N: N, K: K)
                XCTAssertEqual(Int(omp_get_max_threads()), threads, "oneDNN's OpenMP threads after a product with ThreadPool.threads = \(threads)")
            }
        }
        func cpuSeconds(_ who: Int32) -> Double {
            var u = rusage()
            getrusage(who, &u)
            return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
        }
        usleep(300_000)   // let OpenMP workers of the 2-thread products above stop spinning
        for threading in OneDNN.Threading.allCases {
            Self.with((.onednn, threading, 1)) {
                let (process0, thread0) = (cpuSeconds(RUSAGE_SELF.rawValue), cpuSeconds(1 /* RUSAGE_THREAD */))
                for _ in 0..<20 { Matmul.forward(c.pointer, a.pointer, b.pointer, M: M, N: N, K: K) }
                let process = cpuSeconds(RUSAGE_SELF.rawValue) - process0, thread = cpuSeconds(1) - thread0
                XCTAssertLessThanOrEqual(process, 1.2 * thread + 0.02,
                                         "oneDNN \(threading) with 1 thread: the process used \(process) s of CPU, the calling thread \(thread) s")
            }
        }
    }
}
