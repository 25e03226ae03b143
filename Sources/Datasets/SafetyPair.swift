// A safety preference with per-response safety labels (Safe-RLHF cost-model records).

import Tokenizers

/// A safer and a less safe response to one prompt, each labelled safe or unsafe.
///
/// Cost-model training (algorithms.md §5.4) uses the sign `s = +1` for a safe response and `−1`
/// for an unsafe one. A pair whose safer response is unsafe while the other is safe is rejected
/// when loading (`DatasetError.inconsistentLabels`).
public struct SafetyPair: Equatable, Sendable {
    public var id: String
    public var prompt: [ChatMessage]
    public var promptText: String?
    /// The safer (less harmful) response.
    public var safer: String
    /// The less safe response.
    public var unsafer: String
    public var saferIsSafe: Bool
    public var unsaferIsSafe: Bool
    /// False when neither answer is less harmful (both labelled, e.g. a helpful answer and an over-refusal
    /// of a benign request): the cost model trains their sign terms only, not the ranking.
    public var ranked: Bool
    public var source: SourceLocation
    public var unsaferSource: SourceLocation?

    public init(id: String, prompt: [ChatMessage], promptText: String? = nil, safer: String, unsafer: String,
                saferIsSafe: Bool, unsaferIsSafe: Bool, ranked: Bool = true, source: SourceLocation,
                unsaferSource: SourceLocation? = nil) {
        self.id = id
        self.prompt = prompt
        self.promptText = promptText
        self.safer = safer
        self.unsafer = unsafer
        self.saferIsSafe = saferIsSafe
        self.unsaferIsSafe = unsaferIsSafe
        self.ranked = ranked
        self.source = source
        self.unsaferSource = unsaferSource
    }

    /// The safety sign of the safer response: +1 safe, −1 unsafe.
    public var saferSign: Int { saferIsSafe ? 1 : -1 }
    /// The safety sign of the less safe response: +1 safe, −1 unsafe.
    public var unsaferSign: Int { unsaferIsSafe ? 1 : -1 }

    /// The same preference as a `PreferencePair` (safer ≻ unsafer, aspect harmlessness).
    public var preferencePair: PreferencePair {
        PreferencePair(id: id, prompt: prompt, promptText: promptText, chosen: safer, rejected: unsafer,
                       aspect: .harmlessness, source: source, rejectedSource: unsaferSource)
    }
}
