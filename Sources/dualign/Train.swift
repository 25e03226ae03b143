// `dualign train sft|dpo|reward|cost|ppo --config run.yaml [--set key=value …]`.

import ArgumentParser
import Foundation
import Yams
import Distributed
import Models
import Tensors
import Tokenizers
import Training
import Datasets
import Pipelines

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a policy (sft, dpo, ppo) or a score model (reward, cost), data-parallel under mpirun; rerun the same command to resume.")

    @Argument(help: "What to train: \(TrainingTask.allCases.map(\.rawValue).joined(separator: ", ")).")
    var task: TrainingTask
    @OptionGroup var options: RunOptions

    func run() throws { try options.execute(task: task) }
}

extension TrainingTask: ExpressibleByArgument {}

/// `--config` and `--set`, shared by `train` and `align`.
struct RunOptions: ParsableArguments {
    @Option(help: "The run's YAML config.")
    var config: String
    @Option(name: .customLong("set"), parsing: .singleValue, help: "Override a config key, e.g. --set optimizer.learningRate=1e-5 (repeatable).")
    var overrides: [String] = []

    func validate() throws {
        for o in overrides where !o.contains("=") {
            throw ValidationError("--set \(o): write key=value, e.g. --set optimizer.maxSteps=20")
        }
    }

    /// Rank 0 reads the YAML, applies overrides and broadcasts the resolved config as JSON.
    func resolve(task: TrainingTask, communicator comm: Communicator) throws -> RunConfig {
        var json: String? = nil
        if comm.rank == 0 {
            do {
                guard let text = try? String(contentsOfFile: config, encoding: .utf8) else {
                    throw ValidationError("cannot read --config \(config); check the path")
                }
                let node: Any?
                do { node = try Yams.load(yaml: text) } catch {
                    throw ValidationError("\(config): not valid YAML: \(error)")
                }
                var doc = (node as? [String: Any]) ?? [:]
                if node != nil && !(node is [String: Any]) { throw ValidationError("\(config): the top level must be a mapping of keys") }
                doc["task"] = task.rawValue
                let parsed = overrides.map { o -> (path: String, value: Any) in
                    let parts = o.split(separator: "=", maxSplits: 1).map(String.init)
                    let text = parts.count > 1 ? parts[1] : ""
                    let value: Any = ((try? Yams.load(yaml: text)) ?? nil) ?? text
                    return (parts[0], value)
                }
                var resolved = try RunConfigLoader.resolve(document: yamlToJSON(doc) as! [String: Any],
                                                           overrides: parsed.map { ($0.path, yamlToJSON($0.value)) }, source: config)
                // Dataset paths name the data root ($DUALIGN_DATA) or are relative to the config file; the
                // saved config holds absolute ones.
                let base = URL(fileURLWithPath: config).deletingLastPathComponent()
                for i in resolved.data.datasets.indices {
                    resolved.data.datasets[i] = try resolved.data.datasets[i].resolved(relativeTo: base)
                }
                if let split = resolved.dp.split {
                    resolved.dp.split = (split as NSString).expandingTildeInPath.hasPrefix("/") ? (split as NSString).expandingTildeInPath
                        : base.appendingPathComponent(split).standardizedFileURL.path
                }
                for i in (resolved.align.prompts ?? []).indices {
                    resolved.align.prompts![i] = try resolved.align.prompts![i].resolved(relativeTo: base)
                }
                json = RunConfigLoader.json(resolved)
            } catch {
                // Every rank must reach the broadcast: send the error text instead of a config.
                json = "ERROR:" + "\(error)"
            }
        }
        let shared = try comm.broadcastString(json ?? "", root: 0)
        if shared.hasPrefix("ERROR:") { throw ValidationError(String(shared.dropFirst(6))) }
        return try JSONDecoder().decode(RunConfig.self, from: Data(shared.utf8))
    }

    /// Loads everything and trains.
    func execute(task: TrainingTask) throws {
        let comm = try MPICommunicator.world()
        let config = try resolve(task: task, communicator: comm)
        comm.collectiveTimeout = config.distributed.collectiveTimeout
        let matmul = try configureThreads(config.distributed.threads, ranks: comm.size, matmul: config.distributed.matmulBackend)
        if comm.rank == 0 {
            Output.line("resolved config:\n" + RunConfigLoader.json(config))
            Output.line("matmul: \(matmul.backend) (\(matmul.backend.kernels); \(matmul.reason))")
        }
        let summary: TrainingSummary
        if task == .ppo {
            // PPO samples and scores: its objective and models are built by the Pipelines module.
            summary = try PPOTraining(config: config, communicator: comm).makeTrainer().0.run()
        } else {
            let loaded = try ModelSource.load(config.model, trainable: true, scoreHead: task == .reward || task == .cost, loadWeights: comm.rank == 0)
            // Pre-tokenized data needs no template (and a model without a tokenizer can train on it).
            let template = loaded.tokenizer == nil && config.data.datasets.allSatisfy({ $0.schema == .tokens }) ? nil : try chatTemplate(config, loaded)
            let trainer = try Trainer(config: config, communicator: comm, model: loaded, template: template)
            summary = try trainer.run()
        }
        if comm.rank == 0 {
            let final = summary.finalMetrics.merging(summary.evalMetrics) { $1 }
            let line = final.keys.sorted().map { "\($0)=\(String(format: "%.4g", final[$0]!))" }.joined(separator: " ")
            Output.line("finished \(summary.steps) steps: \(line)")
        }
    }
}

/// The run's chat template over the model's tokenizer (ChatML keeps the model's default system prompt).
func chatTemplate(_ config: RunConfig, _ loaded: LoadedModel) throws -> ChatTemplate {
    let tokenizer = try loaded.requireTokenizer()
    let system = loaded.gguf?.metadataString("tokenizer.chat_template").flatMap(ChatTemplate.defaultSystemPrompt(fromJinja:))
    return try ChatTemplate(kind: ChatTemplateKind(rawValue: config.data.template)!, tokenizer: tokenizer,
                            defaultSystemPrompt: config.data.template == ChatTemplateKind.chatML.rawValue ? system : nil)
}

/// Yams values to JSONSerialization-compatible values (ints, doubles, bools, strings, arrays, dicts).
func yamlToJSON(_ v: Any) -> Any {
    switch v {
    case let d as [String: Any]: return d.mapValues(yamlToJSON)
    case let d as [AnyHashable: Any]: return Dictionary(uniqueKeysWithValues: d.map { ("\($0.key)", yamlToJSON($0.value)) })
    case let a as [Any]: return a.map(yamlToJSON)
    case is Int, is Double, is Bool, is String: return v
    case is NSNull: return NSNull()
    default: return "\(v)"
    }
}
