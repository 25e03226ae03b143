// Byte-plane shuffling: rearranges fixed-size elements so that plane k holds byte k of every element.
// On fp32 tensors the exponent bytes then sit together and compress far better under zstd.

/// Byte-plane shuffle and unshuffle of arrays of fixed-size elements (Float32 by default).
///
/// For `n` whole elements of `s` bytes, `shuffle` writes plane `k` (bytes `k*n ..< (k+1)*n` of the output)
/// as byte `k` of elements `0 ..< n`. Bytes past the last whole element (when the byte count is not a
/// multiple of `s`) are copied unchanged to the end. `unshuffle` is the exact inverse. Both are tight
/// pointer loops with a fast path for 4-byte elements; source and destination must not overlap.
public enum ByteShuffle {
    /// Writes the byte planes of `source` into `destination` (same byte count, no overlap).
    public static func shuffle(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer,
                               elementSize: Int = 4) {
        precondition(source.count == destination.count, "ByteShuffle.shuffle: source and destination sizes differ")
        precondition(elementSize >= 1, "ByteShuffle.shuffle: element size must be at least 1")
        guard let s = source.baseAddress, let d = destination.baseAddress else { return }
        let n = source.count / elementSize
        switch elementSize {
        case 1: d.copyMemory(from: s, byteCount: source.count); return
        case 4: shuffle4(s, d, n)
        default: shuffleGeneric(s, d, n, elementSize)
        }
        copyTail(s, d, whole: n * elementSize, total: source.count)
    }

    /// Restores element order from byte planes written by `shuffle` (same byte count, no overlap).
    public static func unshuffle(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer,
                                 elementSize: Int = 4) {
        precondition(source.count == destination.count, "ByteShuffle.unshuffle: source and destination sizes differ")
        precondition(elementSize >= 1, "ByteShuffle.unshuffle: element size must be at least 1")
        guard let s = source.baseAddress, let d = destination.baseAddress else { return }
        let n = source.count / elementSize
        switch elementSize {
        case 1: d.copyMemory(from: s, byteCount: source.count); return
        case 4: unshuffle4(s, d, n)
        default: unshuffleGeneric(s, d, n, elementSize)
        }
        copyTail(s, d, whole: n * elementSize, total: source.count)
    }

    /// Writes byte `plane` of every whole element of `source` into `destination` (one byte per element).
    ///
    /// Lets a caller stream the planes of a large array chunk by chunk (plane 0 of every chunk, then plane 1,
    /// …) through a small cache-resident buffer instead of shuffling into a second full-size copy.
    public static func gatherPlane(_ plane: Int, of source: UnsafeRawBufferPointer, elementSize: Int = 4,
                                   into destination: UnsafeMutableRawBufferPointer) {
        precondition(elementSize >= 1 && (0..<elementSize).contains(plane), "ByteShuffle.gatherPlane: plane outside the element")
        let n = source.count / elementSize
        precondition(destination.count >= n, "ByteShuffle.gatherPlane: destination holds fewer bytes than elements")
        guard n > 0, let s = source.baseAddress, let d = destination.baseAddress else { return }
        var i = 0
        if elementSize == 4 {
            let lo = UInt64(8 &* plane), hi = lo &+ 32
            while i + 8 <= n {
                var o: UInt64 = 0
                for j in 0..<4 {
                    let x = UInt64(littleEndian: s.loadUnaligned(fromByteOffset: (i &+ 2 &* j) &* 4, as: UInt64.self))
                    o |= ((x &>> lo) & 0xFF) &<< UInt64(16 &* j)
                    o |= ((x &>> hi) & 0xFF) &<< UInt64(16 &* j &+ 8)
                }
                d.storeBytes(of: o.littleEndian, toByteOffset: i, as: UInt64.self)
                i &+= 8
            }
        }
        var at = i &* elementSize &+ plane
        while i < n {
            d.storeBytes(of: s.load(fromByteOffset: at, as: UInt8.self), toByteOffset: i, as: UInt8.self)
            i &+= 1; at &+= elementSize
        }
    }

