// SAIL's configuration, per-row routing, seeded draws and online-pair labels (algorithms.md §4.2–§4.3; the
// authors' `cdpo/cdpo_trainer.py` at c3a4ef3 in xudongwu-0/SAIL).
//
// Each row of a global batch goes to one of four routes, as the code's multinomial([r, p, g, 1 − r − p − g]):
//     u < r              → SAIL-DP (code DDP): offline pair, label flipped with probability 1 − σ(βh)
//     u < r + p          → SAIL-PP (code DPP): policy samples labelled by Bernoulli(σ(β·h_θ))
//     u < r + p + g      → SAIL-PR (code DPR): policy samples labelled by a reward (or reversed cost) model
//     otherwise          → plain offline DPO
// The code draws the routes from torch's global generator, so they depend on the batch split. Here every draw is a
// function of (seed, purpose, index) only (`SAILDraw.uniform`: random access into a SplitMix64 stream per
// purpose), so every world size routes, flips and labels the same rows, and a resumed run
// redraws exactly. The index of a row is its position in the run's stream of rows (step·globalBatch + position),
// so every epoch draws afresh.

import Foundation
import Tensors

/// Where one row of a SAIL batch goes.
public enum SAILRoute: String, Sendable, Codable, CaseIterable {
    /// Plain offline DPO on the dataset pair.
    case dpo
    /// SAIL-DP (code `DDP`): dataset responses, preference from the policy (seeded flip), coefficient ρ.
    case dataPolicy
    /// SAIL-PP (code `DPP`): policy samples labelled by the policy, coefficient π, score-function term.
    case policyPolicy
    /// SAIL-PR (code `DPR`): policy samples labelled by a reward model, coefficient γ, score-function term.
    case policyReward

    /// The authors' code name, used in metric names (`sail/routes/ddp`, …).
    public var codeName: String {
        switch self {
        case .dpo: return "dpo"
        case .dataPolicy: return "ddp"
        case .policyPolicy: return "dpp"
        case .policyReward: return "dpr"
        }
    }
}

/// Which form of the score-function term the PP and PR rows add (see docs/sail.md).
public enum SAILScoreTerm: String, Sendable, Codable, CaseIterable {
    /// The authors' hook: ∂L/∂ℓ_θ(y) += −coef·log σ(βh) / ℓ_θ(y), for y = y_w and y_l.
    case codeFaithful
    /// The textbook score-function gradient of −J: ∂L/∂ℓ_θ(y) += −coef·log σ(βh).
    case scoreFunction
}

/// The independent random streams of SAIL, each a function of (seed, index) only.
public enum SAILDraw: UInt64, Sendable, CaseIterable {
    /// The route of a row (index: the row's global position).
    case route = 1
    /// SAIL-DP's label flip (index: the row's global position).
    case dataPolicyFlip = 2
    /// SAIL-PP's Bernoulli label of a generated pair (index: the pair's global generation index).
    case policyLabel = 3

    /// The SplitMix64 state increment (the golden ratio in 64-bit fixed point).
    static let golden = SplitMix64.golden

    /// The index-th uniform in [0, 1) (53 bits) of this purpose's stream for `seed`: with
    /// s = the first output of SplitMix64(seed: seed + purpose·golden), the value is the (index + 1)-th output of
    /// SplitMix64(seed: s), read by random access as the first output of SplitMix64(seed: s + index·golden).
    public func uniform(seed: UInt64, index: UInt64) -> Double {
        var stream = SplitMix64(seed: seed &+ rawValue &* Self.golden)
        let streamSeed = stream.next()
        var draw = SplitMix64(seed: streamSeed &+ index &* Self.golden)
        return draw.nextUnit()
    }
}

