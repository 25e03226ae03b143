// The RDP accountant (Opacus' `RDPAccountant`): per-segment RDP at a grid of orders, summed over the
// history, converted to (ε, δ) at the best order.

import Foundation

/// Rényi-DP accountant of the Poisson-subsampled Gaussian; heterogeneous segments compose by adding RDP.
public struct RDPAccountant: PrivacyAccountant, Equatable {
    public static let mechanism = AccountantMechanism.rdp
    public private(set) var history: [PrivacySegment]
    /// The orders α searched for the conversion (Opacus' defaults unless set).
    public var orders: [Double]

    public init(history: [PrivacySegment]) throws {
        self.history = try validatedHistory(history)
        self.orders = RDPAnalysis.defaultOrders
    }

    /// An accountant with the given history and orders (each order > 1).
    public init(history: [PrivacySegment], orders: [Double]) throws {
        try self.init(history: history)
        guard !orders.isEmpty, orders.allSatisfy({ $0 > 1 }) else {
            throw PrivacyError(.invalidParameter, field: "orders",
                               "RDP orders must be a non-empty list of numbers > 1 (got \(orders)); omit them for Opacus' defaults.")
        }
        self.orders = orders
    }

    public mutating func step(noiseMultiplier: Double, sampleRate: Double, steps: Int) throws {
        try appendSteps(&history, noiseMultiplier: noiseMultiplier, sampleRate: sampleRate, steps: steps)
    }

    /// ε at δ and the order that attains it; (0, NaN) for an empty history (no step, no loss).
    public func privacySpent(delta: Double) throws -> (epsilon: Double, order: Double) {
        try PrivacyError.checkDelta(delta)
        if history.isEmpty { return (0, .nan) }
        return RDPAnalysis.epsilon(orders: orders, rdp: RDPAnalysis.rdp(history: history, orders: orders), delta: delta)
    }

    public func epsilon(delta: Double) throws -> Double { try privacySpent(delta: delta).epsilon }

    public init(from decoder: Decoder) throws { try self.init(state: try AccountantState(from: decoder)) }

    public func encode(to encoder: Encoder) throws { try state.encode(to: encoder) }
}
