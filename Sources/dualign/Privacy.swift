// `dualign privacy`: the ε of DP-SGD with noise multiplier σ, Poisson sample rate q and a number of steps
// (or epochs), or the σ a target ε needs — by Opacus' RDP, PRV or GDP accountant.

import ArgumentParser
import Foundation
import Privacy

struct PrivacyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "privacy",
        abstract: "Compute the ε of DP-SGD (σ, q, steps, δ), or the noise multiplier σ a target ε needs.",
        discussion: """
        Examples:
          dualign privacy --accountant rdp --sample-rate 0.04 --noise-multiplier 1.5 --epochs 90 --delta 1e-5
          dualign privacy --accountant prv --sample-rate 0.04 --epsilon 8 --steps 2000 --delta 1e-5
        Steps from epochs are int(epochs / q), as Opacus counts them. PRV prints its upper bound
        (eps_error 0.01, δ_err = δ/1000); GDP is a central-limit approximation, not a bound.
        """)

    enum Accountant: String, ExpressibleByArgument, CaseIterable {
        case rdp, prv, gdp
        var mechanism: AccountantMechanism {
            switch self {
            case .rdp: return .rdp
            case .prv: return .prv
            case .gdp: return .gdp
            }
        }
    }

    @Option(help: "Accountant: rdp (Rényi DP, Opacus' default), prv (numerical composition, tightest) or gdp (Gaussian DP).")
    var accountant: Accountant = .rdp
    @Option(parsing: .unconditional, help: "Poisson sample rate q in (0, 1]: the expected batch size divided by the dataset size.")
    var sampleRate: Double
    @Option(parsing: .unconditional, help: "Noise multiplier σ > 0 (the noise std is σ times the clipping norm); prints ε.")
    var noiseMultiplier: Double?
    @Option(parsing: .unconditional, help: "Target ε > 0; prints the noise multiplier σ that reaches it (instead of --noise-multiplier).")
    var epsilon: Double?
    @Option(parsing: .unconditional, help: "Number of DP-SGD steps.")
    var steps: Int?
    @Option(parsing: .unconditional, help: "Number of epochs (steps = int(epochs / q)), instead of --steps.")
    var epochs: Double?
    @Option(parsing: .unconditional, help: "δ in (0, 1), usually 1/N for N private examples, e.g. 1e-5.")
    var delta: Double
    @Flag(help: "Print one JSON object instead of a sentence.")
    var json = false

    func validate() throws {
        guard sampleRate > 0, sampleRate <= 1 else {
            throw ValidationError("--sample-rate must lie in (0, 1] (got \(sampleRate)): it is the expected batch size divided by "
                                  + "the dataset size, e.g. 256 of 50,000 examples is --sample-rate 0.00512.")
        }
        guard delta > 0, delta < 1 else {
            throw ValidationError("--delta must lie in (0, 1) (got \(delta)); the usual choice is 1/N for N private examples, "
                                  + "e.g. --delta 1e-5.")
        }
        switch (noiseMultiplier, epsilon) {
        case (nil, nil):
            throw ValidationError("give --noise-multiplier σ to compute ε, or --epsilon ε to find the σ it needs.")
        case (.some, .some):
            throw ValidationError("give either --noise-multiplier (to compute ε) or --epsilon (to find σ), not both.")
        case (let sigma?, nil):
            guard sigma > 0, sigma.isFinite else {
                throw ValidationError("--noise-multiplier must be a finite number > 0 (got \(sigma)); without noise ε is infinite.")
            }
        case (nil, let target?):
            guard target > 0, target.isFinite else {
                throw ValidationError("--epsilon must be a finite number > 0 (got \(target)), e.g. --epsilon 8.")
            }
        }
        switch (steps, epochs) {
        case (nil, nil):
            throw ValidationError("give the length of training as --steps T or --epochs E (steps = int(E / q)).")
        case (.some, .some):
            throw ValidationError("give either --steps or --epochs, not both.")
        case (let t?, nil):
            guard t >= 1 else { throw ValidationError("--steps must be at least 1 (got \(t)).") }
        case (nil, let e?):
            guard e > 0, e.isFinite else { throw ValidationError("--epochs must be a finite number > 0 (got \(e)).") }
            guard e / sampleRate >= 1 else {
                throw ValidationError("--epochs \(e) at --sample-rate \(sampleRate) is int(\(e / sampleRate)) = 0 steps; "
                                      + "give more epochs or --steps.")
            }
        }
    }

    func run() throws {
        let stepCount = try steps ?? NoiseMultiplierSearch.steps(epochs: epochs ?? 0, sampleRate: sampleRate)
        let mechanism = accountant.mechanism
        var fields: [(String, String)] = [("accountant", "\"\(accountant.rawValue)\""), ("sample_rate", "\(sampleRate)"),
                                          ("steps", "\(stepCount)"), ("delta", "\(delta)")]
        let sentence: String
        if let target = epsilon {
            let sigma = try NoiseMultiplierSearch.noiseMultiplier(targetEpsilon: target, delta: delta, sampleRate: sampleRate,
                                                                  steps: stepCount, mechanism: mechanism)
            let reached = try makeAccountant(mechanism, history: [
                PrivacySegment(noiseMultiplier: sigma, sampleRate: sampleRate, steps: stepCount)]).epsilon(delta: delta)
            fields += [("epsilon", number(reached)), ("target_epsilon", "\(target)"), ("noise_multiplier", "\(sigma)")]
            sentence = "σ = \(sigma) reaches ε = \(format(reached)) ≤ \(format(target)) at δ = \(delta) after \(stepCount) steps at q = "
                + "\(sampleRate) (\(accountant.rawValue))"
        } else {
            let sigma = noiseMultiplier ?? 0
            let segment = PrivacySegment(noiseMultiplier: sigma, sampleRate: sampleRate, steps: stepCount)
            var orderText = ""
            let eps: Double
            if mechanism == .rdp {
                let (value, order) = try RDPAccountant(history: [segment]).privacySpent(delta: delta)
                eps = value
                fields.append(("order", number(order)))
                orderText = ", best RDP order α = \(order)"
            } else {
                eps = try makeAccountant(mechanism, history: [segment]).epsilon(delta: delta)
            }
            fields += [("noise_multiplier", "\(sigma)"), ("epsilon", number(eps))]
            sentence = "ε = \(format(eps)) at δ = \(delta) after \(stepCount) steps with σ = \(sigma), q = \(sampleRate) "
                + "(\(accountant.rawValue)\(orderText))"
        }
        print(json ? "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}" : sentence)
    }

    /// A Double as JSON (null when not finite).
    private func number(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }

    /// ε to six significant digits for the sentence.
    private func format(_ x: Double) -> String { x.isFinite ? String(format: "%.6g", x) : "∞" }
}
