// Flat Float32 storage: one owned, 64-byte aligned allocation, zero-initialised.

import CShims
import Foundation

/// A pointer to Float32 data that a kernel reads and writes.
public typealias FloatPtr = UnsafeMutablePointer<Float>
/// A pointer to Float32 data that a kernel only reads.
public typealias ConstFloatPtr = UnsafePointer<Float>

/// One contiguous, aligned, owned run of Float32 values (a parameter, gradient or activation slab).
public final class FloatBuffer: @unchecked Sendable {
    /// The first element.
    public let pointer: FloatPtr
    /// The number of elements.
    public let count: Int

    /// Allocates `count` floats, all zero.
    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer: negative count \(count)")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    /// Allocates a copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// Sets every element to zero.
    public func zero() { pointer.update(repeating: 0, count: count) }

    /// Copies every element from `other`, which must have the same count.
    public func copy(from other: FloatBuffer) {
        precondition(other.count == count, "FloatBuffer.copy: \(other.count) != \(count)")
        pointer.update(from: other.pointer, count: count)
    }

    /// The elements as an array (for tests and small reads).
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// Element access (bounds-checked; not for hot loops).
    public subscript(i: Int) -> Float {
        get { precondition(i >= 0 && i < count); return pointer[i] }
        set { precondition(i >= 0 && i < count); pointer[i] = newValue }
    }
}

/// Runs `body(i)` for i in 0..<count on at most `ThreadPool.threads` threads at once, each taking at
/// least `minimumPerThread` items; serially when that leaves one thread.
///
/// The threads pull chunks of about count / (8 · threads) consecutive items from a shared counter, so
/// items of unequal cost (attention rows of different lengths) still balance, and no more than
/// `ThreadPool.threads` of Dispatch's workers run: several ranks on one node each keep to their share.
@inline(__always)
public func parallelFor(_ count: Int, minimumPerThread: Int = 1, _ body: (Int) -> Void) {
    let workers = min(ThreadPool.threads, count / max(1, minimumPerThread))
    if workers <= 1 {
        for i in 0..<count { body(i) }
        return
    }
    let chunk = max(1, count / (8 * workers))
    let next = UnsafeMutablePointer<Int>.allocate(capacity: 1)           // the first item not yet taken
    next.initialize(to: 0)
    defer { next.deallocate() }
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let start = dualign_atomic_fetch_add(next, chunk)
                if start >= count { break }
                for i in start..<min(start + chunk, count) { body(i) }
            }
        }
    }
}

/// How many threads Dualign's own kernels (`parallelFor`) and the oneDNN and BLIS products use.
public enum ThreadPool {
    /// Defaults to the active processor count; set by the commands (e.g. 1 per rank under mpirun).
    nonisolated(unsafe) public static var threads: Int = ProcessInfo.processInfo.activeProcessorCount
}