/// Why a SAIL computation rejected its input.
public enum SAILError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// A hyper-parameter is outside its domain.
    case invalidParameter(name: String, value: Double, expected: String)
    /// The route probabilities r + p + g exceed 1.
    case probabilitiesExceedOne(sum: Double)
    /// r + p + g = 1: no row is plain offline DPO, so the code's epoch scaling 1/(1 − r − p − g) is undefined.
    case noOfflineDPORows
    /// Per-row arrays of different lengths.
    case lengthMismatch(field: String, count: Int, expected: Int)
    /// A NaN or infinite input.
    case nonFinite(field: String, index: Int, value: Double)
    /// No row in the batch.
    case emptyBatch
    /// `codeFaithful` divides by the sequence log-prob, which is exactly 0 here.
    case zeroSequenceLogProb(field: String, index: Int)

    public var description: String {
        switch self {
        case .invalidParameter(let name, let value, let expected):
            return "SAIL: \(name) is \(value) but must be \(expected)."
        case .probabilitiesExceedOne(let sum):
            return "SAIL: the route probabilities r + p + g sum to \(sum) but must be ≤ 1; "
                + "lower r (SAIL-DP), p (SAIL-PP) or g (SAIL-PR)."
        case .noOfflineDPORows:
            return "SAIL: r + p + g = 1 leaves no plain DPO row, so the authors' epoch scaling 1/(1 − r − p − g) is undefined; "
                + "set the training length in steps, or lower a route probability."
        case .lengthMismatch(let field, let count, let expected):
            return "SAIL loss: \(field) has \(count) values but there are \(expected) rows; pass one value per row."
        case .nonFinite(let field, let index, let value):
            return "SAIL: \(field)[\(index)] is \(value); sequence log-probs and scores must be finite numbers."
        case .emptyBatch:
            return "SAIL loss: the batch has no rows."
        case .zeroSequenceLogProb(let field, let index):
            return "SAIL loss: \(field)[\(index)] is exactly 0, and the codeFaithful score term divides by it; "
                + "an empty response has log-prob 0 — drop it, or use sailScoreTerm: scoreFunction."
        }
    }

    public var errorDescription: String? { description }
}

/// SAIL's hyper-parameters: β, each route's probability and coefficient, the score-term form and the seed.
public struct SAILConfig: Sendable, Equatable, Codable {
    /// The DPO β (SAIL default 0.1).
    public var beta: Double
    /// r: probability of SAIL-DP rows.
    public var dataPolicyProbability: Double
    /// ρ: SAIL-DP's coefficient of −½(log σ(βh))².
    public var dataPolicyCoefficient: Double
    /// p: probability of SAIL-PP rows.
    public var policyPolicyProbability: Double
    /// π: SAIL-PP's coefficient of −½(log σ(βh))² and of the score-function term.
    public var policyPolicyCoefficient: Double
    /// g: probability of SAIL-PR rows.
    public var policyRewardProbability: Double
    /// γ: SAIL-PR's coefficient of the score-function term.
    public var policyRewardCoefficient: Double
    /// Which score-function term PP and PR rows add.
    public var scoreTerm: SAILScoreTerm
    /// Seed of the route, flip and label draws.
    public var seed: UInt64

    /// Creates a configuration; every probability and coefficient defaults to 0 (plain DPO).
    public init(beta: Double = 0.1, dataPolicyProbability: Double = 0, dataPolicyCoefficient: Double = 0,
                policyPolicyProbability: Double = 0, policyPolicyCoefficient: Double = 0,
                policyRewardProbability: Double = 0, policyRewardCoefficient: Double = 0,
                scoreTerm: SAILScoreTerm = .codeFaithful, seed: UInt64 = 0) {
        self.beta = beta
        self.dataPolicyProbability = dataPolicyProbability
        self.dataPolicyCoefficient = dataPolicyCoefficient
        self.policyPolicyProbability = policyPolicyProbability
        self.policyPolicyCoefficient = policyPolicyCoefficient
        self.policyRewardProbability = policyRewardProbability
        self.policyRewardCoefficient = policyRewardCoefficient
        self.scoreTerm = scoreTerm
        self.seed = seed
    }

    /// SAIL-DP with the authors' defaults (r = 0.4, ρ = 0.2).
    public static func dataPolicy(beta: Double = 0.1, seed: UInt64 = 0) -> SAILConfig {
        SAILConfig(beta: beta, dataPolicyProbability: 0.4, dataPolicyCoefficient: 0.2, seed: seed)
    }

    /// SAIL-PP with the authors' defaults (p = 0.3, π = 0.2).
    public static func policyPolicy(beta: Double = 0.1, scoreTerm: SAILScoreTerm = .codeFaithful, seed: UInt64 = 0) -> SAILConfig {
        SAILConfig(beta: beta, policyPolicyProbability: 0.3, policyPolicyCoefficient: 0.2, scoreTerm: scoreTerm, seed: seed)
    }

    /// SAIL-PR with the authors' defaults (g = 0.3, γ = 0.3).
    public static func policyReward(beta: Double = 0.1, scoreTerm: SAILScoreTerm = .codeFaithful, seed: UInt64 = 0) -> SAILConfig {
        SAILConfig(beta: beta, policyRewardProbability: 0.3, policyRewardCoefficient: 0.3, scoreTerm: scoreTerm, seed: seed)
    }

