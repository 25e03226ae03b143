// Reading the dual's per-prompt scores from JSON Lines.
//
// One prompt per line:  {"rewards": [r_1, …, r_K], "utilities": [[g_1, …, g_K], …m lists], "weights": [w_1, …, w_K]}
// `weights` is optional (uniform 1/K when absent); other keys (e.g. "prompt") are ignored; blank lines are skipped.
// K may differ between prompts, m may not. A small dedicated parser reads the numbers directly, so a malformed or
// non-finite value (Python's NaN / Infinity, or 1e999) is reported with its file, line and field.

import Foundation

/// Why a dual score file was rejected; every case names the file and, where there is one, the 1-based line.
public enum DualScoreFileError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The file could not be read.
    case unreadable(file: String, reason: String)
    /// The file holds no prompt lines.
    case empty(file: String)
    /// A line is not valid JSON (column is 1-based, in bytes).
    case invalidJSON(file: String, line: Int, column: Int, detail: String)
    /// A line is valid JSON but not an object.
    case notAnObject(file: String, line: Int)
    /// A required field is absent.
    case missingField(file: String, line: Int, field: String)
    /// A field has the wrong JSON type.
    case wrongType(file: String, line: Int, field: String, expected: String)
    /// A field's list has the wrong number of values.
    case lengthMismatch(file: String, line: Int, field: String, expected: Int, actual: Int)
    /// A value is NaN or infinite.
    case nonFinite(file: String, line: Int, field: String, text: String)
    /// A line's number of utility lists (m) differs from the first prompt's.
    case constraintCountMismatch(file: String, line: Int, expected: Int, actual: Int, firstLine: Int)
    /// The weights are negative or sum to zero.
    case invalidWeights(file: String, line: Int, detail: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason):
            return "\(file): cannot read the score file (\(reason)); check the path and permissions."
        case .empty(let file):
            return "\(file): no prompts; write one JSON object per line: "
                + #"{"rewards": [...], "utilities": [[...]], "weights": [...]} (weights optional)."#
        case .invalidJSON(let file, let line, let column, let detail):
            return "\(file):\(line):\(column): not valid JSON (\(detail)); each line must be one complete JSON object."
        case .notAnObject(let file, let line):
            return "\(file):\(line): expected a JSON object such as "
                + #"{"rewards": [...], "utilities": [[...]]}; write one prompt's scores per line."#
        case .missingField(let file, let line, let field):
            let hint = field == "utilities"
                ? #"add "utilities": [[g_1, ..., g_K]] with one list per constraint"#
                : #"add "rewards": [r_1, ..., r_K], one reward per sample"#
            return "\(file):\(line): missing field \"\(field)\"; \(hint)."
        case .wrongType(let file, let line, let field, let expected):
            return "\(file):\(line): field \"\(field)\" must be \(expected)."
        case .lengthMismatch(let file, let line, let field, let expected, let actual):
            return "\(file):\(line): field \"\(field)\" has \(actual) values but \"rewards\" has \(expected); "
                + "give one value per sample."
        case .nonFinite(let file, let line, let field, let text):
            return "\(file):\(line): field \"\(field)\" is \(text), not a finite number; rescore or drop that sample."
        case .constraintCountMismatch(let file, let line, let expected, let actual, let firstLine):
            return "\(file):\(line): \"utilities\" has \(actual) list(s) but line \(firstLine) has \(expected); "
                + "every prompt needs the same constraints in the same order."
        case .invalidWeights(let file, let line, let detail):
            return "\(file):\(line): \(detail); weights must be ≥ 0 with a positive sum (or omit \"weights\" for uniform)."
        }
    }

    public var errorDescription: String? { description }
}

