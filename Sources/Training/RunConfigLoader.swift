// Turning a parsed YAML document plus `--set key=value` overrides into a validated RunConfig:
// defaults fill what the user left out, and unknown keys are errors that suggest the right name.

import Foundation

public enum RunConfigLoader {
    /// Merges `document` over the defaults, applies dotted-path `overrides` in order, decodes and validates.
    public static func resolve(document: [String: Any], overrides: [(path: String, value: Any)] = [],
                               source: String = "config") throws -> RunConfig {
        var merged = try defaultsDictionary()
        var user = document
        for (path, value) in overrides { try set(&user, path: path.split(separator: ".").map(String.init), value: value, full: path) }
        try checkKeys(user, known: try knownKeysDictionary(), prefix: "", source: source)
        deepMerge(&merged, user)
        let data = try JSONSerialization.data(withJSONObject: merged)
        let config: RunConfig
        do {
            config = try JSONDecoder().decode(RunConfig.self, from: data)
        } catch let DecodingError.typeMismatch(type, ctx), let DecodingError.valueNotFound(type, ctx) {
            throw RunConfigError(key: ctx.codingPath.map(\.stringValue).joined(separator: "."), message: "expected \(type) in \(source)")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw RunConfigError(key: ctx.codingPath.map(\.stringValue).joined(separator: "."), message: "\(ctx.debugDescription) in \(source)")
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw RunConfigError(key: (ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."), message: "required in \(source)")
        }
        try config.validate()
        return config
    }

    /// The config as a JSON object (the resolved config printed at start and saved with the run).
    public static func json(_ config: RunConfig) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: (try? enc.encode(config)) ?? Data(), as: UTF8.self)
    }

    static func defaultsDictionary() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: JSONEncoder().encode(RunConfig())) as! [String: Any]
    }

    /// Every key a user may write: the defaults with optional fields filled in.
    static func knownKeysDictionary() throws -> [String: Any] {
        var c = RunConfig()
        c.data.maxPairs = 0
        c.checkpoint.stopAfterStep = 0
        c.distributed.threads = 0
        c.distributed.matmulBackend = "auto"
        c.align.prompts = []
        c.align.margin = 0
        c.align.threshold = 0
        c.align.lambda = 0
        c.align.marginFraction = 0
        c.ppo.scoreClip = 0
        c.ppo.missingEOSPenalty = 0
        c.ppo.criticModel = ""
        c.ppo.stopTokenIDs = []
        c.dp = .everyKey
        return try JSONSerialization.jsonObject(with: JSONEncoder().encode(c)) as! [String: Any]
    }

    static func checkKeys(_ user: [String: Any], known: [String: Any], prefix: String, source: String) throws {
        for (key, value) in user {
            let path = prefix.isEmpty ? key : prefix + "." + key
            guard let k = known[key] else {
                let suggestion = known.keys.min { editDistance($0, key) < editDistance($1, key) }.map { " (did you mean \(prefix.isEmpty ? "" : prefix + ".")\($0)?)" } ?? ""
                throw RunConfigError(key: path, message: "unknown key in \(source)\(suggestion)")
            }
            if let sub = value as? [String: Any], let knownSub = k as? [String: Any] {
                try checkKeys(sub, known: knownSub, prefix: path, source: source)
            }
        }
    }

    static func set(_ dict: inout [String: Any], path: [String], value: Any, full: String) throws {
        guard let head = path.first, !head.isEmpty else { throw RunConfigError(key: full, message: "empty key in --set") }
        if path.count == 1 { dict[head] = value; return }
        var sub = (dict[head] as? [String: Any]) ?? [:]
        try set(&sub, path: Array(path.dropFirst()), value: value, full: full)
        dict[head] = sub
    }

    static func deepMerge(_ base: inout [String: Any], _ over: [String: Any]) {
        for (k, v) in over {
            if let sub = v as? [String: Any], var b = base[k] as? [String: Any] {
                deepMerge(&b, sub)
                base[k] = b
            } else {
                base[k] = v
            }
        }
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased()), b = Array(b.lowercased())
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var prev = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
    }
}
