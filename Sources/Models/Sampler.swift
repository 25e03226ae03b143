// Token selection from one row of logits: greedy, temperature, top-k, top-p, and the log-probability of
// the chosen token under the model's own (untempered, untruncated) softmax.
//
// The rules (those of the first, naive implementation, kept as `NaiveSampler` in Tests/ModelsTests):
//   lse       = m + log Σ_v exp(l_v − m)                                  m = max logit
//   greedy    → the first index of the max
//   weights   w_v = exp((l_v − m) / t) over the candidates, in Double:
//               all tokens in id order; or, with top-k or top-p, the tokens sorted by logit (ties: lower id
//               first), the first k of them, then the shortest prefix whose share of their Σ w reaches p
//   draw      u = U · Σ w (U: 53 random bits in [0, 1)); the first candidate i where u − w_0 − … − w_i < 0
//
// This implementation returns the same token for the same generator state, without the naive one's
// O(V) Double exps per draw and its sort of the whole vocabulary:
//   - Σ_v exp(l_v − m) in float lanes (Tensors/SoftmaxSums, VectorMath's exp: relative error ≤ 8.1e-8
//     measured, 1e-7 assumed), each term added in Double: the log-probs agree with the naive ones to 1e-7;
//   - top-k by a bounded heap, O(V + k log k), instead of sorting V;
//   - top-p by a histogram of the float weights that finds the smallest set of top tokens surely holding
//     mass p, and sorting only that set;
//   - the weights of kept candidates in Double exactly as the naive rule computes them, so a draw among
//     k candidates is bit-identical;
//   - where the rule needs a sum over all V tokens (the draw without truncation, the top-p normaliser), the
//     float sum and a bound E on its error decide whenever u (or p) lies further than E from the boundary it
//     is compared with. Otherwise — a few draws in a hundred on flat distributions, fewer on a language
//     model's — the exact Double computation runs, so the token is always the naive rule's.
// Legend: V vocabulary, k candidates kept, m the largest logit, t the temperature.

import Foundation
import Tensors

/// Token selection from rows of logits, with reusable scratch space for a vocabulary of `vocabSize`.
public final class Sampler {
    public let vocabSize: Int
    /// Float weights exp((l − m) / t) of the last pass (V).
    let weights: FloatBuffer
    /// Σ of `weights` over blocks of `block` tokens (V / block, rounded up).
    let blockSums: UnsafeMutablePointer<Double>
    /// Candidate ids: a heap while selecting, then sorted best first (V).
    let candidates: UnsafeMutablePointer<Int32>
    /// Double weights of the candidates, as the naive rule computes them (V).
    let exact: UnsafeMutablePointer<Double>
    /// Float mass per quarter-nat bin of the exponent, for top-p (bins).
    let histogram: UnsafeMutablePointer<Double>
    static let block = SoftmaxSums.block, bins = 256
    /// Bound on the relative error of VectorMath.exp over [−87.3, 0] (measured: at most 8.1e-8).
    static let expError = 1e-7

    /// Draws that needed the exact O(V) fallback (for tests and benchmarks).
    public private(set) var exactFallbacks = 0

    public init(vocabSize V: Int) {
        precondition(V > 0)
        vocabSize = V
        weights = FloatBuffer(count: V)
        let blocks = (V + Self.block - 1) / Self.block
        blockSums = .allocate(capacity: blocks)
        blockSums.initialize(repeating: 0, count: blocks)
        candidates = .allocate(capacity: V)
        candidates.initialize(repeating: 0, count: V)
        exact = .allocate(capacity: V)
        exact.initialize(repeating: 0, count: V)
        histogram = .allocate(capacity: Self.bins)
        histogram.initialize(repeating: 0, count: Self.bins)
    }

    deinit {
        blockSums.deallocate()
        candidates.deallocate()
        exact.deallocate()
        histogram.deallocate()
    }

