// RFC 4180 CSV with a header row, streaming, plain or gzip.

import Foundation

/// Reads a CSV file record by record.
///
/// RFC 4180: fields separated by commas; a field starting with `"` is quoted and may contain
/// commas, newlines and doubled quotes (`""` → `"`). A quote inside an unquoted field is kept
/// literally (as pandas does). The first record is the header (names trimmed of spaces); an
/// optional `#` comment line before it is skipped (PyRIT's `# dataset_version=...` line). Blank
/// lines between records are skipped. CRLF line ends are read as LF, including inside quoted
/// fields. A record's line number is the 1-based line where it starts.
public final class CSVReader {
    /// The header's column names, in order.
    public let header: [String]
    /// The comment line before the header (without the `#`), if there was one.
    public let comment: String?
    /// The path as given.
    public var path: String { lines.path }

    private let lines: LineReader
    private let columns: [String: Int]

    /// Opens `path` and reads its header.
    ///
    /// - Parameter allowCommentLine: skip a first line starting with `#`.
    /// - Throws: `DatasetError` if the file cannot be read or has no header.
    public init(path: String, allowCommentLine: Bool = true) throws {
        lines = try LineReader(path: path)
        var comment: String?
        var headerRecord: (fields: [String], line: Int)?
        while headerRecord == nil {
            guard let first = try lines.nextLine() else { break }
            if lines.lineNumber == 1, allowCommentLine, first.hasPrefix("#") {
                comment = String(first.dropFirst())
                continue
            }
            if first.isEmpty { continue }
            headerRecord = try Self.parseRecord(firstLine: first, lineNumber: lines.lineNumber, lines: lines)
        }
        guard let headerRecord else {
            throw DatasetError(.malformedRow, file: path, line: lines.lineNumber + 1,
                               "the file has no header row; CSV files need a first row naming the columns")
        }
        header = headerRecord.fields.map { $0.trimmingCharacters(in: .whitespaces) }
        var columns: [String: Int] = [:]
        for (i, name) in header.enumerated() where columns[name] == nil && !name.isEmpty { columns[name] = i }
        self.columns = columns
        self.comment = comment
    }

    /// The next record, or nil at the end of the file. A malformed record throws (naming its first
    /// line) and reading may continue after it.
    public func nextRow() throws -> DataRow? {
        while let first = try lines.nextLine() {
            if first.isEmpty { continue }
            let start = lines.lineNumber
            var (fields, _) = try Self.parseRecord(firstLine: first, lineNumber: start, lines: lines)
            if fields.count > header.count {
                let extra = fields[header.count...]
                guard extra.allSatisfy({ $0.isEmpty }) else {
                    throw DatasetError(.malformedRow, file: path, line: start,
                                       "the record has \(fields.count) fields but the header has \(header.count); quote fields that contain commas")
                }
                fields.removeLast(fields.count - header.count)
            } else if fields.count < header.count {
                throw DatasetError(.malformedRow, file: path, line: start,
                                   "the record has \(fields.count) fields but the header has \(header.count); the row is truncated or a quote is unbalanced")
            }
            return DataRow(file: path, line: start, storage: .csv(columns: columns, fields: fields))
        }
        return nil
    }

    /// Parses one record starting at `firstLine`, pulling further lines while a quote is open.
    static func parseRecord(firstLine: String, lineNumber: Int, lines: LineReader) throws -> (fields: [String], line: Int) {
        var fields: [String] = []
        var current: [UInt8] = []
        var inQuotes = false
        var afterClosingQuote = false
        var problem: String?
        var line = firstLine
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ",")
        while true {
            for b in line.utf8 {
                if inQuotes {
                    if b == quote {
                        inQuotes = false
                        afterClosingQuote = true
                    } else {
                        current.append(b)
                    }
                } else if afterClosingQuote {
                    if b == quote {
                        current.append(quote) // "" inside a quoted field
                        inQuotes = true
                        afterClosingQuote = false
                    } else if b == comma {
                        fields.append(String(decoding: current, as: UTF8.self))
                        current.removeAll(keepingCapacity: true)
                        afterClosingQuote = false
                    } else {
                        problem = problem ?? "text after the closing quote of field \(fields.count + 1); a quote inside a quoted field must be doubled (\"\")"
                        current.append(b)
                    }
                } else if b == comma {
                    fields.append(String(decoding: current, as: UTF8.self))
                    current.removeAll(keepingCapacity: true)
                } else if b == quote && current.isEmpty {
                    inQuotes = true
                } else {
                    current.append(b)
                }
            }
            if !inQuotes { break }
            guard let next = try lines.nextLine() else {
                throw DatasetError(.malformedRow, file: lines.path, line: lineNumber,
                                   "a quoted field opened in this record is never closed before the end of the file; add the missing \"")
            }
            current.append(UInt8(ascii: "\n"))
            line = next
        }
        fields.append(String(decoding: current, as: UTF8.self))
        if let problem {
            throw DatasetError(.malformedRow, file: lines.path, line: lineNumber, problem)
        }
        return (fields, lineNumber)
    }
}