/// Reads and writes the dual's JSON Lines score files.
public enum DualScoreFile {
    /// Reads `path` and returns one validated `DualPrompt` per non-blank line.
    public static func read(path: String) throws -> [DualPrompt] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw DualScoreFileError.unreadable(file: path, reason: (error as NSError).localizedDescription)
        }
        return try parse(data, file: path)
    }

    /// Reads `path` into `DualScores`.
    public static func readScores(path: String) throws -> DualScores {
        try DualScores(prompts: read(path: path))
    }

    /// Parses JSON Lines `data`; `file` names the source in errors.
    public static func parse(_ data: Data, file: String) throws -> [DualPrompt] {
        var bytes = [UInt8](data)
        let count = bytes.count
        bytes.append(0)   // NUL-terminated, so numbers can be read in place with strtod
        return try bytes.withUnsafeBufferPointer { buffer in
            try parse(buffer.baseAddress!, count: count, file: file)
        }
    }

    private static func parse(_ bytes: UnsafePointer<UInt8>, count: Int, file: String) throws -> [DualPrompt] {
        var prompts: [DualPrompt] = []
        var firstLine = 0
        var lineNumber = 0
        var start = 0
        while start <= count {
            var end = start
            while end < count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            lineNumber += 1
            if (start..<end).contains(where: { !isWhitespace(bytes[$0]) }) {
                let prompt = try parseLine(ScoreLineParser(base: bytes, start: start, end: end), file: file,
                                           line: lineNumber)
                if prompts.isEmpty {
                    firstLine = lineNumber
                } else if prompt.utilities.count != prompts[0].utilities.count {
                    throw DualScoreFileError.constraintCountMismatch(
                        file: file, line: lineNumber, expected: prompts[0].utilities.count,
                        actual: prompt.utilities.count, firstLine: firstLine)
                }
                prompts.append(prompt)
            }
            if end == count { break }
            start = end + 1
        }
        guard !prompts.isEmpty else { throw DualScoreFileError.empty(file: file) }
        return prompts
    }

    /// Formats prompts as JSON Lines (the inverse of `parse`), with round-trip-exact numbers.
    public static func format(_ prompts: [DualPrompt]) -> String {
        func list(_ values: [Double]) -> String { "[" + values.map { "\($0)" }.joined(separator: ", ") + "]" }
        return prompts.map { prompt in
            var line = #"{"rewards": "# + list(prompt.rewards)
            line += #", "utilities": ["# + prompt.utilities.map(list).joined(separator: ", ") + "]"
            if let weights = prompt.weights { line += #", "weights": "# + list(weights) }
            return line + "}\n"
        }.joined()
    }

    private static func parseLine(_ parser: ScoreLineParser, file: String, line number: Int) throws -> DualPrompt {
        var parser = parser
        let value: ScoreJSON
        do {
            value = try parser.parseDocument()
        } catch let error as ScoreLineParser.Failure {
            throw DualScoreFileError.invalidJSON(file: file, line: number, column: error.column, detail: error.detail)
        }
        guard case .object(let fields) = value else { throw DualScoreFileError.notAnObject(file: file, line: number) }

        func numbers(_ json: ScoreJSON, field: String) throws -> [Double] {
            guard case .array(let items) = json else {
                throw DualScoreFileError.wrongType(file: file, line: number, field: field, expected: "an array of numbers")
            }
            return try items.enumerated().map { index, item in
                guard case .number(let x, let text) = item else {
                    throw DualScoreFileError.wrongType(file: file, line: number, field: "\(field)[\(index)]",
                                                       expected: "a number")
                }
                guard x.isFinite else {
                    throw DualScoreFileError.nonFinite(file: file, line: number, field: "\(field)[\(index)]", text: text)
                }
                return x
            }
        }

        guard let rewardsJSON = fields["rewards"] else {
            throw DualScoreFileError.missingField(file: file, line: number, field: "rewards")
        }
        let rewards = try numbers(rewardsJSON, field: "rewards")
        guard !rewards.isEmpty else {
            throw DualScoreFileError.wrongType(file: file, line: number, field: "rewards",
                                               expected: "a non-empty array of numbers (one reward per sample)")
        }
        let k = rewards.count

        guard let utilitiesJSON = fields["utilities"] else {
            throw DualScoreFileError.missingField(file: file, line: number, field: "utilities")
        }
        let listsExpected = "an array of m ≥ 1 arrays of numbers, e.g. [[g_1, ..., g_K]] for one constraint"
        guard case .array(let lists) = utilitiesJSON, !lists.isEmpty else {
            throw DualScoreFileError.wrongType(file: file, line: number, field: "utilities", expected: listsExpected)
        }
        var utilities: [[Double]] = []
        for (i, list) in lists.enumerated() {
            guard case .array = list else {
                throw DualScoreFileError.wrongType(file: file, line: number, field: "utilities", expected: listsExpected)
            }
            let values = try numbers(list, field: "utilities[\(i)]")
            guard values.count == k else {
                throw DualScoreFileError.lengthMismatch(file: file, line: number, field: "utilities[\(i)]",
                                                        expected: k, actual: values.count)
            }
            utilities.append(values)
        }

        var weights: [Double]? = nil
        if let weightsJSON = fields["weights"], weightsJSON != .null {
            let values = try numbers(weightsJSON, field: "weights")
            guard values.count == k else {
                throw DualScoreFileError.lengthMismatch(file: file, line: number, field: "weights", expected: k,
                                                        actual: values.count)
            }
            if let j = values.firstIndex(where: { $0 < 0 }) {
                throw DualScoreFileError.invalidWeights(file: file, line: number, detail: "weights[\(j)] is \(values[j])")
            }
            let sum = values.reduce(0, +)
            guard sum > 0, sum.isFinite else {
                throw DualScoreFileError.invalidWeights(file: file, line: number, detail: "the weights sum to \(sum)")
            }
            weights = values
        }
        return DualPrompt(rewards: rewards, utilities: utilities, weights: weights)
    }
}

private func isWhitespace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
}

/// The JSON values a score line can hold (strings and nested objects are kept only as far as needed).
private enum ScoreJSON: Equatable {
    case number(Double, String)
    case string(String)
    case bool(Bool)
    case null
    case array([ScoreJSON])
    case object([String: ScoreJSON])
}

