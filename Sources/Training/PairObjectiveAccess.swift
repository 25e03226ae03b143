// What objectives outside this module (online methods in Pipelines) reuse from the pair objectives:
// DPO's cached reference log-probs of the dataset pairs, and the response-token sums and their gradients.

import Foundation
import Models

extension DPOObjective {
    /// ℓ_ref of the chosen and rejected response of dataset pair `id` of `split` (after `prepare`).
    public func referenceLogProbs(_ id: Int, split: ExampleSplit) -> (chosen: Double, rejected: Double) {
        let i = split == .train ? id : data.train.count + id
        return (referenceChosen[i], referenceRejected[i])
    }
}

extension PairObjective {
    /// Sums token log-probs into per-row sequence log-probs (mean when `reduction` is `.mean`).  // (R)
    public static func responseSums(_ outputs: ModelOutputs, rows: Int, reduction: SequenceReduction) -> (sums: [Double], counts: [Int]) {
        sequenceSums(outputs, rows: rows, reduction: reduction)
    }

    /// Spreads ∂ℓ/∂(sequence log-prob of row r) over the row's targets (÷ count for `.mean`).      // (N)
    public static func responseGradients(_ dRows: [Double], outputs: ModelOutputs, counts: [Int], reduction: SequenceReduction) -> [Float] {
        tokenGradients(dRows, outputs: outputs, counts: counts, reduction: reduction)
    }
}
