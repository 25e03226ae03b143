// bf16 forward products for forward-only work (reference log-probs, sampling, scoring): weights and
// inputs rounded to bfloat16, products accumulated in fp32 by oneDNN's matmul (AVX512-BF16 dot
// products where the processor has them).
//
// Each weight matrix W (N, K) is converted once, on first use, into the blocked bf16 layout oneDNN's
// matmul asks for, split into column blocks that `parallelFor` runs as single-threaded products (the
// same threading as `OneDNN.Threading.split`). The converted copies belong to one `BF16Weights` and
// are keyed by the fp32 weight's address: the owner must not change the fp32 weights while the copies
// live. `Transformer.withBF16Weights` scopes them to a block of forward-only work, so training steps
// between two such blocks always see fresh copies.

import CDNNL
import CShims
import Foundation

/// bf16 copies of weight matrices and the oneDNN primitives that multiply by them.
public final class BF16Weights: @unchecked Sendable {
    /// One converted weight matrix: column blocks of W, each with its own primitives.
    final class Matrix {
        let N: Int, K: Int
        var blocks: [Block] = []
        init(N: Int, K: Int) { self.N = N; self.K = K }
    }

    /// Rows n0..<n1 of W (output columns n0..<n1) in oneDNN's bf16 layout, and the matmul primitives
    /// (rows M and output pitch given at run time) that overwrite and that accumulate.
    final class Block {
        let n0: Int, n1: Int
        var weights: dnnl_memory_t?
        var overwrite: dnnl_primitive_t?, accumulate: dnnl_primitive_t?
        init(n0: Int, n1: Int) { self.n0 = n0; self.n1 = n1 }
        deinit {
            if let weights { dnnl_memory_destroy(weights) }
            if let overwrite { dnnl_primitive_destroy(overwrite) }
            if let accumulate { dnnl_primitive_destroy(accumulate) }
        }
    }

    private var matrices: [UnsafeRawPointer: Matrix] = [:]
    private let lock = NSLock()
    /// Bytes of bf16 weights held.
    public private(set) var byteCount = 0

    public init() {}

    /// Whether oneDNN runs bf16 products with AVX512-BF16 instructions here (elsewhere it emulates them, slowly).
    public static var isNative: Bool { CPUFeatures.current.contains(.avx512bf16) }

    /// out (M, N) = bf16(inp) (M, K) · bf16(weight) (N, K)ᵀ in fp32; accumulates into out when `accumulate`.
    public func forward(_ out: FloatPtr, _ inp: ConstFloatPtr, _ weight: ConstFloatPtr, M: Int, N: Int, K: Int,
                        accumulate: Bool = false, ldInp: Int? = nil, ldOut: Int? = nil) {
        guard M > 0, N > 0 else { return }
        let matrix = self.matrix(weight, N: N, K: K)
        let ldo = ldOut ?? N
        // Inputs (M, K) rounded once, shared by every block.
        let src = UnsafeMutablePointer<UInt16>.allocate(capacity: M * K)
        defer { src.deallocate() }
        dualign_f32_to_bf16(inp, M, K, ldInp ?? K, src)
        var srcDesc = dnnl_memory_desc_t()
        var sDims: [Int64] = [Int64(M), Int64(K)]
        Self.check(dnnl_memory_desc_init_by_tag(&srcDesc, 2, &sDims, dnnl_bf16, dnnl_ab), "source descriptor")
        parallelFor(matrix.blocks.count) { b in
            let block = matrix.blocks[b]
            cdnnl_set_threads(1)
            var dDims: [Int64] = [Int64(M), Int64(block.n1 - block.n0)], dStrides: [Int64] = [Int64(ldo), 1]
            var dDesc = dnnl_memory_desc_t()
            Self.check(dnnl_memory_desc_init_by_strides(&dDesc, 2, &dDims, dnnl_f32, &dStrides), "destination descriptor")
            var sDesc = srcDesc
            var srcMemory: dnnl_memory_t?, dstMemory: dnnl_memory_t?
            Self.check(dnnl_memory_create(&srcMemory, &sDesc, OneDNN.engine, src), "source memory")
            Self.check(dnnl_memory_create(&dstMemory, &dDesc, OneDNN.engine, out + block.n0), "destination memory")
            defer { dnnl_memory_destroy(srcMemory); dnnl_memory_destroy(dstMemory) }
            var args = [dnnl_exec_arg_t(arg: 1 /* DNNL_ARG_SRC */, memory: srcMemory),
                        dnnl_exec_arg_t(arg: 33 /* DNNL_ARG_WEIGHTS */, memory: block.weights),
                        dnnl_exec_arg_t(arg: 17 /* DNNL_ARG_DST */, memory: dstMemory)]
            let stream = OneDNN.makeStream()
            defer { dnnl_stream_destroy(stream) }
            Self.check(dnnl_primitive_execute(accumulate ? block.accumulate : block.overwrite, stream, 3, &args), "bf16 matmul")
            Self.check(dnnl_stream_wait(stream), "stream wait")
        }
    }

    /// The converted matrix for `weight`, converting it on first use.
    func matrix(_ weight: ConstFloatPtr, N: Int, K: Int) -> Matrix {
        lock.lock()
        defer { lock.unlock() }
        if let m = matrices[UnsafeRawPointer(weight)] {
            precondition(m.N == N && m.K == K, "BF16Weights: the weight at \(weight) was converted as \(m.N)×\(m.K), used as \(N)×\(K)")
            return m
        }
        let m = Matrix(N: N, K: K)
        // Column blocks: one per thread, whole multiples of 64 output features.
        let pieces = max(1, min(ThreadPool.threads, N / 64))
        for p in 0..<pieces {
            let n0 = p == 0 ? 0 : (N * p / pieces) / 64 * 64
            let n1 = p == pieces - 1 ? N : (N * (p + 1) / pieces) / 64 * 64
            if n1 > n0 { m.blocks.append(Block(n0: n0, n1: n1)) }
        }
        parallelFor(m.blocks.count) { b in
            cdnnl_set_threads(1)
            Self.prepare(m.blocks[b], weight: weight, K: K)
        }
        byteCount += N * K * 2
        matrices[UnsafeRawPointer(weight)] = m
        return m
    }

