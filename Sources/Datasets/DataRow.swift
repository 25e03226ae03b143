// One row of a JSONL or CSV file with typed, error-reporting field access.

import Foundation
import Tokenizers

/// A field that holds either plain text or a chat message list (TRL's two conventions).
public enum TextOrMessages: Equatable, Sendable {
    case text(String)
    case messages([ChatMessage])
}

/// One data row: a JSON object (JSONL) or a CSV record with its header.
///
/// Every accessor throws a `DatasetError` naming the file, the row's 1-based line and the field.
public struct DataRow: Sendable {
    enum Storage: Sendable {
        case json([String: JSONValue])
        case csv(columns: [String: Int], fields: [String])
    }

    /// The file the row came from.
    public let file: String
    /// The 1-based line where the row starts.
    public let line: Int
    let storage: Storage

    /// The source location of this row.
    public var location: SourceLocation { SourceLocation(file: file, line: line) }

    /// The row's field names (JSON keys, or the CSV header).
    public var fieldNames: [String] {
        switch storage {
        case .json(let o): return o.keys.sorted()
        case .csv(let columns, _): return columns.sorted { $0.value < $1.value }.map(\.key)
        }
    }

    /// Whether the field is present and neither null nor (in CSV) an empty cell.
    public func has(_ field: String) -> Bool {
        switch raw(field) {
        case nil, .null?: return false
        case .string(let s)? where isCSV: return !s.isEmpty
        default: return true
        }
    }

    /// A required string field. JSON numbers and booleans are rejected.
    public func string(_ field: String) throws -> String {
        guard let value = try optionalString(field) else { throw missing(field) }
        return value
    }

    /// A string field, or nil when absent or null (an empty CSV cell is an empty string).
    public func optionalString(_ field: String) throws -> String? {
        switch raw(field) {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case let other?: throw invalid(field, "is \(other.typeName), expected a string")
        }
    }

    /// A required boolean: JSON true/false, or (text) true/false, yes/no, 1/0 in any case.
    public func bool(_ field: String) throws -> Bool {
        switch raw(field) {
        case nil, .null?: throw missing(field)
        case .bool(let b)?: return b
        case .number(let d)? where d == 0 || d == 1: return d == 1
        case .string(let s)?:
            switch s.trimmingCharacters(in: .whitespaces).lowercased() {
            case "true", "yes", "1", "1.0": return true
            case "false", "no", "0", "0.0": return false
            case "": throw missing(field)
            default: throw invalid(field, "is '\(Self.clip(s))', expected true or false")
            }
        case let other?: throw invalid(field, "is \(other.typeName), expected true or false")
        }
    }

    /// A required integer (a JSON integer number, or integer text).
    public func int(_ field: String) throws -> Int {
        switch raw(field) {
        case nil, .null?: throw missing(field)
        case .number(let d)? where d.rounded() == d && abs(d) < 9e15: return Int(d)
        case .string(let s)?:
            let t = s.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { throw missing(field) }
            if let i = Int(t) { return i }
            if let d = Double(t), d.rounded() == d, abs(d) < 9e15 { return Int(d) }
            throw invalid(field, "is '\(Self.clip(s))', expected an integer")
        case let other?: throw invalid(field, "is \(other.typeName), expected an integer")
        }
    }

    /// A required finite number.
    public func double(_ field: String) throws -> Double {
        guard let d = try optionalDouble(field) else { throw missing(field) }
        return d
    }

    /// A finite number, or nil when absent, null or an empty cell.
    public func optionalDouble(_ field: String) throws -> Double? {
        switch raw(field) {
        case nil, .null?: return nil
        case .number(let d)?: return d
        case .string(let s)?:
            let t = s.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { return nil }
            guard let d = Double(t), d.isFinite else { throw invalid(field, "is '\(Self.clip(s))', expected a finite number") }
            return d
        case let other?: throw invalid(field, "is \(other.typeName), expected a number")
        }
    }

    /// A required text or chat-message-list field (`[{"role": ..., "content": ...}]`).
    ///
    /// In CSV a cell whose text is a JSON array of such objects counts as a message list.
    public func textOrMessages(_ field: String) throws -> TextOrMessages {
        switch raw(field) {
        case nil, .null?: throw missing(field)
        case .string(let s)?:
            if isCSV, s.first == "[", case .array(let items)? = try? JSONValue.parse(s),
               let messages = try? messages(items, field: field) {
                return .messages(messages)
            }
            return .text(s)
        case .array(let items)?: return .messages(try messages(items, field: field))
        case let other?: throw invalid(field, "is \(other.typeName), expected a string or a list of {\"role\", \"content\"} messages")
        }
    }

    /// An error about this row and `field` (for checks made by schemas).
    public func error(_ kind: DatasetError.Kind, field: String?, _ message: String) -> DatasetError {
        DatasetError(kind, file: file, line: line, field: field, message)
    }

    // MARK: - Internals

    private var isCSV: Bool {
        if case .csv = storage { return true }
        return false
    }

    /// A list of integers (token ids): a JSON array, or a CSV cell holding one.
    public func intArray(_ field: String) throws -> [Int] {
        var value = raw(field)
        if case .string(let s)? = value, isCSV { value = try? JSONValue.parse(s) }
        switch value {
        case nil, .null?: throw missing(field)
        case .array(let items)?:
            return try items.enumerated().map { i, item in
                guard case .number(let d) = item, d.rounded() == d, abs(d) < 9e15 else {
                    throw invalid(field, "element \(i) is \(item.typeName), expected an integer")
                }
                return Int(d)
            }
        case let other?: throw invalid(field, "is \(other.typeName), expected a list of integers")
        }
    }

    private func raw(_ field: String) -> JSONValue? {
        switch storage {
        case .json(let o): return o[field]
        case .csv(let columns, let fields):
            guard let i = columns[field] else { return nil }
            return i < fields.count ? .string(fields[i]) : .string("")
        }
    }

    private func messages(_ items: [JSONValue], field: String) throws -> [ChatMessage] {
        try items.enumerated().map { index, item in
            guard case .object(let o) = item else {
                throw invalid(field, "element \(index) is \(item.typeName), expected {\"role\", \"content\"}")
            }
            guard case .string(let roleName)? = o["role"] else {
                throw invalid(field, "element \(index) has no string \"role\"")
            }
            guard case .string(let content)? = o["content"] else {
                throw invalid(field, "element \(index) has no string \"content\" (multimodal content lists are not supported)")
            }
            guard let role = Self.role(roleName) else {
                throw invalid(field, "element \(index) has role '\(roleName)'; expected system, user or assistant")
            }
            return ChatMessage(role: role, content: content)
        }
    }

    private static func role(_ name: String) -> ChatMessage.Role? {
        switch name.lowercased() {
        case "system": return .system
        case "user", "human": return .user
        case "assistant", "gpt", "bot": return .assistant
        default: return nil
        }
    }

    private func missing(_ field: String) -> DatasetError {
        let kind = isCSV ? "column" : "key"
        return DatasetError(.missingField, file: file, line: line, field: field,
                            "the \(kind) '\(field)' is missing or empty; the row has \(fieldNames.joined(separator: ", ")). Fix the row, set the column name in the dataset options, or set skipInvalidRows: true")
    }

    private func invalid(_ field: String, _ what: String) -> DatasetError {
        DatasetError(.invalidValue, file: file, line: line, field: field,
                     "the value \(what); fix the row or set skipInvalidRows: true")
    }

    static func clip(_ s: String) -> String { s.count > 40 ? String(s.prefix(40)) + "…" : s }
}
