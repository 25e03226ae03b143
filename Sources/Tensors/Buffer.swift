// Flat Float32 storage: one owned, 64-byte aligned allocation, zero-initialised.

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

/// Runs `body(i)` for i in 0..<count, split over the machine's cores when the work is large enough.
@inline(__always)
public func parallelFor(_ count: Int, minimumPerThread: Int = 1, _ body: (Int) -> Void) {
    let threads = ThreadPool.threads
    if threads <= 1 || count < 2 * minimumPerThread {
        for i in 0..<count { body(i) }
        return
    }
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: count) { i in body(i) }
    }
}

/// How many threads Dualign's own (non-BLAS) kernels use.
public enum ThreadPool {
    /// Defaults to the active processor count; set by the trainer (e.g. 1 per rank under mpirun).
    nonisolated(unsafe) public static var threads: Int = ProcessInfo.processInfo.activeProcessorCount
}
