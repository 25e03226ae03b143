// A private stage of a split (dp.split, dp.stage): the rows of the run's training pairs are keyed, and the
// run keeps only its stage's rows; rows of other stages and rows of no stage are dropped, so one user's row
// is used by at most one private stage. The key is the prompt (its token ids under the run's chat
// template): every pair of one prompt falls in one stage, and a prompts-only stage (PPO) keys alike.

import Foundation
import Datasets
import Privacy
import Tensors

public enum PrivateStageRows {
    /// How `rowKey` hashes a row (stored in split files and checked).
    public static let keyName = "fnv1a64(prompt token ids, little-endian u32)"

    /// The key of a row: FNV-1a-64 of its prompt token ids.
    public static func rowKey(promptTokens: [Int]) -> UInt64 {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(promptTokens.count * 4)
        for t in promptTokens { withUnsafeBytes(of: UInt32(truncatingIfNeeded: t).littleEndian) { bytes.append(contentsOf: $0) } }
        return StableHash.fnv1a(bytes)
    }

    /// The keys of a set of pairs (for writing a split).
    public static func keys(_ pairs: [TokenizedPair]) -> Set<UInt64> { Set(pairs.map { rowKey(promptTokens: $0.promptTokens) }) }

    /// Reads `config.dp.split` (relative paths from `baseDirectory`, else the working directory), checks it,
    /// and keeps in `data.train` only the rows of stage `dp.stage` (default: the task name). Returns a line for
    /// the run log, or nil when the config names no split.
    /// - Throws: `RunConfigError` naming dp.split or dp.stage (unreadable or overlapping file, another key or
    ///   template, an unknown stage, no row of the stage in the data).
    public static func select(_ config: RunConfig, data: inout TrainingData, baseDirectory: URL? = nil) throws -> String? {
        guard let (keep, note) = try selection(config, keys: data.train.map { rowKey(promptTokens: $0.promptTokens) },
                                               what: "training pairs", baseDirectory: baseDirectory) else { return nil }
        data.train = zip(data.train, keep).filter(\.1).map(\.0)
        return note
    }

    /// Which of `keys` (rows keyed by `rowKey`) are in the run's stage of `config.dp.split`, and a line for the
    /// run log; nil when the config names no split. `what` names the rows in messages ("training prompts").
    /// - Throws: as `select`.
    public static func selection(_ config: RunConfig, keys: [UInt64], what: String, baseDirectory: URL? = nil) throws -> (keep: [Bool], note: String)? {
        guard let path = config.dp.split else { return nil }
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path)
            : (baseDirectory ?? URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).appendingPathComponent(path)
        let stage = config.dp.stage ?? config.task.rawValue
        let file: PrivateSplitFile
        let mine: Set<UInt64>
        do {
            file = try PrivateSplitFile.read(url)
            mine = try file.rows(ofStage: stage)
        } catch let error as PrivacyError {
            throw RunConfigError(key: error.field == "stage" ? "dp.stage" : "dp.split", message: error.description)
        }
        guard file.key == keyName else {
            throw RunConfigError(key: "dp.split", message: "\(url.path) keys rows by '\(file.key)', this build by '\(keyName)'; write the split again")
        }
        guard file.template == config.data.template else {
            throw RunConfigError(key: "dp.split", message: "\(url.path) was written with template \(file.template) and this run renders prompts with \(config.data.template); row keys would not match — use the split's template or write the split again")
        }
        var keep: [Bool] = [], elsewhere = 0, nowhere = 0
        for k in keys {
            let ours = mine.contains(k)
            keep.append(ours)
            if !ours { if file.stage(of: k) != nil { elsewhere += 1 } else { nowhere += 1 } }
        }
        let kept = keep.filter { $0 }.count
        guard kept > 0 else {
            throw RunConfigError(key: "dp.stage", message: "none of the \(keys.count) \(what) is in stage '\(stage)' of \(url.path); check the data, the stage and the template the split was written with")
        }
        let note = "dp.split: stage '\(stage)' of \(url.lastPathComponent): \(kept) of \(keys.count) \(what) are this stage's; \(elsewhere) belong to other stages and \(nowhere) to none (both dropped)"
        return (keep, note)
    }
}
