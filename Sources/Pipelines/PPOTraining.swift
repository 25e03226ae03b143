// Building and running a PPO run on every rank: the policy (with value heads on its trunk, or separate
// critics), the score models, the prompts and stop tokens, the objective and the trainer. `dualign train ppo`
// runs it with the reward model of `ppo.rewardModel`; `dualign align ppo-lag` with the reward and cost models
// of the `align` section and a λ state.

import Foundation
import Alignment
import Distributed
import Models
import Rollout
import Tokenizers
import Training

/// One PPO or PPO-Lagrangian run through the trainer.
public struct PPOTraining {
    public let config: RunConfig
    public let comm: Communicator
    /// Score models per stream: the reward model, then the cost model (PPO-Lagrangian).
    public let scoreModelSpecs: [String]
    /// λ settings for PPO-Lagrangian; nil for PPO.
    public let lagrangian: PPOLagrangian?

    /// PPO on `config.ppo.rewardModel`.
    public init(config: RunConfig, communicator: Communicator) throws {
        guard !config.ppo.rewardModel.isEmpty else {
            throw RunConfigError(key: "ppo.rewardModel", message: "give the reward model (final.gguf of `dualign train reward`)")
        }
        self.config = config; comm = communicator; scoreModelSpecs = [config.ppo.rewardModel]; lagrangian = nil
    }

    /// PPO-Lagrangian on `align.rewardModel` and `align.costModel` with Safe-RLHF's multiplier (`align.lambdaInit`,
    /// `lambdaLearningRate`, `lambdaMax`, `costThreshold`, `costWindow`).
    public init(lagrangianConfig config: RunConfig, communicator: Communicator) throws {
        let a = config.align
        do {
            let multiplier = try LagrangeMultiplierUpdate(initialLambda: a.lambdaInit, learningRate: a.lambdaLearningRate,
                                                          threshold: a.costThreshold, lambdaMax: a.lambdaMax)
            lagrangian = try PPOLagrangian(multiplier: multiplier, windowSize: a.costWindow)
        } catch {
            throw RunConfigError(key: "align.lambdaInit", message: "\(error)")
        }
        self.config = config; comm = communicator; scoreModelSpecs = [a.rewardModel, a.costModel]
    }

    /// A score model on every rank (each reads the file), checked to have a trained score head.
    func scoreModel(_ spec: String, key: String) throws -> Transformer {
        let loaded: LoadedModel
        do { loaded = try ModelSource.load(spec, trainable: false, scoreHead: true) } catch let e as ModelSourceError {
            throw RunConfigError(key: key, message: "\(spec): \(e.message.replacingOccurrences(of: "--model \(spec): ", with: ""))")
        }
        guard try loaded.hasScoreHeadTensor() else {
            throw RunConfigError(key: key, message: "\(spec) has no trained score head; give the final.gguf of `dualign train \(key.contains("cost") ? "cost" : "reward")`")
        }
        return loaded.model
    }

    /// Loads the models and prompts, builds the objective and its trainer (not yet run).
    public func makeTrainer(reference: Transformer? = nil) throws -> (Trainer, PPOObjective) {
        let p = config.ppo, streams = scoreModelSpecs.count
        let loaded = try ModelSource.load(config.model, trainable: true, valueHeads: p.critic == .head ? streams : 0, loadWeights: comm.rank == 0)
        // Pre-tokenized prompts need no template (and a model without a tokenizer can train on them).
        let textData = !config.data.datasets.allSatisfy { $0.schema == .tokens }
        let template: ChatTemplate? = loaded.tokenizer == nil && !textData ? nil : try Self.chatTemplate(config, loaded)
        let prompts = try PPOPrompts.load(config, template: template)
        let keys = lagrangian == nil ? ["ppo.rewardModel"] : ["align.rewardModel", "align.costModel"]
        let scoreModels = try zip(scoreModelSpecs, keys).map { try scoreModel($0, key: $1) }
        var critics: [PPOCritic] = []
        if p.critic == .model {
            let specs = lagrangian == nil ? [p.criticModel ?? scoreModelSpecs[0]] : scoreModelSpecs
            for (s, spec) in specs.enumerated() {
                critics.append(try PPOCritic(stream: s == 0 ? "reward" : "cost", spec: spec, config: config,
                                             seed: config.seed ^ (0x4352_0000 + UInt64(s)), comm: comm))
            }
        }
        var stops = Set((p.stopTokenIDs ?? []).map { Int32($0) })
        if let template { stops.insert(Int32(template.endOfTurnID)) }
        if let eos = loaded.tokenizer?.eosTokenID { stops.insert(Int32(eos)) }
        let pad = Int32(loaded.tokenizer?.padTokenID ?? loaded.tokenizer?.eosTokenID ?? 0)
        let objective = try PPOObjective(config: config, prompts: prompts, scoreModels: scoreModels, critics: critics, lagrangian: lagrangian,
                                         stopTokens: stops, padToken: pad, comm: comm)
        let trainer = try Trainer(config: config, communicator: comm, model: loaded, objective: objective, reference: reference)
        return (trainer, objective)
    }

    /// The run's chat template over the model's tokenizer (ChatML keeps the model's default system prompt).
    static func chatTemplate(_ config: RunConfig, _ loaded: LoadedModel) throws -> ChatTemplate {
        let tokenizer = try loaded.requireTokenizer()
        let system = loaded.gguf?.metadataString("tokenizer.chat_template").flatMap(ChatTemplate.defaultSystemPrompt(fromJinja:))
        return try ChatTemplate(kind: ChatTemplateKind(rawValue: config.data.template)!, tokenizer: tokenizer,
                                defaultSystemPrompt: config.data.template == ChatTemplateKind.chatML.rawValue ? system : nil)
    }
}
