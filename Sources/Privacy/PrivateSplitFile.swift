// Disjoint splits of private data over the stages of a private pipeline (DP-SFT → DP reward → DP-PPO,
// algorithms.md §3.1): each stage runs DP-SGD with the full (ε, δ) on its own part, and the pipeline is
// (ε, δ)-DP by parallel composition only if no row is in two parts. The split is written once, as a file of
// row keys (64-bit hashes) per stage, and every private stage checks it and trains on its own rows only.
//
// On disk (JSON):
//   {"format": "dualign-private-splits", "version": 1, "key": "<how rows were hashed>", "template": "<chat template>",
//    "seed": 0, "stages": [{"name": "sft", "fraction": 0.5, "rows": ["00ab…", …]}, …]}
// Row keys are 16 lowercase hex digits, sorted within a stage.

import Foundation
import Tensors

/// A split of row keys over named stages, no key in two stages.
public struct PrivateSplitFile: Equatable, Sendable {
    public static let format = "dualign-private-splits"
    public static let version = 1

    /// One stage and its rows.
    public struct Stage: Equatable, Sendable {
        public var name: String
        /// The fraction of rows it was given when the split was written.
        public var fraction: Double
        public var rows: Set<UInt64>
    }

    /// How row keys were computed (checked by readers that compute them).
    public var key: String
    /// The chat template the keyed token ids were rendered with (keys of another template do not match).
    public var template: String
    public var seed: UInt64
    public var stages: [Stage]

    /// Assigns each key to a stage by its hash: u = mix(key ⊕ seed)/2⁶⁴ falls in the stage's share of the
    /// cumulative fractions (a total below 1 leaves the rest unassigned). Depends only on the key, the seed
    /// and the fractions, not on the order or number of rows.
    /// - Throws: `PrivacyError(.invalidParameter)` for an empty or repeated name, a fraction outside (0, 1], or a total above 1.
    public static func assign<S: Sequence>(keys: S, stages: [(name: String, fraction: Double)], seed: UInt64, key: String,
                                           template: String) throws -> PrivateSplitFile where S.Element == UInt64 {
        guard !stages.isEmpty else { throw PrivacyError(.invalidParameter, field: "stages", "name at least one stage, e.g. sft=0.5,reward=0.5") }
        var seen = Set<String>()
        for s in stages {
            guard !s.name.isEmpty, seen.insert(s.name).inserted else {
                throw PrivacyError(.invalidParameter, field: "stages", "stage names must be non-empty and distinct ('\(s.name)')")
            }
            guard s.fraction > 0, s.fraction <= 1 else {
                throw PrivacyError(.invalidParameter, field: "stages.\(s.name)", "fraction \(s.fraction) must lie in (0, 1]")
            }
        }
        let total = stages.reduce(0) { $0 + $1.fraction }
        guard total <= 1 + 1e-9 else {
            throw PrivacyError(.invalidParameter, field: "stages", "the fractions add up to \(total); they must not exceed 1")
        }
        var out = stages.map { Stage(name: $0.name, fraction: $0.fraction, rows: []) }
        for k in keys {
            let u = Double(SplitMix64.mix(k ^ seed) >> 11) * 0x1p-53
            var upper = 0.0
            for i in out.indices {
                upper += out[i].fraction
                if u < upper { out[i].rows.insert(k); break }
            }
        }
        return PrivateSplitFile(key: key, template: template, seed: seed, stages: out)
    }

    /// The rows of stage `name`.
    /// - Throws: `PrivacyError(.invalidParameter)` naming the stages the file has.
    public func rows(ofStage name: String) throws -> Set<UInt64> {
        guard let s = stages.first(where: { $0.name == name }) else {
            throw PrivacyError(.invalidParameter, field: "stage", "the split has no stage '\(name)'; it has \(stages.map(\.name).joined(separator: ", "))")
        }
        return s.rows
    }

    /// The stage holding `key`, if any.
    public func stage(of key: UInt64) -> String? { stages.first { $0.rows.contains(key) }?.name }

    // MARK: - File

    private struct Disk: Codable {
        struct Stage: Codable { var name: String; var fraction: Double; var rows: [String] }
        var format: String
        var version: Int
        var key: String
        var template: String
        var seed: UInt64
        var stages: [Stage]
    }

    /// The file's bytes (sorted keys, so the same split always writes the same file).
    public func encoded() throws -> Data {
        let disk = Disk(format: Self.format, version: Self.version, key: key, template: template, seed: seed,
                        stages: stages.map { .init(name: $0.name, fraction: $0.fraction, rows: $0.rows.sorted().map { String(format: "%016llx", $0) }) })
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try enc.encode(disk)
    }

    /// Writes the file atomically.
    public func write(to url: URL) throws { try encoded().write(to: url, options: .atomic) }

    /// Reads and checks a split file: its format and version, distinct stage names, well-formed keys and no
    /// key in two stages. Every error names the file and the field at fault.
    public static func read(_ url: URL) throws -> PrivateSplitFile {
        let path = url.path
        func fail(_ field: String, _ message: String) -> PrivacyError { PrivacyError(.invalidParameter, field: "\(path): \(field)", message) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw fail("file", "cannot be read; write it with `dualign private-split` or fix dp.split")
        }
        let disk: Disk
        do { disk = try JSONDecoder().decode(Disk.self, from: data) } catch {
            throw fail("file", "not a split file (expected JSON with format, version, key, template, seed, stages): \(error)")
        }
        guard disk.format == format else { throw fail("format", "is '\(disk.format)', expected '\(format)'") }
        guard disk.version == version else { throw fail("version", "is \(disk.version); this build reads version \(version)") }
        var names = Set<String>(), owner: [UInt64: String] = [:]
        var stages: [Stage] = []
        for (i, s) in disk.stages.enumerated() {
            guard !s.name.isEmpty, names.insert(s.name).inserted else { throw fail("stages[\(i)].name", "'\(s.name)' is empty or repeated") }
            var rows = Set<UInt64>()
            for (j, hex) in s.rows.enumerated() {
                guard hex.count == 16, let k = UInt64(hex, radix: 16) else {
                    throw fail("stages[\(i)].rows[\(j)]", "'\(hex)' is not a 16-digit hex row key")
                }
                if let other = owner[k] {
                    throw fail("stages[\(i)].rows[\(j)]", "row \(hex) is in stage '\(other)' and in stage '\(s.name)': the stages are not disjoint, so parallel composition does not hold; write the split again")
                }
                owner[k] = s.name
                rows.insert(k)
            }
            stages.append(Stage(name: s.name, fraction: s.fraction, rows: rows))
        }
        return PrivateSplitFile(key: disk.key, template: disk.template, seed: disk.seed, stages: stages)
    }
}
