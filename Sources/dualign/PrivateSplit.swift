// `dualign private-split --config run.yaml --stages sft=0.4,reward=0.3,ppo=0.3 --out splits.json`: writes the
// disjoint split of a private dataset over the stages of a private pipeline, once; each private stage then
// names it (dp.split, dp.stage) and trains on its own rows only (docs/privacy.md, "Disjoint splits").

import ArgumentParser
import Foundation
import Distributed
import Models
import Privacy
import Training

struct PrivateSplit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "private-split",
        abstract: "Write the disjoint split of a run config's training rows over private stages (parallel composition).",
        discussion: """
        Loads the config's data as `dualign train` would (model tokenizer, chat template, truncation, held-out \
        split), keys every training row by its prompt, and assigns each key to a stage by a seeded hash on the \
        given fractions (a total below 1 leaves rows to no stage). Refuses to overwrite an existing file: a split \
        is written once.
        """)

    @OptionGroup var options: RunOptions
    @Option(help: "Stages and their fractions of the rows, e.g. sft=0.4,reward=0.3,ppo=0.3.")
    var stages: String
    @Option(help: "The split file to write.")
    var out: String
    @Option(help: "Which pairs to load (cost: safety pairs where a dataset has them; otherwise preference pairs).")
    var task: TrainingTask = .dpo
    @Option(parsing: .unconditional, help: "Seed of the assignment hash.")
    var seed: UInt64 = 0

    func parsedStages() throws -> [(name: String, fraction: Double)] {
        try stages.split(separator: ",").map { part in
            let kv = part.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, let f = Double(kv[1]) else {
                throw ValidationError("--stages \(stages): write name=fraction pairs separated by commas, e.g. sft=0.5,reward=0.5")
            }
            return (kv[0], f)
        }
    }

    func validate() throws {
        _ = try parsedStages()
        if FileManager.default.fileExists(atPath: out) {
            throw ValidationError("--out \(out) exists: a split is written once (every private stage checks the same file); remove it only if no stage has trained on it")
        }
    }

    func run() throws {
        let comm = LocalCommunicator.group(size: 1)[0]
        let config = try options.resolve(task: task, communicator: comm)
        let loaded = try ModelSource.load(config.model, loadWeights: false)
        let template = loaded.tokenizer == nil && config.data.datasets.allSatisfy({ $0.schema == .tokens }) ? nil : try chatTemplate(config, loaded)
        let data = try TrainingData.load(config, template: template)
        let keys = PrivateStageRows.keys(data.train)
        let split = try PrivateSplitFile.assign(keys: keys, stages: try parsedStages(), seed: seed, key: PrivateStageRows.keyName,
                                                template: config.data.template)
        try split.write(to: URL(fileURLWithPath: out))
        let counts = split.stages.map { "\($0.name) \($0.rows.count)" }.joined(separator: ", ")
        Output.line("wrote \(out): \(data.train.count) training pairs, \(keys.count) distinct prompts; rows per stage: \(counts)")
    }
}
