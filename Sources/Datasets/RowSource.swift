// Rows of one data file, JSONL or CSV, and the loop over many files with the invalid-row policy.

import Foundation

/// The container format of a data file.
public enum FileFormat: String, Sendable, CaseIterable {
    case jsonl
    case csv

    /// The format by extension (after removing `.gz`): `.csv` → csv; `.jsonl`, `.json`, `.ndjson` → jsonl;
    /// anything else by the first non-blank character (`{` → jsonl, else csv).
    public static func detect(path: String) throws -> FileFormat {
        var name = (path as NSString).lastPathComponent.lowercased()
        if name.hasSuffix(".gz") { name.removeLast(3) }
        if name.hasSuffix(".csv") { return .csv }
        if name.hasSuffix(".jsonl") || name.hasSuffix(".json") || name.hasSuffix(".ndjson") { return .jsonl }
        if name.hasSuffix(".tsv") || name.hasSuffix(".parquet") || name.hasSuffix(".arrow") {
            throw DatasetError(.unsupportedFormat, file: path,
                               "only JSON Lines and CSV (optionally .gz) are supported; convert the file (e.g. with pandas: df.to_json(path, orient='records', lines=True))")
        }
        let reader = try LineReader(path: path)
        while let line = try reader.nextLine() {
            guard let first = line.first(where: { !$0.isWhitespace }) else { continue }
            return first == "{" ? .jsonl : .csv
        }
        return .jsonl
    }
}

/// Reads the rows of one file in its format.
public final class RowSource {
    private enum Reader {
        case jsonl(JSONLReader)
        case csv(CSVReader)
    }

    private let reader: Reader
    /// The path as given.
    public let path: String
    /// The format read.
    public let format: FileFormat

    /// Opens `path` in `format` (detected from the name or content when nil).
    public init(path: String, format: FileFormat? = nil) throws {
        self.path = path
        let format = try format ?? FileFormat.detect(path: path)
        self.format = format
        switch format {
        case .jsonl: reader = .jsonl(try JSONLReader(path: path))
        case .csv: reader = .csv(try CSVReader(path: path))
        }
    }

    /// The CSV header, or nil for JSONL.
    public var csvHeader: [String]? {
        if case .csv(let r) = reader { return r.header }
        return nil
    }

    /// The next row, or nil at the end.
    public func nextRow() throws -> DataRow? {
        switch reader {
        case .jsonl(let r): return try r.nextRow()
        case .csv(let r): return try r.nextRow()
        }
    }
}

/// Helpers shared by the schema loaders.
enum RowLoop {
    /// Expands directories into their data files sorted by name: files whose extension (after
    /// removing `.gz`) is one of `extensions`.
    static func expand(_ paths: [String], extensions: [String] = ["jsonl", "json", "ndjson", "csv"]) throws -> [String] {
        guard !paths.isEmpty else {
            throw DatasetError(.invalidConfiguration, file: "dataset config", field: "paths",
                               "no data files given; list at least one file or directory")
        }
        var out: [String] = []
        let fm = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw DatasetError(.fileNotFound, file: path,
                                   "the file does not exist; check the path in the dataset configuration")
            }
            if !isDirectory.boolValue {
                out.append(path)
                continue
            }
            let names = (try? fm.contentsOfDirectory(atPath: path)) ?? []
            let data = names.filter { name in
                var n = name.lowercased()
                if n.hasSuffix(".gz") { n.removeLast(3) }
                return extensions.contains { n.hasSuffix("." + $0) }
            }.sorted()
            guard !data.isEmpty else {
                throw DatasetError(.fileNotFound, file: path, "the directory has no \(extensions.map { "." + $0 }.joined(separator: ", ")) files")
            }
            out += data.map { (path as NSString).appendingPathComponent($0) }
        }
        return out
    }

    /// Calls `body` for every row of `path`, applying the invalid-row policy to row-level errors
    /// (from reading or from `body`) and honouring `maxRows`. Returns false once `maxRows` is reached.
    @discardableResult
    static func forEachRow(in source: RowSource, options: DatasetOptions, report: inout LoadReport,
                           _ body: (DataRow, inout LoadReport) throws -> Void) throws -> Bool {
        report.files += 1
        while true {
            if let maxRows = options.maxRows, report.rows >= maxRows { return false }
            let row: DataRow
            do {
                guard let next = try source.nextRow() else { return true }
                row = next
            } catch {
                report.rows += 1
                try absorb(error, options: options, report: &report)
                continue
            }
            report.rows += 1
            do {
                try body(row, &report)
            } catch {
                try absorb(error, options: options, report: &report)
            }
        }
    }

    /// Opens each path and calls `body` for every row.
    static func forEachRow(in paths: [String], options: DatasetOptions, report: inout LoadReport,
                           _ body: (DataRow, inout LoadReport) throws -> Void) throws {
        for path in try expand(paths) {
            let source = try RowSource(path: path)
            if try !forEachRow(in: source, options: options, report: &report, body) { return }
        }
    }

    /// Rethrows `error` unless it is a row-level `DatasetError` and invalid rows are skipped.
    static func absorb(_ error: Error, options: DatasetOptions, report: inout LoadReport) throws {
        guard options.skipInvalidRows, let e = error as? DatasetError, e.isRowLevel else { throw error }
        report.recordInvalid(e)
    }

    /// Whether a response counts as empty.
    static func isBlank(_ text: String) -> Bool { text.allSatisfy(\.isWhitespace) }

    /// Text with surrounding whitespace and newlines removed.
    static func trimmed(_ text: String) -> String { text.trimmingCharacters(in: .whitespacesAndNewlines) }

    /// Applies the empty/identical-response policy to a pair's two responses; returns false (and
    /// counts) when the pair is to be dropped.
    static func keepPair(chosen: String, rejected: String, options: DatasetOptions, report: inout LoadReport) -> Bool {
        if options.dropEmptyResponses, isBlank(chosen) || isBlank(rejected) {
            report.droppedEmptyResponse += 1
            return false
        }
        if options.dropIdenticalResponses, chosen == rejected {
            report.droppedIdenticalResponses += 1
            return false
        }
        return true
    }

    /// The file's name without directories (for ids).
    static func fileName(_ path: String) -> String { (path as NSString).lastPathComponent }

    /// A row's id: the id column if present, else `file:line`.
    static func rowID(_ row: DataRow, column: String) -> String {
        if row.has(column), let s = try? row.optionalString(column) { return s }
        if row.has(column), let i = try? row.int(column) { return String(i) }
        return "\(fileName(row.file)):\(row.line)"
    }
}
