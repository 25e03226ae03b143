// The `sail` section of a run config: which SAIL routes are on and their probabilities and coefficients
// (algorithms.md §4), the labeller of SAIL-PR pairs, and the online generation (`dualign align sail`).
// Unlike `align`, every key here changes the steps taken, so a resume with another value is refused.
//
// Defaults are the authors' (`configs/tasks.yaml`, `pipelines/dpo.py` of xudongwu-0/SAIL): a route listed in
// `routes` takes its probability and coefficient from r/rho, p/pi or g/gamma (0.4/0.2, 0.3/0.2, 0.3/0.3);
// a route not listed has probability 0. With no route listed the run is plain DPO through the same loop.

import Foundation
import Alignment
import Tensors

/// A SAIL route that can be switched on (the fourth, plain DPO, takes the rest of the probability).
public enum SAILRouteName: String, Codable, CaseIterable, Sendable {
    /// SAIL-DP (code `DDP`): dataset pairs, preference from the policy.
    case dp
    /// SAIL-PP (code `DPP`): policy samples labelled by the policy.
    case pp
    /// SAIL-PR (code `DPR`): policy samples labelled by a reward (or reversed cost) model.
    case pr
}

/// The model that labels SAIL-PR pairs: `align.rewardModel` (higher score chosen) or `align.costModel`
/// (lower cost chosen: the code's `reward_model_reverse`).
public enum SAILLabeller: String, Codable, CaseIterable, Sendable {
    case reward, cost
}

/// Settings of SAIL (`dualign align sail`).
public struct SAILSettings: Codable, Equatable, Sendable {
    /// The routes switched on; the others have probability 0.
    public var routes: [SAILRouteName] = []
    /// r: probability of a SAIL-DP row.
    public var r: Double = 0.4
    /// ρ: SAIL-DP's coefficient of −½(log σ(βh))².
    public var rho: Double = 0.2
    /// p: probability of a SAIL-PP row.
    public var p: Double = 0.3
    /// π: SAIL-PP's coefficient of −½(log σ(βh))² and of its score-function term.
    public var pi: Double = 0.2
    /// g: probability of a SAIL-PR row.
    public var g: Double = 0.3
    /// γ: SAIL-PR's coefficient of its score-function term.
    public var gamma: Double = 0.3
    /// The score-function term of PP and PR rows: the authors' hook or the textbook gradient (docs/sail.md).
    public var scoreTerm: SAILScoreTerm = .codeFaithful
    /// Mixed with the run's seed: seeds the routes, SAIL-DP flips, SAIL-PP labels, samples and buffer shuffles.
    public var seed: UInt64 = 0
    /// Which score model labels SAIL-PR pairs.
    public var labeller: SAILLabeller = .reward
    /// Sampling temperature of the online responses (the code's `generation_temperature`).
    public var temperature: Double = 0.9
    /// New tokens per online response at most; 0: `data.maxLength − data.maxPromptLength` (the code's
    /// `max_target_length`, the response part of the sequence budget).
    public var maxNewTokens: Int = 0
    /// Prompts generated per round over all ranks (the code's `per_device_generation_batch_size` ×
    /// `generation_num_batches`, 24 × 1, which it counts per device).
    public var generationPrompts: Int = 24
    /// Sequences decoded (and labelled) together on a rank.
    public var generationBatchSize: Int = 16
    /// Times each generated pair is put in its buffer (the code's `generation_reuse_multiplier`).
    public var reuse: Int = 1
    /// Divide `optimizer.epochs` by 1 − r − p − g (the code's `num_train_epochs /= 1 − r − p − g`), so plain DPO
    /// rows see as many dataset pairs as plain DPO would; ignored when `optimizer.maxSteps` is set.
    public var scaleEpochs: Bool = true

    public init() {}

    /// The route probabilities and coefficients of the routes switched on, as the Alignment module's config.
    public func sailConfig(beta: Double, runSeed: UInt64) -> SAILConfig {
        let on = Set(routes)
        return SAILConfig(beta: beta,
                          dataPolicyProbability: on.contains(.dp) ? r : 0, dataPolicyCoefficient: on.contains(.dp) ? rho : 0,
                          policyPolicyProbability: on.contains(.pp) ? p : 0, policyPolicyCoefficient: on.contains(.pp) ? pi : 0,
                          policyRewardProbability: on.contains(.pr) ? g : 0, policyRewardCoefficient: on.contains(.pr) ? gamma : 0,
                          scoreTerm: scoreTerm, seed: SplitMix64.mix(runSeed &+ SplitMix64.golden) ^ seed)
    }

