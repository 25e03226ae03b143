// One dataset entry of a run configuration: schema, paths, reading options, held-out split.

import Foundation

/// A dataset as a run configuration describes it. Options sit beside `schema` and `paths`
/// (flattened), so a YAML entry reads:
///
/// ```yaml
/// schema: hh-rlhf
/// paths: [$DUALIGN_DATA/hh-rlhf/harmless-base-test.jsonl.gz]
/// skipInvalidRows: true
/// evalFraction: 0.05
/// ```
public struct DatasetSpec: Equatable, Sendable, Codable {
    public var schema: DatasetSchema
    /// Files or directories; relative paths are resolved against the base directory given to `load`.
    public var paths: [String]
    public var options: DatasetOptions
    /// The fraction of prompts held out for evaluation (0: none).
    public var evalFraction: Double
    /// The seed of the held-out split's hash.
    public var splitSeed: UInt64

    public init(schema: DatasetSchema, paths: [String], options: DatasetOptions = DatasetOptions(),
                evalFraction: Double = 0, splitSeed: UInt64 = 0) {
        self.schema = schema
        self.paths = paths
        self.options = options
        self.evalFraction = evalFraction
        self.splitSeed = splitSeed
    }

    private enum Keys: String, CodingKey { case schema, paths, evalFraction, splitSeed }

    /// Any key, to list what an entry holds.
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Every key an entry may hold: the spec's own and the (flattened) options.
    static let knownKeys: Set<String> = {
        var o = DatasetOptions()
        o.maxRows = 0
        o.xstestPrompts = ""
        o.aspects = []
        o.excludeHeldOutPrompts = try? HeldOutSplit(fraction: 0)
        o.excludeEvaluationPrompts = true
        o.evaluationXSTestHoldout = try? HeldOutSplit(fraction: 0)
        o.generatorPairs = []
        let data = (try? JSONEncoder().encode(o)) ?? Data()
        let keys = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?.keys.map { $0 } ?? []
        return Set(keys + ["schema", "paths", "evalFraction", "splitSeed"])
    }()

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        // A misspelt or nested option would otherwise be ignored silently.
        for key in try decoder.container(keyedBy: AnyKey.self).allKeys where !Self.knownKeys.contains(key.stringValue) {
            let path = (decoder.codingPath.map(\.stringValue) + [key.stringValue]).joined(separator: ".")
            throw DatasetError(.invalidConfiguration, file: "dataset config", field: path,
                               "unknown key '\(key.stringValue)'; a dataset entry takes \(Self.knownKeys.sorted().joined(separator: ", ")) (options sit beside schema and paths, not under 'options')")
        }
        schema = try DatasetSchema(configName: c.decode(String.self, forKey: .schema))
        if let one = try? c.decode(String.self, forKey: .paths) {
            paths = [one]
        } else {
            paths = try c.decode([String].self, forKey: .paths)
        }
        options = try DatasetOptions(from: decoder)
        evalFraction = try c.decodeIfPresent(Double.self, forKey: .evalFraction) ?? 0
        splitSeed = try c.decodeIfPresent(UInt64.self, forKey: .splitSeed) ?? 0
    }

    public func encode(to encoder: Encoder) throws {
        try options.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(schema.rawValue, forKey: .schema)
        try c.encode(paths, forKey: .paths)
        try c.encode(evalFraction, forKey: .evalFraction)
        try c.encode(splitSeed, forKey: .splitSeed)
    }

    /// The paths with `$DUALIGN_DATA` / `${DUALIGN_DATA}` expanded to the data root (`DataRoot`), `~`
    /// expanded, and relative ones resolved against `base` (nil: the working directory).
    ///
    /// - Throws: `DataRootError` when a path names the data root and `DUALIGN_DATA` is unusable.
    public func resolvedPaths(relativeTo base: URL? = nil) throws -> [String] {
        try paths.map { try Self.resolve($0, relativeTo: base) }
    }

    /// The spec with its paths and `xstestPrompts` resolved (see `resolvedPaths`).
    public func resolved(relativeTo base: URL? = nil) throws -> DatasetSpec {
        var spec = self
        spec.paths = try resolvedPaths(relativeTo: base)
        spec.options.xstestPrompts = try options.xstestPrompts.map { try Self.resolve($0, relativeTo: base) }
        return spec
    }

    /// One path resolved: data root, home directory, then `base`.
    static func resolve(_ path: String, relativeTo base: URL?) throws -> String {
        let expanded = (try DataRoot.expand(path) as NSString).expandingTildeInPath
        guard let base, !expanded.hasPrefix("/") else { return expanded }
        return base.appendingPathComponent(expanded).standardizedFileURL.path
    }

    /// Loads the dataset.
    public func load(relativeTo base: URL? = nil) throws -> LoadedDataset {
        let spec = try resolved(relativeTo: base)
        return try DatasetLoader.load(schema, paths: spec.paths, options: spec.options)
    }

    /// The held-out split this spec describes.
    public func heldOutSplit() throws -> HeldOutSplit {
        try HeldOutSplit(fraction: evalFraction, seed: splitSeed)
    }
}