/// A strict JSON parser for one line, extended to read Python's NaN, Infinity and -Infinity as numbers.
private struct ScoreLineParser {
    struct Failure: Error {
        var column: Int
        var detail: String
    }

    /// The file's bytes (NUL-terminated after the last byte); this line is base[start..<end].
    let base: UnsafePointer<UInt8>
    let start: Int
    let end: Int
    var position: Int

    init(base: UnsafePointer<UInt8>, start: Int, end: Int) {
        self.base = base
        self.start = start
        self.end = end
        self.position = start
    }

    private func text(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(start: base + range.lowerBound, count: range.count), as: UTF8.self)
    }

    mutating func parseDocument() throws -> ScoreJSON {
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        if position < end { throw fail("unexpected text after the JSON value") }
        return value
    }

    private func fail(_ detail: String) -> Failure {
        Failure(column: position - start + 1, detail: detail)
    }

    private var current: UInt8? { position < end ? base[position] : nil }

    private mutating func skipWhitespace() {
        while let c = current, isWhitespace(c) { position += 1 }
    }

    private mutating func expect(_ literal: String) -> Bool {
        let utf8 = Array(literal.utf8)
        guard end - position >= utf8.count,
              utf8.indices.allSatisfy({ base[position + $0] == utf8[$0] }) else { return false }
        position += utf8.count
        return true
    }

    private mutating func parseValue(depth: Int) throws -> ScoreJSON {
        guard depth < 64 else { throw fail("nesting deeper than 64 levels") }
        guard let c = current else { throw fail("unexpected end of line") }
        switch c {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"):
            if expect("true") { return .bool(true) }
        case UInt8(ascii: "f"):
            if expect("false") { return .bool(false) }
        case UInt8(ascii: "n"):
            if expect("null") { return .null }
        case UInt8(ascii: "N"):
            if expect("NaN") { return .number(.nan, "NaN") }
        case UInt8(ascii: "I"):
            if expect("Infinity") { return .number(.infinity, "Infinity") }
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            if c == UInt8(ascii: "-"), expect("-Infinity") { return .number(-.infinity, "-Infinity") }
            return try parseNumber()
        default:
            break
        }
        throw fail("unexpected character '\(Character(Unicode.Scalar(c)))'")
    }

    private mutating func parseObject(depth: Int) throws -> ScoreJSON {
        position += 1
        var fields: [String: ScoreJSON] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") { position += 1; return .object(fields) }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw fail("expected a quoted key") }
            let key = try parseString()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw fail("expected ':' after key \"\(key)\"") }
            position += 1
            skipWhitespace()
            fields[key] = try parseValue(depth: depth + 1)
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return .object(fields)
            default: throw fail("expected ',' or '}' in object")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws -> ScoreJSON {
        position += 1
        var items: [ScoreJSON] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { position += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return .array(items)
            default: throw fail("expected ',' or ']' in array")
            }
        }
    }

    private mutating func parseString() throws -> String {
        position += 1
        var scalars: [UInt8] = []
        while let c = current {
            position += 1
            switch c {
            case UInt8(ascii: "\""):
                return String(decoding: scalars, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let e = current else { throw fail("unterminated escape") }
                position += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(e)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    guard end - position >= 4, let code = UInt32(text(position..<(position + 4)), radix: 16)
                    else { throw fail("bad \\u escape") }
                    position += 4
                    // Lone or paired surrogates only matter for keys we ignore; map them to U+FFFD.
                    let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                    scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    throw fail("bad escape '\\\(Character(Unicode.Scalar(e)))'")
                }
            case 0..<0x20:
                throw fail("control character in string")
            default:
                scalars.append(c)
            }
        }
        throw fail("unterminated string")
    }

    private mutating func parseNumber() throws -> ScoreJSON {
        let start = position
        func digits() -> Int {
            let from = position
            while let c = current, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { position += 1 }
            return position - from
        }
        if current == UInt8(ascii: "-") { position += 1 }
        guard digits() > 0 else { throw fail("expected digits in number") }
        if current == UInt8(ascii: ".") {
            position += 1
            guard digits() > 0 else { throw fail("expected digits after '.'") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard digits() > 0 else { throw fail("expected digits in exponent") }
        }
        // The token matched JSON's number grammar and is followed by a delimiter (or the NUL after the file), so
        // strtod reads exactly it; fall back to Double(String) should its end ever differ.
        var stop: UnsafeMutablePointer<CChar>? = nil
        let first = UnsafeRawPointer(base + start).assumingMemoryBound(to: CChar.self)
        var value = strtod(first, &stop)
        if stop.map({ UnsafeRawPointer($0) }) != UnsafeRawPointer(base + position) {
            guard let parsed = Double(text(start..<position)) else {
                throw fail("unreadable number \(text(start..<position))")
            }
            value = parsed
        }
        return .number(value, value.isFinite ? "" : text(start..<position))
    }
}