    /// Whether any route samples from the policy (PP or PR), i.e. whether the run generates.
    public var generates: Bool { routes.contains(.pp) || routes.contains(.pr) }

    /// The response budget of online samples under `config`.
    public func responseTokens(_ config: RunConfig) -> Int {
        maxNewTokens > 0 ? maxNewTokens : config.data.maxLength - config.data.maxPromptLength
    }

    /// A short name of the variant for logs and model names: `dpo`, `dp`, `pp`, `pr`, or the routes joined (`dp+pr`).
    public var variantName: String {
        let on = SAILRouteName.allCases.filter(routes.contains)
        return on.isEmpty ? "dpo" : on.map(\.rawValue).joined(separator: "+")
    }

    /// Checks the section against the rest of `config`; errors name the key and say what to do.
    public func validate(_ config: RunConfig) throws {
        func fail(_ key: String, _ m: String) -> RunConfigError { RunConfigError(key: key, message: m) }
        if Set(routes).count != routes.count { throw fail("sail.routes", "lists a route twice; list each of dp, pp, pr at most once") }
        let d = config.dpo
        if d.loss != .sigmoid { throw fail("dpo.loss", "SAIL extends the sigmoid DPO loss (the code's generalized_sigmoid); set dpo.loss: sigmoid") }
        if d.reduction != .sum { throw fail("dpo.reduction", "SAIL's terms use summed response log-probs; set dpo.reduction: sum") }
        if d.labelSmoothing != 0 { throw fail("dpo.labelSmoothing", "SAIL has no label smoothing; set it to 0") }
        if d.referenceFree { throw fail("dpo.referenceFree", "SAIL needs a reference model; set it to false") }
        do { try sailConfig(beta: d.beta, runSeed: config.seed).validate() } catch let e as SAILError {
            let key: String
            switch e {
            case .invalidParameter(let name, _, _):
                key = name.hasPrefix("beta") ? "dpo.beta" : name.hasPrefix("r ") ? "sail.r" : name.hasPrefix("p ") ? "sail.p"
                    : name.hasPrefix("g ") ? "sail.g" : name.hasPrefix("ρ") ? "sail.rho" : name.hasPrefix("π") ? "sail.pi" : "sail.gamma"
            default: key = "sail.routes"
            }
            throw fail(key, e.description)
        }
        if config.optimizer.maxSteps < 1 && scaleEpochs {
            do { _ = try sailConfig(beta: d.beta, runSeed: config.seed).offlineEpochScale() } catch let e as SAILError {
                throw fail("sail.scaleEpochs", "\(e.description) Or set scaleEpochs: false.")
            }
        }
        if !(temperature > 0 && temperature.isFinite) { throw fail("sail.temperature", "must be > 0 (the authors sample at 0.9), got \(temperature)") }
        if maxNewTokens < 0 { throw fail("sail.maxNewTokens", "must be ≥ 0 (0: data.maxLength − data.maxPromptLength), got \(maxNewTokens)") }
        if responseTokens(config) < 1 { throw fail("sail.maxNewTokens", "leaves no room for a response; raise data.maxLength or set maxNewTokens") }
        if generationPrompts < 1 { throw fail("sail.generationPrompts", "must be at least 1 (the authors generate 24 prompts per round)") }
        if generationBatchSize < 1 { throw fail("sail.generationBatchSize", "must be at least 1") }
        if reuse < 1 { throw fail("sail.reuse", "must be at least 1 (each generated pair is used reuse times)") }
        if routes.contains(.pr) {
            let (key, path) = labeller == .reward ? ("align.rewardModel", config.align.rewardModel) : ("align.costModel", config.align.costModel)
            if path.isEmpty {
                throw fail(key, "SAIL-PR labels its pairs with the \(labeller.rawValue) model (sail.labeller: \(labeller.rawValue)); give the final.gguf of `dualign train \(labeller.rawValue)`")
            }
        }
    }
}
