// A stage that stopped on purpose before its end (a training run with `checkpoint.stopAfterStep`): every rank
// throws it alike, so `PipelineRun.stage` records nothing and a rerun continues the stage from its checkpoints.

/// A stage that stopped before its end; not an error of the run.
public struct StageIncomplete: Error, CustomStringConvertible {
    public let stage: String
    public let message: String
    public init(stage: String, message: String) { self.stage = stage; self.message = message }
    public var description: String { "stage \(stage): \(message)" }
}
