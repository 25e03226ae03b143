// Streaming compression of one zstd frame, for payloads too large to assemble in memory first.

import CZstd
import Foundation

/// Compresses one zstd frame piece by piece and hands the compressed bytes to a sink as they appear.
///
/// The frame carries a content checksum and, when `pledgedSize` is given, the content size in its header
/// (zstd then rejects a mismatch between pledged and appended bytes in `finish`). Not thread-safe.
public final class ZstdFrameWriter {
    private let cctx: OpaquePointer
    private let out: UnsafeMutableRawPointer
    private let outCapacity: Int
    private let sink: (UnsafeRawBufferPointer) throws -> Void
    private var finished = false

    /// Uncompressed bytes appended so far.
    public private(set) var bytesIn = 0
    /// Compressed bytes handed to the sink so far.
    public private(set) var bytesOut = 0

    /// Starts a frame; `sink` receives compressed chunks (valid only during the call).
    public init(level: Int = ZstdFrame.defaultLevel, workers: Int = 0, pledgedSize: Int? = nil,
                sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        cctx = try ZstdFrame.makeCompressionContext(level: level, workers: workers)
        outCapacity = ZSTD_CStreamOutSize()
        guard let buffer = malloc(outCapacity) else {
            ZSTD_freeCCtx(cctx)
            throw ZstdError(kind: .library, call: "malloc", site: "\(#fileID):\(#line)",
                            reason: "cannot allocate the \(outCapacity)-byte output buffer", hint: "free memory and retry")
        }
        out = buffer
        self.sink = sink
        if let pledgedSize {
            do {
                try ZstdFrame.check(ZSTD_CCtx_setPledgedSrcSize(cctx, UInt64(max(0, pledgedSize))),
                                    "ZSTD_CCtx_setPledgedSrcSize", .parameter)
            } catch {
                ZSTD_freeCCtx(cctx); free(out); throw error
            }
        }
    }

    deinit {
        ZSTD_freeCCtx(cctx)
        free(out)
    }

    /// Compresses `bytes` into the frame.
    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished, "ZstdFrameWriter.append after finish")
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while input.pos < input.size {
            var output = ZSTD_outBuffer(dst: out, size: outCapacity, pos: 0)
            try ZstdFrame.check(ZSTD_compressStream2(cctx, &output, &input, ZSTD_e_continue),
                                "ZSTD_compressStream2(ZSTD_e_continue)", .library)
            try drain(output.pos)
        }
        bytesIn += bytes.count
    }

    /// Compresses the bytes of `data` into the frame.
    public func append(_ data: Data) throws {
        try data.withUnsafeBytes { try append($0) }
    }

    /// Ends the frame (flushes the last block and the checksum).
    public func finish() throws {
        precondition(!finished, "ZstdFrameWriter.finish called twice")
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while true {
            var output = ZSTD_outBuffer(dst: out, size: outCapacity, pos: 0)
            let remaining = try ZstdFrame.check(ZSTD_compressStream2(cctx, &output, &input, ZSTD_e_end),
                                                "ZSTD_compressStream2(ZSTD_e_end)", .library)
            try drain(output.pos)
            if remaining == 0 { break }
        }
        finished = true
    }

    /// Hands `count` bytes of the output buffer to the sink.
    private func drain(_ count: Int) throws {
        guard count > 0 else { return }
        try sink(UnsafeRawBufferPointer(start: out, count: count))
        bytesOut += count
    }
}
