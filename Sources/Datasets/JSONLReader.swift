// JSON Lines: one JSON object per line, blank lines skipped.

/// Reads a JSON Lines file (plain or gzip) one object at a time.
///
/// Each non-blank line must be one JSON object; a line that is not valid JSON or not an object
/// is reported as a `DatasetError.malformedRow` naming the line, which the caller may skip.
public final class JSONLReader {
    private let lines: LineReader

    /// The path as given.
    public var path: String { lines.path }

    public init(path: String) throws {
        lines = try LineReader(path: path)
    }

    /// The next row, or nil at the end of the file. A malformed line throws, and reading may
    /// continue with the following line after the error.
    public func nextRow() throws -> DataRow? {
        while let text = try lines.nextLine() {
            if text.allSatisfy({ $0.isWhitespace }) { continue }
            let line = lines.lineNumber
            let value: JSONValue
            do {
                value = try JSONValue.parse(text)
            } catch {
                if line == 1, text.first == "[" {
                    throw DatasetError(.unsupportedFormat, file: path, line: line,
                                       "the file is a JSON array, not JSON Lines; write one object per line (e.g. `jq -c '.[]' in.json > out.jsonl`)")
                }
                throw DatasetError(.malformedRow, file: path, line: line,
                                   "the line is not valid JSON (\(Self.describe(error))); fix or remove the line, or set skipInvalidRows: true")
            }
            guard case .object(let fields) = value else {
                throw DatasetError(.malformedRow, file: path, line: line,
                                   "the line is \(value.typeName), expected one JSON object per line")
            }
            return DataRow(file: path, line: line, storage: .json(fields))
        }
        return nil
    }

    private static func describe(_ error: Error) -> String {
        let text = String(describing: error)
        return text.count > 160 ? String(text.prefix(160)) + "…" : text
    }
}