    /// Returns the byte planes of `bytes` as a new array.
    public static func shuffled(_ bytes: [UInt8], elementSize: Int = 4) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: bytes.count)
        bytes.withUnsafeBytes { s in out.withUnsafeMutableBytes { shuffle(s, into: $0, elementSize: elementSize) } }
        return out
    }

    /// Returns the elements restored from the byte planes in `bytes` as a new array.
    public static func unshuffled(_ bytes: [UInt8], elementSize: Int = 4) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: bytes.count)
        bytes.withUnsafeBytes { s in out.withUnsafeMutableBytes { unshuffle(s, into: $0, elementSize: elementSize) } }
        return out
    }

    // MARK: - Kernels

    /// Copies the bytes after the last whole element unchanged.
    @inline(__always)
    private static func copyTail(_ s: UnsafeRawPointer, _ d: UnsafeMutableRawPointer, whole: Int, total: Int) {
        if total > whole { (d + whole).copyMemory(from: s + whole, byteCount: total - whole) }
    }

    /// 4-byte elements: eight elements per step, each plane gets one 8-byte store.
    private static func shuffle4(_ s: UnsafeRawPointer, _ d: UnsafeMutableRawPointer, _ n: Int) {
        let p0 = d, p1 = d + n, p2 = d + 2 * n, p3 = d + 3 * n
        var i = 0
        while i + 8 <= n {
            var o0: UInt64 = 0, o1: UInt64 = 0, o2: UInt64 = 0, o3: UInt64 = 0
            for j in 0..<8 {
                let w = UInt64(s.loadUnaligned(fromByteOffset: (i + j) &* 4, as: UInt32.self).littleEndian)
                let sh = UInt64(8 &* j)
                o0 |= (w & 0xFF) &<< sh
                o1 |= ((w &>> 8) & 0xFF) &<< sh
                o2 |= ((w &>> 16) & 0xFF) &<< sh
                o3 |= (w &>> 24) &<< sh
            }
            p0.storeBytes(of: o0.littleEndian, toByteOffset: i, as: UInt64.self)
            p1.storeBytes(of: o1.littleEndian, toByteOffset: i, as: UInt64.self)
            p2.storeBytes(of: o2.littleEndian, toByteOffset: i, as: UInt64.self)
            p3.storeBytes(of: o3.littleEndian, toByteOffset: i, as: UInt64.self)
            i &+= 8
        }
        while i < n {
            let at = 4 &* i
            p0.storeBytes(of: s.load(fromByteOffset: at, as: UInt8.self), toByteOffset: i, as: UInt8.self)
            p1.storeBytes(of: s.load(fromByteOffset: at &+ 1, as: UInt8.self), toByteOffset: i, as: UInt8.self)
            p2.storeBytes(of: s.load(fromByteOffset: at &+ 2, as: UInt8.self), toByteOffset: i, as: UInt8.self)
            p3.storeBytes(of: s.load(fromByteOffset: at &+ 3, as: UInt8.self), toByteOffset: i, as: UInt8.self)
            i &+= 1
        }
    }

    /// Inverse of `shuffle4`: one 8-byte load per plane, eight 4-byte stores.
    private static func unshuffle4(_ s: UnsafeRawPointer, _ d: UnsafeMutableRawPointer, _ n: Int) {
        let p0 = s, p1 = s + n, p2 = s + 2 * n, p3 = s + 3 * n
        var i = 0
        while i + 8 <= n {
            let a = UInt64(littleEndian: p0.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let b = UInt64(littleEndian: p1.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let c = UInt64(littleEndian: p2.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let e = UInt64(littleEndian: p3.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            for j in 0..<8 {
                let sh = UInt64(8 &* j)
                let w = ((a &>> sh) & 0xFF) | (((b &>> sh) & 0xFF) &<< 8)
                    | (((c &>> sh) & 0xFF) &<< 16) | (((e &>> sh) & 0xFF) &<< 24)
                d.storeBytes(of: UInt32(truncatingIfNeeded: w).littleEndian, toByteOffset: (i + j) &* 4, as: UInt32.self)
            }
            i &+= 8
        }
        while i < n {
            let at = 4 &* i
            d.storeBytes(of: p0.load(fromByteOffset: i, as: UInt8.self), toByteOffset: at, as: UInt8.self)
            d.storeBytes(of: p1.load(fromByteOffset: i, as: UInt8.self), toByteOffset: at &+ 1, as: UInt8.self)
            d.storeBytes(of: p2.load(fromByteOffset: i, as: UInt8.self), toByteOffset: at &+ 2, as: UInt8.self)
            d.storeBytes(of: p3.load(fromByteOffset: i, as: UInt8.self), toByteOffset: at &+ 3, as: UInt8.self)
            i &+= 1
        }
    }

    /// Any element size: one pass per plane, sequential writes.
    private static func shuffleGeneric(_ s: UnsafeRawPointer, _ d: UnsafeMutableRawPointer, _ n: Int, _ size: Int) {
        for k in 0..<size {
            let plane = d + k &* n
            var i = 0, at = k
            while i < n {
                plane.storeBytes(of: s.load(fromByteOffset: at, as: UInt8.self), toByteOffset: i, as: UInt8.self)
                i &+= 1; at &+= size
            }
        }
    }

    /// Inverse of `shuffleGeneric`: one pass per plane, sequential reads.
    private static func unshuffleGeneric(_ s: UnsafeRawPointer, _ d: UnsafeMutableRawPointer, _ n: Int, _ size: Int) {
        for k in 0..<size {
            let plane = s + k &* n
            var i = 0, at = k
            while i < n {
                d.storeBytes(of: plane.load(fromByteOffset: i, as: UInt8.self), toByteOffset: at, as: UInt8.self)
                i &+= 1; at &+= size
            }
        }
    }
}