    /// Picks a token from `logits` (V) and returns it with its log-probability under the untempered,
    /// untruncated softmax. Draws one number from `rng` unless greedy.
    public func sample(_ logits: ConstFloatPtr, options o: SamplingOptions, rng: inout SplitMix64) -> (Int32, Float) {
        let V = vocabSize
        let m = SoftmaxSums.max(logits, count: V)
        let untempered = !(o.greedy || o.temperature <= 0) && o.temperature == 1
        let k = o.topK > 0 ? Swift.min(o.topK, V) : 0
        // Σ exp(l − m) for the log-probs; with t = 1 the same pass gives the draw's weights.
        let z = expPass(logits, shift: m, inverseTemperature: 1, store: untempered && k == 0)
        let lse = Double(m) + Foundation.log(z.sum)
        func logp(_ v: Int) -> Float { Float(Double(logits[v]) - lse) }
        if o.greedy || o.temperature <= 0 {
            var arg = 0
            while logits[arg] != m { arg += 1 }
            return (Int32(arg), logp(arg))
        }
        let t = Double(o.temperature)
        let r = Double(rng.next() >> 11) / Double(1 << 53)
        let v: Int
        if k == 0 && o.topP >= 1 {
            let pass = untempered ? z : expPass(logits, shift: m, inverseTemperature: Float(1 / t), store: true)
            v = drawAll(logits, shift: m, temperature: t, pass: pass, unit: r, argumentError: untempered ? 0x1p-24 : 3 * 0x1p-24)
        } else if k > 0 {
            select(logits, count: k)
            fillExact(logits, count: k, shift: m, temperature: t)
            var keep = k
            if o.topP < 1 {
                var total = 0.0
                for i in 0..<k { total += exact[i] }
                keep = nucleus(count: k, total: total, p: Double(o.topP)) ?? k
            }
            v = draw(count: keep, unit: r)
        } else {
            let s = Float(1 / t)
            let pass = untempered ? z : expPass(logits, shift: m, inverseTemperature: s, store: true)
            v = drawNucleus(logits, shift: m, inverseTemperature: untempered ? 1 : s, temperature: t, pass: pass, unit: r, p: Double(o.topP),
                            argumentError: untempered ? 0x1p-24 : 3 * 0x1p-24)
        }
        return (Int32(v), logp(v))
    }

    /// The same selection from an array of logits (allocates scratch space; for tests and one-off use).
    public static func sample(_ logits: [Float], options: SamplingOptions, rng: inout SplitMix64) -> (Int32, Float) {
        let s = Sampler(vocabSize: logits.count)
        return logits.withUnsafeBufferPointer { s.sample($0.baseAddress!, options: options, rng: &rng) }
    }

    // MARK: - the vectorised pass

    typealias ExpPass = SoftmaxSums.Totals

    /// w̃_v = exp((l_v − m)·s) in float lanes: Σ w̃ and Σ w̃·|x̃|; with `store`, w̃ into `weights` and the
    /// block sums into `blockSums`.
    @inline(__always)
    func expPass(_ logits: ConstFloatPtr, shift m: Float, inverseTemperature s: Float, store: Bool) -> ExpPass {
        SoftmaxSums.forward(logits, count: vocabSize, shift: m, scale: s, weights: store ? weights.pointer : nil,
                            blockSums: store ? blockSums : nil)
    }

    /// A bound on |Σ w̃ − Σ w| (and on any prefix sum) for the exact Double weights w.
    func errorBound(_ pass: ExpPass, argumentError: Double) -> Double {
        // Per term: exp's own error and the float exponent's rounding (|Δx| ≤ argumentError·|x|), with a
        // margin of 2 (Σ w|x| is itself summed in float lanes); the sums in Double and the naive rule's own
        // sequential Double rounding (V·2⁻⁵³ relative) fit in 1e-9; terms below e^−87.3, which exp clamps, in 1e-37 each.
        return 2 * (pass.sum * Self.expError + pass.weightedExponent * argumentError) + 1e-9 * pass.sum + Double(vocabSize) * 1e-37
    }

    // MARK: - draws

    /// The draw over all tokens in id order.
    func drawAll(_ logits: ConstFloatPtr, shift m: Float, temperature t: Double, pass: ExpPass, unit r: Double,
                 argumentError: Double) -> Int {
        let V = vocabSize, B = Self.block
        let E = errorBound(pass, argumentError: argumentError)
        let target = r * pass.sum
        // Find the first prefix sum above the target: whole blocks, then tokens.
        var before = 0.0, b = 0, start = 0
        while start < V && before + blockSums[b] <= target {
            before += blockSums[b]
            b += 1
            start += B
        }
        if start < V {
            var c = before, i = start
            let end = Swift.min(V, start + B)
            while i < end {
                let next = c + Double(weights.pointer[i])
                if next > target {
                    if next - target > 2 * E && target - c >= 2 * E { return i }
                    break
                }
                c = next
                i += 1
            }
        }
        exactFallbacks += 1
        return exactDrawAll(logits, shift: m, temperature: t, unit: r)
    }