    /// Creates the block's primitives (M and the output pitch left to run time) and reorders its rows of
    /// W into the bf16 layout they chose.
    static func prepare(_ block: Block, weight: ConstFloatPtr, K: Int) {
        let nb = Int64(block.n1 - block.n0), rt = cdnnl_runtime_dim()
        var src = dnnl_memory_desc_t(), wei = dnnl_memory_desc_t(), dst = dnnl_memory_desc_t(), user = dnnl_memory_desc_t()
        var sDims: [Int64] = [rt, Int64(K)], wDims: [Int64] = [Int64(K), nb], dDims: [Int64] = [rt, nb]
        var dStrides: [Int64] = [rt, 1], uStrides: [Int64] = [1, Int64(K)]
        check(dnnl_memory_desc_init_by_tag(&src, 2, &sDims, dnnl_bf16, dnnl_ab), "source descriptor")
        check(dnnl_memory_desc_init_by_tag(&wei, 2, &wDims, dnnl_bf16, dnnl_format_tag_any), "weights descriptor")
        check(dnnl_memory_desc_init_by_strides(&dst, 2, &dDims, dnnl_f32, &dStrides), "destination descriptor")
        // W's rows n0..<n1 seen as (K, nb): element (k, n) at n·K + k.
        check(dnnl_memory_desc_init_by_strides(&user, 2, &wDims, dnnl_f32, &uStrides), "fp32 weights descriptor")
        var chosen: dnnl_memory_desc_t?
        for accumulate in [false, true] {
            var desc = dnnl_matmul_desc_t()
            check(dnnl_matmul_desc_init(&desc, &src, &wei, nil, &dst), "matmul descriptor")
            var attr: dnnl_primitive_attr_t?
            check(dnnl_primitive_attr_create(&attr), "attributes")
            defer { dnnl_primitive_attr_destroy(attr) }
            if accumulate {
                var ops: dnnl_post_ops_t?
                check(dnnl_post_ops_create(&ops), "post-ops")
                check(dnnl_post_ops_append_sum(ops, 1), "sum post-op")
                check(dnnl_primitive_attr_set_post_ops(attr, ops), "set post-ops")
                dnnl_post_ops_destroy(ops)
            }
            var pd: dnnl_primitive_desc_t?
            check(dnnl_primitive_desc_create(&pd, &desc, attr, OneDNN.engine, nil), "bf16 matmul primitive descriptor")
            defer { dnnl_primitive_desc_destroy(pd) }
            let layout = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)!.pointee
            if let chosen {
                var a = chosen, b = layout
                precondition(dnnl_memory_desc_equal(&a, &b) == 1, "bf16 matmul: the accumulating primitive wants another weight layout")
            } else {
                chosen = layout
            }
            var primitive: dnnl_primitive_t?
            check(dnnl_primitive_create(&primitive, pd), "bf16 matmul primitive")
            if accumulate { block.accumulate = primitive } else { block.overwrite = primitive }
        }
        var layout = chosen!
        var weights: dnnl_memory_t?, fp32: dnnl_memory_t?
        check(dnnl_memory_create(&weights, &layout, OneDNN.engine, cdnnl_memory_allocate()), "bf16 weights memory")
        check(dnnl_memory_create(&fp32, &user, OneDNN.engine, UnsafeMutableRawPointer(mutating: weight + block.n0 * K)), "fp32 weights memory")
        defer { dnnl_memory_destroy(fp32) }
        var rpd: dnnl_primitive_desc_t?, reorder: dnnl_primitive_t?
        check(dnnl_reorder_primitive_desc_create(&rpd, &user, OneDNN.engine, &layout, OneDNN.engine, nil), "weights reorder descriptor")
        defer { dnnl_primitive_desc_destroy(rpd) }
        check(dnnl_primitive_create(&reorder, rpd), "weights reorder")
        defer { dnnl_primitive_destroy(reorder) }
        var args = [dnnl_exec_arg_t(arg: 1 /* DNNL_ARG_FROM */, memory: fp32), dnnl_exec_arg_t(arg: 17 /* DNNL_ARG_TO */, memory: weights)]
        let stream = OneDNN.makeStream()
        defer { dnnl_stream_destroy(stream) }
        check(dnnl_primitive_execute(reorder, stream, 2, &args), "weights reorder")
        check(dnnl_stream_wait(stream), "stream wait")
        block.weights = weights
    }

    static func check(_ status: dnnl_status_t, _ what: String) {
        precondition(status == dnnl_success, "oneDNN: \(what) failed with status \(status.rawValue)")
    }
}

extension OneDNN {
    /// The CPU engine of every primitive.
    nonisolated(unsafe) static let engine: dnnl_engine_t = {
        var e: dnnl_engine_t?
        BF16Weights.check(dnnl_engine_create(&e, dnnl_cpu, 0), "CPU engine")
        return e!
    }()

    /// A stream for one execution (in-order; streams are cheap and not shared between threads).
    static func makeStream() -> dnnl_stream_t {
        var s: dnnl_stream_t?
        BF16Weights.check(dnnl_stream_create(&s, engine, dnnl_stream_default_flags.rawValue), "stream")
        return s!
    }
}
