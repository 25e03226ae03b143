// Line-by-line reading of plain or gzip-compressed text files, streaming.

import Foundation

/// Reads a text file one line at a time without loading it whole.
///
/// Gzip input is recognised by its magic bytes (not the file name) and inflated on the fly,
/// including multi-member files. Lines end at `\n`; a `\r` before it is removed (CRLF files read
/// like LF files) and a UTF-8 byte-order mark at the start is dropped. Invalid UTF-8 becomes U+FFFD.
/// A final line without a newline is returned; a file ending with a newline yields no empty last line.
public final class LineReader {
    /// The path as given (used in error messages).
    public let path: String
    /// The 1-based number of the line last returned by `nextLine()` (0 before the first).
    public private(set) var lineNumber = 0
    /// Whether the file is gzip-compressed.
    public let isCompressed: Bool

    private let handle: FileHandle
    private let inflater: GzipInflater?
    private var buffer: [UInt8] = []
    private var start = 0
    private var endOfInput = false
    private let chunkSize: Int

    /// Opens `path`.
    ///
    /// - Throws: `DatasetError.fileNotFound` if it cannot be opened.
    public init(path: String, chunkSize: Int = 1 << 18) throws {
        self.path = path
        self.chunkSize = max(16, chunkSize)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw DatasetError(.fileNotFound, file: path,
                               "cannot open the file; check the path in the dataset configuration (relative paths are resolved against the working directory)")
        }
        self.handle = handle
        let magic = try Self.read(handle, upTo: 2, path: path)
        isCompressed = magic == [0x1F, 0x8B]
        inflater = isCompressed ? try GzipInflater(file: path) : nil
        if isCompressed {
            buffer = try inflater!.inflate(magic)
        } else {
            buffer = magic
        }
    }

    deinit { try? handle.close() }

    /// Returns the next line without its terminator, or nil at the end of the file.
    public func nextLine() throws -> String? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = makeLine(start..<newline)
                start = newline + 1
                return line
            }
            if endOfInput {
                guard start < buffer.count else { return nil }
                let line = makeLine(start..<buffer.count)
                start = buffer.count
                return line
            }
            try fill()
        }
    }

    /// Reads every remaining line.
    public func readAll() throws -> [String] {
        var lines: [String] = []
        while let line = try nextLine() { lines.append(line) }
        return lines
    }

    private func makeLine(_ range: Range<Int>) -> String {
        lineNumber += 1
        var range = range
        if range.upperBound > range.lowerBound, buffer[range.upperBound - 1] == UInt8(ascii: "\r") {
            range = range.lowerBound..<(range.upperBound - 1)
        }
        if lineNumber == 1, range.count >= 3, buffer[range.lowerBound] == 0xEF,
           buffer[range.lowerBound + 1] == 0xBB, buffer[range.lowerBound + 2] == 0xBF {
            range = (range.lowerBound + 3)..<range.upperBound
        }
        return String(decoding: buffer[range], as: UTF8.self)
    }

    /// Appends the next chunk of (decompressed) bytes, compacting consumed bytes first.
    private func fill() throws {
        if start > 0 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        let raw = try Self.read(handle, upTo: chunkSize, path: path)
        if raw.isEmpty {
            endOfInput = true
            try inflater?.finish()
            return
        }
        if let inflater {
            buffer.append(contentsOf: try inflater.inflate(raw))
        } else {
            buffer.append(contentsOf: raw)
        }
    }

    private static func read(_ handle: FileHandle, upTo count: Int, path: String) throws -> [UInt8] {
        do {
            guard let data = try handle.read(upToCount: count) else { return [] }
            return [UInt8](data)
        } catch {
            throw DatasetError(.io, file: path, "reading failed: \(error.localizedDescription)")
        }
    }
}
