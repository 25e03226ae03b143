// `dualign dual`: CAN stage 1 — minimise the empirical dual over λ ≥ 0 from a JSON Lines score file
// (algorithms.md §1.3), or report the margin a chosen λ guarantees.

import Alignment
import ArgumentParser
import Foundation

struct DualCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dual",
        abstract: "Solve the CAN dual for λ* from reward and utility scores of reference samples.",
        discussion: """
        The score file has one JSON object per prompt and line:
          {"rewards": [r_1, ..., r_K], "utilities": [[g_1, ..., g_K], ...one list per constraint], "weights": [w_1, ..., w_K]}
        (weights optional; uniform 1/K otherwise). Prints one JSON object: lambda, dual, gradient, improvement,
        objective, iterations. With --lambda it prints the margin each multiplier guarantees instead.
        Several constraints take comma-separated values (--margin 0.4,0.2) or a repeated option (--margin 0.4 --margin 0.2);
        negative values are written as they are: --threshold -1.2,-0.5.
        """)

    @Option(help: "JSON Lines file of per-prompt scores.")
    var scores: String

    @Option(parsing: .unconditional, help: "KL coefficient β > 0 (the β of stage-2 DPO, e.g. 0.1).")
    var beta: Double

    @Option(name: .customLong("margin"), parsing: .unconditionalSingleValue,
            help: "Margin b_i per constraint: required improvement over the reference, E_π[g_i] − E_ref[g_i] ≥ b_i.")
    var marginText: [String] = []

    @Option(name: .customLong("threshold"), parsing: .unconditionalSingleValue,
            help: "Absolute threshold per constraint: E_π[g_i] ≥ t_i (instead of --margin), e.g. --threshold -1.5.")
    var thresholdText: [String] = []

    @Option(name: .customLong("lambda"), parsing: .unconditionalSingleValue,
            help: "Report the margin these multipliers guarantee (one λ_i ≥ 0 per constraint) instead of solving.")
    var lambdaText: [String] = []

    @Option(parsing: .unconditional, help: "Iteration limit of the projected Newton solver.")
    var maxIterations = 200

    /// The numbers of an option's values, each of which may be a comma-separated list.
    private func numbers(_ values: [String], option: String) throws -> [Double] {
        try values.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { item in
            let text = item.trimmingCharacters(in: .whitespaces)
            guard let value = Double(text), value.isFinite else {
                throw ValidationError("\(option) value '\(text)' is not a finite number; write e.g. \(option) 0.5, "
                                      + "or \(option)=-1.5,0.2 for negative values.")
            }
            return value
        }
    }

    private var margin: [Double] { (try? numbers(marginText, option: "--margin")) ?? [] }
    private var threshold: [Double] { (try? numbers(thresholdText, option: "--threshold")) ?? [] }
    private var lambda: [Double] { (try? numbers(lambdaText, option: "--lambda")) ?? [] }

    func validate() throws {
        _ = try numbers(marginText, option: "--margin")
        _ = try numbers(thresholdText, option: "--threshold")
        _ = try numbers(lambdaText, option: "--lambda")
        guard beta > 0, beta.isFinite else {
            throw ValidationError("--beta must be a finite number > 0 (got \(beta)); use the KL coefficient of stage 2, e.g. 0.1.")
        }
        if !lambda.isEmpty {
            guard margin.isEmpty && threshold.isEmpty else {
                throw ValidationError("--lambda reports the margin a multiplier guarantees; drop --margin/--threshold, "
                                      + "or drop --lambda to solve for λ*.")
            }
            if let bad = lambda.first(where: { !($0 >= 0 && $0.isFinite) }) {
                throw ValidationError("--lambda values must be finite and ≥ 0 (got \(bad)).")
            }
        } else {
            guard margin.isEmpty != threshold.isEmpty else {
                throw ValidationError(margin.isEmpty
                    ? "give the bound of each constraint with --margin b … (improvement over the reference) or --threshold t … (absolute)."
                    : "give either --margin or --threshold, not both.")
            }
        }
        guard maxIterations >= 1 else { throw ValidationError("--max-iterations must be at least 1.") }
    }

    func run() throws {
        let scoreSet = try DualScoreFile.readScores(path: scores)
        let m = scoreSet.constraintCount
        func checkCount(_ values: [Double], _ option: String) throws {
            guard values.count == m else {
                throw DualCommandError("\(option) has \(values.count) value(s) but \(scores) has \(m) constraint(s) "
                                      + "(utility lists per line); give exactly \(m).")
            }
        }

        if !lambda.isEmpty {
            try checkCount(lambda, "--lambda")
            let problem = try DualProblem(scores: scoreSet, beta: beta, bounds: .margins([Double](repeating: 0, count: m)))
            let guaranteed = try problem.marginGuaranteed(byLambda: lambda)
            let thresholds = zip(scoreSet.referenceMeans, guaranteed).map { $0 + $1 }
            print(jsonObject([("lambda", jsonArray(lambda)), ("improvement", jsonArray(guaranteed)),
                              ("margin", jsonArray(guaranteed)), ("threshold", jsonArray(thresholds))]))
            return
        }

        let bounds: DualBounds
        if !margin.isEmpty {
            try checkCount(margin, "--margin")
            bounds = .margins(margin)
        } else {
            try checkCount(threshold, "--threshold")
            bounds = .thresholds(threshold)
        }
        let problem = try DualProblem(scores: scoreSet, beta: beta, bounds: bounds)
        let solution = try problem.solve(options: DualSolverOptions(maxIterations: maxIterations))
        print(jsonObject([("lambda", jsonArray(solution.lambda)), ("dual", jsonNumber(solution.dual)),
                          ("gradient", jsonArray(solution.gradient)), ("improvement", jsonArray(solution.improvement)),
                          ("objective", jsonNumber(solution.objective)), ("iterations", "\(solution.iterations)")]))
    }

    /// A finite Double in shortest round-trip form (valid JSON).
    private func jsonNumber(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }

    private func jsonArray(_ values: [Double]) -> String { "[" + values.map(jsonNumber).joined(separator: ", ") + "]" }

    /// One JSON object with keys in the given order.
    private func jsonObject(_ fields: [(String, String)]) -> String {
        "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
    }
}

/// A `dualign dual` failure found after reading the score file (printed to stderr, exit status 1).
private struct DualCommandError: Error, CustomStringConvertible, LocalizedError {
    let description: String

    init(_ description: String) { self.description = description }

    var errorDescription: String? { description }
}
