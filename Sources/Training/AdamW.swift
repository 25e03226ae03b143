// AdamW with exactly the arithmetic of PyTorch's `torch.optim.AdamW` (single-tensor path), over flat slabs.

import Foundation
import Tensors

/// AdamW hyper-parameters (PyTorch names: lr, betas, eps, weight_decay).
public struct AdamWConfig: Codable, Equatable, Sendable {
    /// The peak learning rate; the per-step rate is passed to `AdamW.update` (see `LearningRateSchedule`).
    public var learningRate: Float
    /// Decay of the first-moment average.
    public var beta1: Float
    /// Decay of the second-moment average.
    public var beta2: Float
    /// Added to the bias-corrected RMS of the gradient.
    public var epsilon: Float
    /// Decoupled weight decay, applied only to elements inside the update's `decayRanges`.
    public var weightDecay: Float

    /// Creates a configuration; the defaults are Hugging Face Trainer's except the learning rate.
    public init(learningRate: Float = 1e-5, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }
}

/// AdamW state (first and second moments, one contiguous slab each) for one flat parameter slab.
///
/// One `update` is one optimizer step, matching `torch.optim.AdamW`:
/// ```
/// t += 1
/// p *= 1 − lr·wd                       (only inside decayRanges)
/// m  = β1·m + (1 − β1)·g
/// v  = β2·v + (1 − β2)·g²
/// p -= lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + ε)
/// ```
public final class AdamW {
    /// The hyper-parameters (the learning rate here is informational; `update` takes the step's rate).
    public let config: AdamWConfig
    /// First moments, one per parameter.
    public let m: FloatBuffer
    /// Second moments, one per parameter.
    public let v: FloatBuffer
    /// Number of updates taken so far (PyTorch's `state["step"]`); restore it together with `m` and `v`.
    public var step: Int

    /// Elements per work item: large enough to amortise dispatch, small enough to balance across cores.
    static let chunkSize = 1 << 18

    /// Creates zeroed moments for `parameterCount` parameters.
    public init(parameterCount: Int, config: AdamWConfig) {
        self.config = config
        m = FloatBuffer(count: parameterCount)
        v = FloatBuffer(count: parameterCount)
        step = 0
    }

    /// Takes one AdamW step over `count` parameters in place.
    ///
    /// - Parameters:
    ///   - parameters: the slab to update; must hold `count` (= the optimizer's parameter count) values.
    ///   - gradients: the gradient of each parameter (already clipped / averaged as desired).
    ///   - learningRate: this step's learning rate (e.g. `schedule.rate(at: optimizer.step)`).
    ///   - decayRanges: element ranges that receive weight decay; everything else (norm weights, biases) does not.
    ///     Ranges may be given in any order and may overlap.
    public func update(parameters: FloatPtr, gradients: ConstFloatPtr, count: Int,
                       learningRate: Float, decayRanges: [Range<Int>]) {
        precondition(count == m.count, "AdamW.update: \(count) parameters but the optimizer holds \(m.count)")
        step += 1

        // Scalars follow PyTorch: computed in Double from the decimal values a Python config would hold
        // (0.9, not Float(0.9)), then used as Float32 by the kernel.
        let t = Double(step)
        let lr = decimalDouble(learningRate)
        let beta1 = decimalDouble(config.beta1)
        let beta2 = decimalDouble(config.beta2)
        let biasCorrection1 = 1 - pow(beta1, t)
        let biasCorrection2 = 1 - pow(beta2, t)
        let coefficients = AdamWStepCoefficients(
            beta2: Float(beta2),
            oneMinusBeta1: Float(1 - beta1),
            oneMinusBeta2: Float(1 - beta2),
            stepSize: Float(lr / biasCorrection1),
            biasCorrection2Sqrt: Float(biasCorrection2.squareRoot()),
            epsilon: config.epsilon)
        let decayFactor = Float(1 - lr * decimalDouble(config.weightDecay))

        let work = Self.workItems(count: count, decayRanges: decayRanges)
        let moment1 = m.pointer
        let moment2 = v.pointer
        parallelFor(work.count) { itemIndex in
            let item = work[itemIndex]
            let offset = item.range.lowerBound
            adamWKernel(parameters: parameters + offset, gradients: gradients + offset,
                        m: moment1 + offset, v: moment2 + offset, count: item.range.count,
                        decayFactor: item.decays ? decayFactor : 1, coefficients: coefficients)
        }
    }

    /// One contiguous run of elements that all either decay or not.
    struct WorkItem {
        var range: Range<Int>
        var decays: Bool
    }

