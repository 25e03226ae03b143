// An append-only byte buffer that becomes `Data` without a copy (the in-memory sink for encoding).

import Foundation

/// Append-only bytes in one `ZstdFrame.allocate`d block (huge pages when large); `take()` hands them over
/// as `Data` without copying. Grows by doubling if the first capacity guess was short.
final class GrowableBuffer {
    private var base: UnsafeMutableRawPointer
    private var capacity: Int
    private(set) var count = 0
    private var taken = false

    init(capacity: Int) throws {
        self.capacity = max(capacity, 64)
        base = try ZstdFrame.allocate(self.capacity, what: "the in-memory archive")
    }

    deinit { if !taken { free(base) } }

    /// Appends `bytes`, growing the block when needed.
    func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard let src = bytes.baseAddress, bytes.count > 0 else { return }
        if count + bytes.count > capacity {
            let wanted = max(capacity * 2, count + bytes.count)
            guard let grown = realloc(base, wanted) else {
                throw ZstdError(kind: .library, call: "realloc", site: "\(#fileID):\(#line)",
                                reason: "cannot grow the in-memory archive to \(wanted) bytes", hint: "free memory and retry")
            }
            base = grown; capacity = wanted
        }
        (base + count).copyMemory(from: src, byteCount: bytes.count)
        count += bytes.count
    }

    /// The bytes as `Data` (owning the block); the buffer must not be used afterwards.
    func take() -> Data {
        taken = true
        return ZstdFrame.adopt(base, count: count, capacity: capacity)
    }
}
