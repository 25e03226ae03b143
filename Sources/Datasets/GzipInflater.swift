// Streaming gzip decompression with zlib (inflateInit2 with 16 + MAX_WBITS), multi-member aware.

import CZlib

/// Inflates a gzip stream chunk by chunk.
///
/// Concatenated members (`cat a.gz b.gz`, bgzip, `pigz --independent`) are decoded one after the
/// other, as `gunzip` does; zero padding after the last member is ignored. The z_stream lives at a
/// fixed heap address because zlib checks that it has not moved between calls.
final class GzipInflater {
    private let file: String
    private let stream: UnsafeMutablePointer<z_stream>
    private let output: UnsafeMutablePointer<UInt8>
    private let outputCapacity = 1 << 18
    /// True between the end of one member and the first byte of the next.
    private var atMemberBoundary = false
    /// True once only zero padding may follow.
    private var inTrailingPadding = false
    private var sawAnyMember = false

    init(file: String) throws {
        self.file = file
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        output = UnsafeMutablePointer<UInt8>.allocate(capacity: outputCapacity)
        let status = inflateInit2_(stream, 16 + MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            output.deallocate()
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw DatasetError(.decompression, file: file, "inflateInit2 failed with zlib status \(status); the zlib library is unusable")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        output.deallocate()
    }

    /// Decompresses one chunk of compressed input and returns the bytes it produced.
    func inflate(_ chunk: [UInt8]) throws -> [UInt8] {
        var produced: [UInt8] = []
        var input = chunk
        try input.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress, buffer.count > 0 else { return }
            var offset = 0
            while offset < buffer.count {
                if inTrailingPadding || atMemberBoundary {
                    // Between members: skip zero padding; anything else must be a new member.
                    if buffer[offset] == 0 {
                        inTrailingPadding = true
                        offset += 1
                        continue
                    }
                    if inTrailingPadding {
                        throw DatasetError(.decompression, file: file,
                                           "non-zero bytes after zero padding at the end of the gzip data; the file is corrupt, re-download or re-compress it")
                    }
                    guard inflateReset(stream) == Z_OK else {
                        throw DatasetError(.decompression, file: file, "inflateReset failed between gzip members")
                    }
                    atMemberBoundary = false
                }
                stream.pointee.next_in = base + offset
                stream.pointee.avail_in = UInt32(buffer.count - offset)
                var status: Int32 = Z_OK
                repeat {
                    stream.pointee.next_out = output
                    stream.pointee.avail_out = UInt32(outputCapacity)
                    status = CZlib.inflate(stream, Z_NO_FLUSH)
                    let count = outputCapacity - Int(stream.pointee.avail_out)
                    if count > 0 { produced.append(contentsOf: UnsafeBufferPointer(start: output, count: count)) }
                    if status == Z_STREAM_END { break }
                    if status == Z_BUF_ERROR { break } // needs more input (avail_in == 0)
                    guard status == Z_OK else { throw zlibError(status) }
                } while stream.pointee.avail_in > 0 || stream.pointee.avail_out == 0
                offset = buffer.count - Int(stream.pointee.avail_in)
                if status == Z_STREAM_END {
                    sawAnyMember = true
                    atMemberBoundary = true
                } else {
                    sawAnyMember = true
                    break
                }
            }
        }
        return produced
    }

    /// Checks that the input ended at a member boundary (not in the middle of a member).
    func finish() throws {
        if !sawAnyMember { return } // an empty file is an empty text
        guard atMemberBoundary || inTrailingPadding else {
            throw DatasetError(.decompression, file: file,
                               "the gzip data ends in the middle of a member (truncated download or copy); re-download the file")
        }
    }

    private func zlibError(_ status: Int32) -> DatasetError {
        let detail = stream.pointee.msg.map { String(cString: $0) } ?? "zlib status \(status)"
        return DatasetError(.decompression, file: file,
                            "gzip data is corrupt (\(detail)); re-download the file or check that it is really gzip")
    }
}