    /// The naive rule's draw over all tokens, in Double.
    func exactDrawAll(_ logits: ConstFloatPtr, shift m: Float, temperature t: Double, unit r: Double) -> Int {
        let V = vocabSize
        var total = 0.0
        for v in 0..<V {
            let w = Foundation.exp((Double(logits[v]) - Double(m)) / t)
            exact[v] = w
            total += w
        }
        var u = r * total
        for v in 0..<V {
            u -= exact[v]
            if u < 0 { return v }
        }
        return V - 1
    }

    /// The draw among the first `count` candidates with their exact weights (bit-identical to the naive rule).
    func draw(count: Int, unit r: Double) -> Int {
        var total = 0.0
        for i in 0..<count { total += exact[i] }
        var u = r * total
        for i in 0..<count {
            u -= exact[i]
            if u < 0 { return Int(candidates[i]) }
        }
        return Int(candidates[count - 1])
    }

    /// The naive rule's nucleus size among `count` sorted candidates with exact weights, given the
    /// normaliser `total`; nil when the running share never reaches p.
    func nucleus(count: Int, total: Double, p: Double) -> Int? {
        var acc = 0.0
        for i in 0..<count {
            acc += exact[i] / total
            if acc >= p { return i + 1 }
        }
        return nil
    }

    /// Top-p without top-k. The nucleus is a prefix of the tokens sorted by logit, so it lies inside every
    /// set S = {v : x̃_v ≥ τ} whose share of the mass is surely at least p: a histogram of the float weights
    /// over x̃ (quarter-nat bins) picks the smallest such S, and only S is sorted and weighed exactly. The
    /// normaliser is Σ_S exact + Σ_tail float; the nucleus is decided when every share lies further from p
    /// than that sum's error bound. Otherwise the tail is weighed exactly too, and only if the shares still
    /// come within rounding of p is the whole vocabulary sorted as the naive rule sorts it.
    func drawNucleus(_ logits: ConstFloatPtr, shift m: Float, inverseTemperature s: Float, temperature t: Double,
                     pass: ExpPass, unit r: Double, p: Double, argumentError: Double) -> Int {
        let V = vocabSize, w = weights.pointer, bins = Self.bins
        let E = errorBound(pass, argumentError: argumentError)
        @inline(__always) func bin(_ v: Int) -> Int {
            var x = logits[v] - m
            if s != 1 { x = x * s }
            return x > -Float(bins) / 4 ? Int(-x * 4) : bins - 1
        }
        histogram.update(repeating: 0, count: bins)
        for v in 0..<V { histogram[bin(v)] += Double(w[v]) }
        // The first bins whose float mass surely holds a share ≥ p of the exact total.
        var last = bins - 1, mass = 0.0
        for b in 0..<bins {
            mass += histogram[b]
            if mass - E >= p * (pass.sum + E) { last = b; break }
        }
        var n = 0
        for v in 0..<V where bin(v) <= last { candidates[n] = Int32(v); n += 1 }
        sortCandidates(logits, count: n)
        fillExact(logits, count: n, shift: m, temperature: t)
        var head = 0.0
        for i in 0..<n { head += exact[i] }
        // The tail in float, bounded as in `errorBound` with |x̃| < (b + 1)/4 in bin b (87.3 in the last).
        var tail = 0.0, tailWX = 0.0
        for b in (last + 1)..<bins where last + 1 < bins {
            tail += histogram[b]
            tailWX += histogram[b] * (b == bins - 1 ? 87.3 : Double(b + 1) / 4)
        }
        let tailError = 2 * (tail * Self.expError + tailWX * argumentError) + Double(V) * 1e-37
        if let keep = certainNucleus(count: n, total: head + tail, error: tailError + 1e-9 * (head + tail), p: p) {
            return draw(count: keep, unit: r)
        }
        // The tail exactly (in id order; the naive rule adds it in sorted order, within 1e-11 of this).
        var exactTail = 0.0
        for v in 0..<V where bin(v) > last { exactTail += Foundation.exp((Double(logits[v]) - Double(m)) / t) }
        if let keep = certainNucleus(count: n, total: head + exactTail, error: 1e-11 * (head + exactTail), p: p) {
            return draw(count: keep, unit: r)
        }
        // Exactly as the naive rule: every token's weight in sorted order.
        exactFallbacks += 1
        select(logits, count: V)
        fillExact(logits, count: V, shift: m, temperature: t)
        var total = 0.0
        for i in 0..<V { total += exact[i] }
        return draw(count: nucleus(count: V, total: total, p: p) ?? V, unit: r)
    }

