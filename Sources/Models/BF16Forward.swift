// Forward-only work in bf16: inside `withBF16Weights` every projection and the LM head of this model
// multiply bf16-rounded weights and inputs with fp32 accumulation (BF16Weights), for reference
// log-probs, sampling and scoring where AVX512-BF16 makes that about twice as fast. Off by default;
// docs/benchmarks.md measures its log-prob error on SmolLM2.

import Tensors

extension Transformer {
    /// Runs `body` with this model's forward products in bf16. The weights are converted on first use
    /// and dropped when `body` returns, so the fp32 weights must not change inside `body` (an optimizer
    /// step between two blocks is fine: each block converts afresh). `backward` is not allowed inside.
    ///
    /// `using` keeps the copies beyond the block, for a model whose weights never change (a frozen
    /// reference): the caller then guarantees the fp32 weights are the ones the copies were made from.
    public func withBF16Weights<R>(using copies: BF16Weights? = nil, _ body: () throws -> R) rethrows -> R {
        precondition(bf16Weights == nil, "withBF16Weights: already inside a bf16 block of this model")
        bf16Weights = copies ?? BF16Weights()
        defer { bf16Weights = nil }
        return try body()
    }

    /// Whether forward products currently run in bf16.
    public var usesBF16Weights: Bool { bf16Weights != nil }

    /// out (M, N) = inp (M, K) · Wᵀ for the weight at slab offset `weight`: bf16 inside `withBF16Weights`,
    /// else fp32 through `Matmul`.
    @inline(__always)
    func linear(_ out: FloatPtr, _ inp: ConstFloatPtr, _ weight: Int, M: Int, N: Int, K: Int, accumulate: Bool = false) {
        if let bf16Weights {
            bf16Weights.forward(out, inp, w(weight), M: M, N: N, K: K, accumulate: accumulate)
        } else {
            Matmul.forward(out, inp, w(weight), M: M, N: N, K: K, accumulate: accumulate)
        }
    }
}
