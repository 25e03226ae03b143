// `dualign bench --kind gemm`: GFLOP/s of every matrix backend at a model's shapes — the forward
// product and both backward products of each projection, for a range of row counts M and thread
// counts. Variants are measured in turn, shape by shape, and each keeps its best of several rounds, so
// a busy minute on a shared machine lowers every variant alike.

import Foundation
import Tensors

/// One of the three products of a linear layer out = inp · Wᵀ (inp (M, K), W (N, K)).
public enum GemmProduct: String, CaseIterable, Codable, Sendable {
    /// out (M, N) = inp · Wᵀ
    case forward
    /// dinp (M, K) = dout · W
    case inputGradient = "dinp"
    /// dW (N, K) += doutᵀ · inp
    case weightGradient = "dweight"
}

/// A backend and, for oneDNN, how it threads.
public struct GemmVariant: Hashable, Codable, Sendable, CustomStringConvertible {
    public let backend: MatmulBackend.RawValue
    public let threading: OneDNN.Threading.RawValue?

    public init(_ backend: MatmulBackend, _ threading: OneDNN.Threading? = nil) {
        self.backend = backend.rawValue
        self.threading = threading?.rawValue
    }

    public var description: String { threading.map { "\(backend)/\($0)" } ?? backend }

    /// Every variant that can run here: OpenBLAS, oneDNN with each threading, BLIS when installed.
    public static var available: [GemmVariant] {
        MatmulBackend.available.flatMap { b in
            b == .onednn ? OneDNN.Threading.allCases.map { GemmVariant(b, $0) } : [GemmVariant(b)]
        }
    }
}

/// One measured shape under one variant.
public struct GemmMeasurement: Codable, Sendable {
    public let layer: String
    public let product: GemmProduct
    public let M: Int, N: Int, K: Int
    public let variant: String
    public let threads: Int
    /// Best time of one product over all rounds.
    public let seconds: Double
    public var gflops: Double { 2 * Double(M) * Double(N) * Double(K) / seconds / 1e9 }
}

/// The layer shapes and the measurement loop.
public enum GemmBenchmark {
    /// A projection: N output features from K inputs.
    public struct Layer: Sendable {
        public let name: String, N: Int, K: Int
        /// The LM head's rows are the response positions only; the others see every token.
        public let maxRows: Int
        public init(name: String, N: Int, K: Int, maxRows: Int = .max) { self.name = name; self.N = N; self.K = K; self.maxRows = maxRows }
    }

    /// The projections of a Llama block and the LM head for a model of width C, MLP F, fused q|k|v QKV,
    /// attention channels A and vocabulary V.
    public static func layers(C: Int, F: Int, QKV: Int, A: Int, V: Int, headRows: Int = 1024) -> [Layer] {
        [Layer(name: "qkv", N: QKV, K: C), Layer(name: "o", N: C, K: A), Layer(name: "gate|up", N: 2 * F, K: C),
         Layer(name: "down", N: C, K: F), Layer(name: "head", N: V, K: C, maxRows: headRows)]
    }

    /// Measures every (layer, product, M) under every variant and thread count: `rounds` rounds, each
    /// running every variant in turn for at least `minimumSeconds` (and at least 2 products).
    public static func run(layers: [Layer], rows: [Int], threadCounts: [Int], variants: [GemmVariant],
                           rounds: Int = 3, minimumSeconds: Double = 0.05,
                           progress: (GemmMeasurement) -> Void = { _ in }) -> [GemmMeasurement] {
        let maxM = rows.max() ?? 1
        let maxN = layers.map(\.N).max() ?? 1, maxK = layers.map(\.K).max() ?? 1
        let headRows = min(maxM, layers.map(\.maxRows).max() ?? maxM)
        // Operands large enough for every shape: a (rows, max(N, K)), b (N, K), c (max rows or N, max(N, K)).
        let aCount = max(maxM * max(maxN, maxK), headRows * maxN)
        let a = FloatBuffer(count: aCount), b = FloatBuffer(count: maxN * maxK)
        let c = FloatBuffer(count: max(aCount, maxN * maxK))
        var rng = SplitMix64(seed: 1)
        for i in 0..<a.count { a[i] = Float(rng.nextNormal()) * 0.1 }
        for i in 0..<b.count { b[i] = Float(rng.nextNormal()) * 0.1 }
        let savedBackend = Matmul.backend, savedThreading = OneDNN.threading, savedThreads = ThreadPool.threads
        let savedBLAS = BLAS.threads
        defer {
            Matmul.backend = savedBackend; OneDNN.threading = savedThreading
            ThreadPool.threads = savedThreads; BLAS.setThreads(savedBLAS)
        }
        var out: [GemmMeasurement] = []
        for layer in layers {
            for M in rows where M <= layer.maxRows {
                for product in GemmProduct.allCases {
                    var best: [String: Double] = [:]
                    for _ in 0..<rounds {
                        for threads in threadCounts {
                            for v in variants {
                                Matmul.backend = MatmulBackend(rawValue: v.backend)!
                                if let t = v.threading { OneDNN.threading = OneDNN.Threading(rawValue: t)! }
                                ThreadPool.threads = threads
                                BLAS.setThreads(threads)
                                let s = time(product, M: M, N: layer.N, K: layer.K, a: a.pointer, b: b.pointer, c: c.pointer,
                                             minimumSeconds: minimumSeconds)
                                let key = "\(v)#\(threads)"
                                best[key] = min(best[key] ?? .infinity, s)
                            }
                        }
                    }
                    for threads in threadCounts {
                        for v in variants {
                            let m = GemmMeasurement(layer: layer.name, product: product, M: M, N: layer.N, K: layer.K,
                                                    variant: v.description, threads: threads, seconds: best["\(v)#\(threads)"]!)
                            out.append(m)
                            progress(m)
                        }
                    }
                }
            }
        }
        return out
    }

    /// The best time of one `product` over repeats lasting at least `minimumSeconds` (after one untimed call).
    static func time(_ product: GemmProduct, M: Int, N: Int, K: Int, a: FloatPtr, b: FloatPtr, c: FloatPtr,
                     minimumSeconds: Double) -> Double {
        func once() {
            switch product {
            case .forward: Matmul.forward(c, a, b, M: M, N: N, K: K)
            case .inputGradient: Matmul.backward(dinp: c, dweight: nil, dout: a, inp: a, weight: b, M: M, N: N, K: K, overwriteInput: true)
            case .weightGradient: Matmul.backward(dinp: nil, dweight: c, dout: a, inp: a, weight: b, M: M, N: N, K: K)
            }
        }
        once()
        var best = Double.infinity, total = 0.0, count = 0
        while count < 2 || total < minimumSeconds {
            let t0 = DispatchTime.now().uptimeNanoseconds
            once()
            let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = min(best, s)
            total += s
            count += 1
        }
        return best
    }
}