    /// Throws a `SAILError` naming the field if the configuration is unusable.
    public func validate() throws {
        func check(_ value: Double, _ name: String, _ expected: String, _ ok: (Double) -> Bool) throws {
            guard value.isFinite, ok(value) else { throw SAILError.invalidParameter(name: name, value: value, expected: expected) }
        }
        try check(beta, "beta", "a finite number > 0 (SAIL uses 0.1)") { $0 > 0 }
        for (value, name) in [(dataPolicyProbability, "r (SAIL-DP probability)"), (policyPolicyProbability, "p (SAIL-PP probability)"),
                              (policyRewardProbability, "g (SAIL-PR probability)")] {
            try check(value, name, "in [0, 1]") { $0 >= 0 && $0 <= 1 }
        }
        for (value, name) in [(dataPolicyCoefficient, "ρ (SAIL-DP coefficient)"), (policyPolicyCoefficient, "π (SAIL-PP coefficient)"),
                              (policyRewardCoefficient, "γ (SAIL-PR coefficient)")] {
            try check(value, name, "a finite number ≥ 0") { $0 >= 0 }
        }
        let sum = dataPolicyProbability + policyPolicyProbability + policyRewardProbability
        guard sum <= 1 else { throw SAILError.probabilitiesExceedOne(sum: sum) }
    }

    /// The route of the row at `globalRow` in the run's stream of rows.
    public func route(globalRow: UInt64) -> SAILRoute {
        let u = SAILDraw.route.uniform(seed: seed, index: globalRow)
        if u < dataPolicyProbability { return .dataPolicy }
        if u < dataPolicyProbability + policyPolicyProbability { return .policyPolicy }
        if u < dataPolicyProbability + policyPolicyProbability + policyRewardProbability { return .policyReward }
        return .dpo
    }

    /// The authors' `num_train_epochs /= 1 − r − p − g`, which keeps the number of offline DPO rows seen equal
    /// to plain DPO's. Throws `.noOfflineDPORows` when r + p + g = 1.
    public func offlineEpochScale() throws -> Double {
        try validate()
        let offline = 1 - dataPolicyProbability - policyPolicyProbability - policyRewardProbability
        guard offline > 0 else { throw SAILError.noOfflineDPORows }
        return 1 / offline
    }

    /// SAIL-DP's coin for a dataset pair with margin h: flipped with probability 1 − σ(βh), drawn from the
    /// `dataPolicyFlip` stream at `globalRow`. Returns the decision and the probability.
    public func dataPolicyFlip(h: Double, globalRow: UInt64) -> (flipped: Bool, probability: Double) {
        let probability = sigmoid(-beta * h)
        return (SAILDraw.dataPolicyFlip.uniform(seed: seed, index: globalRow) < probability, probability)
    }

    /// SAIL-PP's label of a generated pair (y1, y2) from the policy's own Bradley–Terry model, under no gradient:
    /// y1 is chosen with probability σ(β·h), h = (ℓ_θ(y1) − ℓ_ref(y1)) − (ℓ_θ(y2) − ℓ_ref(y2)); the coin is the
    /// `policyLabel` stream at `pairIndex` (the pair's global generation index). As the code, the pair is swapped
    /// when u < 1 − σ(βh).
    public func policyLabel(firstPolicy: Double, firstReference: Double, secondPolicy: Double, secondReference: Double,
                            pairIndex: UInt64) throws -> (firstIsChosen: Bool, probability: Double) {
        for (i, v) in [firstPolicy, firstReference, secondPolicy, secondReference].enumerated() where !v.isFinite {
            throw SAILError.nonFinite(field: ["firstPolicy", "firstReference", "secondPolicy", "secondReference"][i], index: 0, value: v)
        }
        let h = (firstPolicy - firstReference) - (secondPolicy - secondReference)
        let swap = SAILDraw.policyLabel.uniform(seed: seed, index: pairIndex) < sigmoid(-beta * h)
        return (!swap, sigmoid(beta * h))
    }

    /// SAIL-PR's label of a generated pair from score-model outputs: the higher reward is chosen, or the lower cost
    /// when `reversed` (a cost model). A tie keeps the generation order (y1 chosen), as the code.
    public static func rewardLabel(firstScore: Double, secondScore: Double, reversed: Bool) throws -> Bool {
        if !firstScore.isFinite { throw SAILError.nonFinite(field: "firstScore", index: 0, value: firstScore) }
        if !secondScore.isFinite { throw SAILError.nonFinite(field: "secondScore", index: 0, value: secondScore) }
        return reversed ? !(firstScore > secondScore) : !(firstScore < secondScore)
    }
}
