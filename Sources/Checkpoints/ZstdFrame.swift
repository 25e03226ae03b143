// Whole-buffer zstd compression and decompression of single frames, every C call checked.

import CZstd
import Foundation

/// One zstd frame in memory: compress a buffer, decompress a frame.
///
/// Frames written here always record their content size and a content checksum (`ZSTD_c_checksumFlag`),
/// so decompression detects corruption and truncation. Decompression accepts exactly one frame, checks the
/// declared size against a limit before allocating, and falls back to streaming when the size is unknown
/// (frames written by other tools). Every failure is a `ZstdError` naming the zstd call and call site.
public enum ZstdFrame {
    /// The level used when none is given (zstd's own default).
    public static let defaultLevel = 3

    /// `ZSTD_CONTENTSIZE_UNKNOWN` (a C macro Swift cannot import).
    public static let contentSizeUnknown: UInt64 = UInt64.max
    /// `ZSTD_CONTENTSIZE_ERROR`.
    public static let contentSizeError: UInt64 = UInt64.max - 1

    /// The largest decompressed size accepted by default: the machine's physical memory.
    public static var defaultMaxDecompressedSize: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory) }

    /// The range of compression levels libzstd accepts (negative levels are the fast modes).
    public static var levelRange: ClosedRange<Int> { Int(ZSTD_minCLevel())...Int(ZSTD_maxCLevel()) }

    /// Whether this libzstd was built with multithreading (`ZSTD_c_nbWorkers` upper bound above 0).
    public static var supportsWorkers: Bool {
        let b = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers)
        return ZSTD_isError(b.error) == 0 && b.upperBound > 0
    }

    /// The libzstd version string, e.g. `1.5.4`.
    public static var libraryVersion: String { String(cString: ZSTD_versionString()) }

    // MARK: - Compression

    /// Compresses `source` into one frame with content size and checksum.
    ///
    /// - Parameters:
    ///   - level: zstd level in `levelRange` (3 is zstd's default; 1 is fastest of the normal levels).
    ///   - workers: compression threads (`ZSTD_c_nbWorkers`); 0 compresses on the calling thread. Ignored
    ///     when libzstd has no multithreading.
    public static func compress(_ source: UnsafeRawBufferPointer, level: Int = defaultLevel, workers: Int = 0) throws -> Data {
        let cctx = try makeCompressionContext(level: level, workers: workers)
        defer { ZSTD_freeCCtx(cctx) }
        let bound = ZSTD_compressBound(source.count)
        if ZSTD_isError(bound) != 0 {
            throw ZstdError(kind: .tooLarge, call: "ZSTD_compressBound", site: "\(#fileID):\(#line)",
                            reason: "\(source.count) bytes is beyond zstd's limit", hint: "split the data into smaller files")
        }
        let out = try allocate(bound, what: "the compressed output")
        let written: Int
        do {
            written = try check(ZSTD_compress2(cctx, out, bound, source.baseAddress, source.count),
                                "ZSTD_compress2", .library)
        } catch {
            free(out); throw error
        }
        return adopt(out, count: written, capacity: bound)
    }

    /// Compresses `data` into one frame with content size and checksum.
    public static func compress(_ data: Data, level: Int = defaultLevel, workers: Int = 0) throws -> Data {
        try data.withUnsafeBytes { try compress($0, level: level, workers: workers) }
    }

    // MARK: - Decompression

    /// The content size a frame declares, or nil when the frame does not record it.
    public static func declaredContentSize(_ source: UnsafeRawBufferPointer) throws -> UInt64? {
        let size = ZSTD_getFrameContentSize(source.baseAddress, source.count)
        if size == contentSizeError {
            throw ZstdError(kind: .corrupt, call: "ZSTD_getFrameContentSize", site: "\(#fileID):\(#line)",
                            reason: "the bytes do not start with a valid zstd frame header",
                            hint: hint(for: .corrupt))
        }
        return size == contentSizeUnknown ? nil : size
    }

    /// Decompresses exactly one frame, verifying its checksum when present.
    ///
    /// - Parameter maxSize: the largest content accepted; a frame declaring more is rejected before any
    ///   allocation (a corrupt header cannot make this allocate terabytes).
    public static func decompress(_ source: UnsafeRawBufferPointer, maxSize: Int = defaultMaxDecompressedSize) throws -> Data {
        guard source.count > 0 else {
            throw ZstdError(kind: .truncated, call: "ZstdFrame.decompress", site: "\(#fileID):\(#line)",
                            reason: "the input is empty (0 bytes)", hint: hint(for: .truncated))
        }
        let frameSize = try check(ZSTD_findFrameCompressedSize(source.baseAddress, source.count),
                                  "ZSTD_findFrameCompressedSize", .corrupt)
        if frameSize < source.count {
            throw ZstdError(kind: .trailingData, call: "ZSTD_findFrameCompressedSize", site: "\(#fileID):\(#line)",
                            reason: "\(source.count - frameSize) bytes follow the \(frameSize)-byte frame",
                            hint: "a checkpoint file holds exactly one frame; the file was appended to or is not ours")
        }
        guard let declared = try declaredContentSize(source) else {
            return try decompressStreaming(source, maxSize: maxSize)
        }
        guard declared <= UInt64(max(0, maxSize)) else {
            throw ZstdError(kind: .tooLarge, call: "ZSTD_getFrameContentSize", site: "\(#fileID):\(#line)",
                            reason: "the frame declares \(declared) bytes, more than the limit of \(maxSize)",
                            hint: "the header is corrupt, or raise maxSize if the file is really that large")
        }
        let size = Int(declared)
        guard let dctx = ZSTD_createDCtx() else {
            throw ZstdError(kind: .library, call: "ZSTD_createDCtx", site: "\(#fileID):\(#line)",
                            reason: "returned NULL", hint: "out of memory; free memory and retry")
        }
        defer { ZSTD_freeDCtx(dctx) }
        let out = try allocate(size, what: "the decompressed content")
        let produced: Int
        do {
            produced = try check(ZSTD_decompressDCtx(dctx, out, size, source.baseAddress, source.count),
                                 "ZSTD_decompressDCtx", .corrupt)
        } catch {
            free(out); throw error
        }
        guard produced == size else {
            free(out)
            throw ZstdError(kind: .corrupt, call: "ZSTD_decompressDCtx", site: "\(#fileID):\(#line)",
                            reason: "produced \(produced) bytes but the frame declares \(size)", hint: hint(for: .corrupt))
        }
        return adopt(out, count: size, capacity: size)
    }

    /// Decompresses exactly one frame held in `data`.
    public static func decompress(_ data: Data, maxSize: Int = defaultMaxDecompressedSize) throws -> Data {
        try data.withUnsafeBytes { try decompress($0, maxSize: maxSize) }
    }

    /// Streaming decompression for frames without a recorded content size; grows the output up to `maxSize`.
    static func decompressStreaming(_ source: UnsafeRawBufferPointer, maxSize: Int) throws -> Data {
        guard let dctx = ZSTD_createDCtx() else {
            throw ZstdError(kind: .library, call: "ZSTD_createDCtx", site: "\(#fileID):\(#line)",
                            reason: "returned NULL", hint: "out of memory; free memory and retry")
        }
        defer { ZSTD_freeDCtx(dctx) }
        let limit = max(0, maxSize)
        var capacity = min(limit, max(ZSTD_DStreamOutSize(), source.count &* 4))
        var out = try allocate(capacity, what: "the decompressed content")
        var produced = 0
        var input = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
        do {
            while true {
                if produced == capacity {
                    guard capacity < limit else {
                        throw ZstdError(kind: .tooLarge, call: "ZSTD_decompressStream", site: "\(#fileID):\(#line)",
                                        reason: "the content exceeds the limit of \(limit) bytes",
                                        hint: "the frame is corrupt, or raise maxSize if the data is really that large")
                    }
                    capacity = capacity > limit / 2 ? limit : max(capacity &* 2, 1)
                    guard let grown = realloc(out, capacity) else {
                        throw ZstdError(kind: .library, call: "realloc", site: "\(#fileID):\(#line)",
                                        reason: "cannot grow the output to \(capacity) bytes", hint: "free memory and retry")
                    }
                    out = grown
                }
                var output = ZSTD_outBuffer(dst: out + produced, size: capacity - produced, pos: 0)
                let remaining = try check(ZSTD_decompressStream(dctx, &output, &input), "ZSTD_decompressStream", .corrupt)
                produced += output.pos
                if remaining == 0 { break }
                if input.pos == input.size && output.pos < output.size {
                    throw ZstdError(kind: .truncated, call: "ZSTD_decompressStream", site: "\(#fileID):\(#line)",
                                    reason: "the input ends inside the frame", hint: hint(for: .truncated))
                }
            }
        } catch {
            free(out); throw error
        }
        return adopt(out, count: produced, capacity: capacity)
    }

    // MARK: - Shared helpers

    /// A compression context with level, checksum, content size and (when available) workers set.
    static func makeCompressionContext(level: Int, workers: Int) throws -> OpaquePointer {
        guard levelRange.contains(level) else {
            throw ZstdError(kind: .parameter, call: "ZSTD_CCtx_setParameter(ZSTD_c_compressionLevel)",
                            site: "\(#fileID):\(#line)", reason: "level \(level) is outside \(levelRange)",
                            hint: "use a level in \(levelRange.lowerBound)...\(levelRange.upperBound) (3 is the default)")
        }
        guard let cctx = ZSTD_createCCtx() else {
            throw ZstdError(kind: .library, call: "ZSTD_createCCtx", site: "\(#fileID):\(#line)",
                            reason: "returned NULL", hint: "out of memory; free memory and retry")
        }
        do {
            try check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, Int32(level)),
                      "ZSTD_CCtx_setParameter(ZSTD_c_compressionLevel)", .parameter)
            try check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1),
                      "ZSTD_CCtx_setParameter(ZSTD_c_checksumFlag)", .parameter)
            try check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1),
                      "ZSTD_CCtx_setParameter(ZSTD_c_contentSizeFlag)", .parameter)
            if workers > 0 {
                let bounds = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers)
                if ZSTD_isError(bounds.error) == 0 && bounds.upperBound > 0 {
                    let n = Int32(clamping: min(workers, Int(bounds.upperBound)))
                    try check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, n),
                              "ZSTD_CCtx_setParameter(ZSTD_c_nbWorkers)", .parameter)
                }
            }
        } catch {
            ZSTD_freeCCtx(cctx); throw error
        }
        return cctx
    }

    /// Returns `code` when it is not a zstd error; otherwise throws a `ZstdError` for `call` at the call site.
    @discardableResult
    static func check(_ code: Int, _ call: String, _ fallback: ZstdError.Kind,
                      file: StaticString = #fileID, line: UInt = #line) throws -> Int {
        guard ZSTD_isError(code) != 0 else { return code }
        let kind = classify(code, fallback: fallback)
        throw ZstdError(kind: kind, call: call, site: "\(file):\(line)",
                        reason: String(cString: ZSTD_getErrorName(code)), hint: hint(for: kind))
    }

    /// Maps zstd's stable error codes (values below 100 in `zstd_errors.h`) to a kind.
    static func classify(_ code: Int, fallback: ZstdError.Kind) -> ZstdError.Kind {
        switch 0 &- code {
        case 22: return .checksumMismatch                         // ZSTD_error_checksum_wrong
        case 72: return fallback == .corrupt ? .truncated : fallback // ZSTD_error_srcSize_wrong
        case 10, 12, 14, 16, 20, 24, 30: return .corrupt          // prefix_unknown ... dictionary_corrupted
        case 40, 41, 42: return .parameter                        // parameter_unsupported / _outOfBound
        case 64: return .library                                  // memory_allocation
        default: return fallback
        }
    }

    /// What to do about an error of `kind`.
    static func hint(for kind: ZstdError.Kind) -> String {
        switch kind {
        case .corrupt: return "the data is not an intact zstd frame; restore the file or fall back to an earlier checkpoint"
        case .truncated: return "the frame is cut short (interrupted write or copy); fall back to an earlier checkpoint"
        case .checksumMismatch: return "the content changed after it was written; fall back to an earlier checkpoint"
        case .tooLarge: return "the header is corrupt, or raise the size limit"
        case .trailingData: return "a checkpoint file holds exactly one frame; the file is not one of ours"
        case .parameter: return "check the compression level and worker count"
        case .library: return "libzstd failed; check free memory and retry"
        }
    }

    /// `malloc` that throws instead of returning NULL (never asks for 0 bytes).
    ///
    /// Buffers of 8 MiB and more are 2 MiB-aligned and advised as huge pages on Linux: first-touch page faults
    /// otherwise cost as much as decompressing into them.
    static func allocate(_ count: Int, what: String, file: StaticString = #fileID, line: UInt = #line) throws -> UnsafeMutableRawPointer {
        #if os(Linux)
        if count >= 8 << 20 {
            var p: UnsafeMutableRawPointer?
            if posix_memalign(&p, 2 << 20, count) == 0, let p {
                _ = madvise(p, count, MADV_HUGEPAGE)
                return p
            }
        }
        #endif
        guard let p = malloc(max(count, 1)) else {
            throw ZstdError(kind: .library, call: "malloc", site: "\(file):\(line)",
                            reason: "cannot allocate \(count) bytes for \(what)", hint: "free memory and retry")
        }
        return p
    }

    /// Wraps an `allocate`d buffer of `capacity` bytes in `Data` without copying, shrinking it to `count` first.
    static func adopt(_ pointer: UnsafeMutableRawPointer, count: Int, capacity: Int) -> Data {
        let p = count == capacity ? pointer : (realloc(pointer, max(count, 1)) ?? pointer)
        return Data(bytesNoCopy: p, count: count, deallocator: .free)
    }
}