    /// The nucleus size among the sorted candidates (exact weights) given a normaliser `total` within
    /// `error` of the naive rule's, or nil when a share is too close to p (or never reaches it) to be sure.
    func certainNucleus(count n: Int, total: Double, error: Double, p: Double) -> Int? {
        guard error < total / 4 else { return nil }
        // |share − naive share| ≤ share · error / (total − error) + rounding ≤ 1.34 · error / total + 1e-12.
        let margin = 2 * error / total + 1e-12
        var acc = 0.0, previous = 0.0
        for i in 0..<n {
            acc += exact[i] / total
            if acc >= p { return acc - p > margin && p - previous > margin ? i + 1 : nil }
            previous = acc
        }
        return nil
    }

    /// exact[i] = exp((l − m) / t) in Double for the first `count` candidates.
    func fillExact(_ logits: ConstFloatPtr, count: Int, shift m: Float, temperature t: Double) {
        for i in 0..<count { exact[i] = Foundation.exp((Double(logits[Int(candidates[i])]) - Double(m)) / t) }
    }

    // MARK: - top candidates

    /// Whether token a ranks below token b: lower logit, or the same logit and a higher id.
    @inline(__always)
    static func worse(_ logits: ConstFloatPtr, _ a: Int32, _ b: Int32) -> Bool {
        let la = logits[Int(a)], lb = logits[Int(b)]
        return la < lb || (la == lb && a > b)
    }

    /// Restores the min-heap order (root: the worst) of candidates[0..<n] below `start`.
    @inline(__always)
    func siftDown(_ logits: ConstFloatPtr, _ start: Int, _ n: Int) {
        let h = candidates
        var i = start
        while true {
            let l = 2 * i + 1
            if l >= n { return }
            var c = l
            if l + 1 < n && Self.worse(logits, h[l + 1], h[l]) { c = l + 1 }
            if !Self.worse(logits, h[c], h[i]) { return }
            h.swapAt(i, c)
            i = c
        }
    }

    /// Sorts candidates[0..<n] best first (heap sort: no allocation).
    func sortCandidates(_ logits: ConstFloatPtr, count n: Int) {
        var i = n / 2
        while i > 0 { i -= 1; siftDown(logits, i, n) }
        popAll(logits, count: n)
    }

    /// Turns the min-heap candidates[0..<n] into a best-first array by moving the worst to the back.
    func popAll(_ logits: ConstFloatPtr, count n: Int) {
        var n = n
        while n > 1 {
            n -= 1
            candidates.swapAt(0, n)
            siftDown(logits, 0, n)
        }
    }

    /// Leaves in candidates[0..<k] the k best ids, sorted best first. A min-heap of the k best so far sees
    /// each id once; ids arrive in increasing order, so a new id displaces the root only with a strictly
    /// larger logit, and runs of 8 logits none above the root's are skipped with one vector compare.
    func select(_ logits: ConstFloatPtr, count k: Int) {
        let V = vocabSize, h = candidates
        for v in 0..<k { h[v] = Int32(v) }
        var i = k / 2
        while i > 0 { i -= 1; siftDown(logits, i, k) }
        var threshold = logits[Int(h[0])]
        var v = k
        while v < V {
            if v + 8 <= V && !any(UnsafeRawPointer(logits + v).loadUnaligned(as: Float8.self) .> Float8(repeating: threshold)) {
                v += 8
                continue
            }
            let end = Swift.min(V, v + 8)
            while v < end {
                if logits[v] > threshold {
                    h[0] = Int32(v)
                    siftDown(logits, 0, k)
                    threshold = logits[Int(h[0])]
                }
                v += 1
            }
        }
        popAll(logits, count: k)
    }
}

fileprivate extension UnsafeMutablePointer {
    @inline(__always) func swapAt(_ i: Int, _ j: Int) {
        let t = self[i]; self[i] = self[j]; self[j] = t
    }
}