    /// Splits 0..<count into runs of uniform decay, each at most `chunkSize` long.
    static func workItems(count: Int, decayRanges: [Range<Int>]) -> [WorkItem] {
        // Merge the decay ranges into sorted, disjoint runs.
        var merged: [Range<Int>] = []
        for range in decayRanges.sorted(by: { $0.lowerBound < $1.lowerBound }) where !range.isEmpty {
            precondition(range.lowerBound >= 0 && range.upperBound <= count,
                         "AdamW.update: decay range \(range) is outside 0..<\(count)")
            if let last = merged.last, range.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }

        // Alternate non-decayed gaps and decayed runs, then cut each into chunks.
        var segments: [WorkItem] = []
        var cursor = 0
        for range in merged {
            if cursor < range.lowerBound { segments.append(WorkItem(range: cursor..<range.lowerBound, decays: false)) }
            segments.append(WorkItem(range: range, decays: true))
            cursor = range.upperBound
        }
        if cursor < count { segments.append(WorkItem(range: cursor..<count, decays: false)) }

        var items: [WorkItem] = []
        for segment in segments {
            var start = segment.range.lowerBound
            while start < segment.range.upperBound {
                let end = min(start + chunkSize, segment.range.upperBound)
                items.append(WorkItem(range: start..<end, decays: segment.decays))
                start = end
            }
        }
        return items
    }
}

/// The per-step Float32 scalars of the AdamW kernel.
struct AdamWStepCoefficients {
    var beta2: Float
    var oneMinusBeta1: Float
    var oneMinusBeta2: Float
    /// lr / (1 − β1^t).
    var stepSize: Float
    /// sqrt(1 − β2^t).
    var biasCorrection2Sqrt: Float
    var epsilon: Float
}

/// The Double nearest the shortest decimal that prints as `value` (so 0.9 as Float becomes exactly Python's 0.9).
private func decimalDouble(_ value: Float) -> Double {
    Double(value.description) ?? Double(value)
}

/// Updates `count` parameters and their moments in place, in PyTorch's operation order.
///
/// PyTorch updates m with `lerp(m, g, 1 − β1)`, i.e. m + (1 − β1)(g − m) for this weight; the result agrees with
/// β1·m + (1 − β1)·g to within Float32 rounding. The body runs eight lanes at a time (every lane does exactly the
/// scalar arithmetic, so results do not depend on alignment or chunking); `decayFactor` is 1 outside decay ranges,
/// which leaves p unchanged bit for bit.
@inline(__always)
private func adamWKernel(parameters: FloatPtr, gradients: ConstFloatPtr, m: FloatPtr, v: FloatPtr, count: Int,
                         decayFactor: Float, coefficients c: AdamWStepCoefficients) {
    typealias Lanes = SIMD8<Float>
    let width = Lanes.scalarCount
    let vectorCount = count / width
    let rawParameters = UnsafeMutableRawPointer(parameters)
    let rawGradients = UnsafeRawPointer(gradients)
    let rawM = UnsafeMutableRawPointer(m)
    let rawV = UnsafeMutableRawPointer(v)
    let stride = MemoryLayout<Lanes>.stride
    for block in 0..<vectorCount {
        let offset = block * stride
        let g = rawGradients.loadUnaligned(fromByteOffset: offset, as: Lanes.self)
        let oldM = rawM.loadUnaligned(fromByteOffset: offset, as: Lanes.self)
        let oldV = rawV.loadUnaligned(fromByteOffset: offset, as: Lanes.self)
        var p = rawParameters.loadUnaligned(fromByteOffset: offset, as: Lanes.self)
        p *= decayFactor
        let newM = oldM + c.oneMinusBeta1 * (g - oldM)
        let newV = c.beta2 * oldV + c.oneMinusBeta2 * g * g
        let denominator = newV.squareRoot() / c.biasCorrection2Sqrt + c.epsilon
        p -= c.stepSize * newM / denominator
        rawM.storeBytes(of: newM, toByteOffset: offset, as: Lanes.self)
        rawV.storeBytes(of: newV, toByteOffset: offset, as: Lanes.self)
        rawParameters.storeBytes(of: p, toByteOffset: offset, as: Lanes.self)
    }
    for i in (vectorCount * width)..<count {
        let g = gradients[i]
        var p = parameters[i]
        p *= decayFactor
        let newM = m[i] + c.oneMinusBeta1 * (g - m[i])
        let newV = c.beta2 * v[i] + c.oneMinusBeta2 * g * g
        m[i] = newM
        v[i] = newV
        let denominator = newV.squareRoot() / c.biasCorrection2Sqrt + c.epsilon
        p -= c.stepSize * newM / denominator
        parameters[i] = p
    }
}
