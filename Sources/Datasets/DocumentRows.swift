// The row loop for whole-JSON files: elements of an array (or values of an object) as rows.

import Foundation

extension RowLoop {
    /// Calls `body` for every node, with the invalid-row policy and `maxRows` of `forEachRow(in:…)`.
    /// Returns false once `maxRows` is reached. The caller counts the file.
    @discardableResult
    static func forEachNode(_ nodes: [JSONNode], options: DatasetOptions, report: inout LoadReport,
                            _ body: (JSONNode, inout LoadReport) throws -> Void) throws -> Bool {
        for node in nodes {
            if let maxRows = options.maxRows, report.rows >= maxRows { return false }
            report.rows += 1
            do {
                try body(node, &report)
            } catch {
                try absorb(error, options: options, report: &report)
            }
        }
        return true
    }

    /// The node as a data row, or a row-level error naming the line when it is not an object.
    static func objectRow(_ node: JSONNode, file: String, what: String) throws -> DataRow {
        guard let row = node.row(file: file) else {
            throw DatasetError(.malformedRow, file: file, line: node.line,
                               "the element is \(node.typeName), expected \(what); fix the element or set skipInvalidRows: true")
        }
        return row
    }

    /// The array at the top of a JSON file (or under `key` of a top-level object), or a file-level error.
    static func topArray(_ document: JSONNode, file: String, key: String? = nil, what: String) throws -> [JSONNode] {
        var node = document
        if let key {
            guard let inner = document.member(key) else {
                throw DatasetError(.missingField, file: file, line: document.line, field: key,
                                   "the file has no top-level \"\(key)\"; is it \(what)?")
            }
            node = inner
        }
        guard let items = node.elements else {
            throw DatasetError(.unsupportedFormat, file: file, line: node.line, field: key,
                               "expected a JSON array of \(what), found \(node.typeName)")
        }
        return items
    }
}

extension RowLoop {
    /// Expands `paths` into files: a file is kept as given; a directory contributes, recursively and
    /// sorted by path, the files for which `include` (given the path relative to that directory) is
    /// true. A directory that contributes nothing is an error naming `what` it should hold.
    static func files(in paths: [String], what: String, include: (String) -> Bool) throws -> [String] {
        guard !paths.isEmpty else {
            throw DatasetError(.invalidConfiguration, file: "dataset config", field: "paths",
                               "no data files given; list at least one file or directory")
        }
        let fm = FileManager.default
        var out: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw DatasetError(.fileNotFound, file: path,
                                   "the file does not exist; check the path in the dataset configuration (data root: `launch/assets.sh data`)")
            }
            guard isDirectory.boolValue else { out.append(path); continue }
            let found = (fm.enumerator(atPath: path)?.allObjects as? [String] ?? []).filter { relative in
                var d: ObjCBool = false
                let full = (path as NSString).appendingPathComponent(relative)
                return fm.fileExists(atPath: full, isDirectory: &d) && !d.boolValue && include(relative)
            }.sorted()
            guard !found.isEmpty else {
                throw DatasetError(.fileNotFound, file: path, "the directory holds no \(what)")
            }
            out += found.map { (path as NSString).appendingPathComponent($0) }
        }
        return out
    }
}
