import Engine
import Layers
import Models

/// A method that changes what trains part-way through a run (TTC's two stages, Pear's prune-and-share).
/// The trainer calls `advance` once, at the start of epoch `switchEpoch(of:)`, with calibration batches from the
/// training split, then rebuilds the optimiser over the new trainable set.
public protocol StagedMethod: PEFTMethod {
    /// Fraction of the epochs in the first stage (its config's `stage_fraction`).
    var stageFraction: Float { get }
    /// Number of calibration batches `advance` wants (its config's `scoring_batches`).
    var scoringBatches: Int { get }
    /// The epoch (0-based) at which `advance` runs, for a run of `epochs` epochs (default: the `stageFraction` of
    /// the run, at least one epoch into it and one before its end).
    func switchEpoch(of epochs: Int) -> Int
    /// Scores on the calibration batches and changes the model for the next stage.
    func advance(_ model: any Classifier, calibration: [(ClassifierInput, [Int])]) throws
    /// What `advance` decided, to be stored in checkpoints: a JSON string and frozen tensors.
    func stageState(_ model: any Classifier) throws -> (json: String, tensors: [String: Tensor])
    /// Re-applies a stored decision (when resuming after the switch), instead of scoring again.
    func restoreStage(_ model: any Classifier, json: String, tensors: [String: Tensor]) throws
    /// Whether `model` has already switched to the second stage (so its stage state belongs in saved adapters).
    func isPastFirstStage(_ model: any Classifier) -> Bool
    /// A line for the training log after the switch (default: none).
    func stageSummary(_ model: any Classifier) -> String?
    /// Whether the stored tensor `name` (a path as `stageState` returns it) belongs to the stage state rather than
    /// to the trainable parameters (default: none does).
    func isStageTensor(_ name: String) -> Bool
}

/// Sum of cross-entropy gradients over calibration batches, with `observe` called after each backward.
func runCalibration(_ model: any Classifier, _ batches: [(ClassifierInput, [Int])], after observe: () -> Void) {
    for (input, labels) in batches {
        crossEntropy(model.logits(input), labels: labels).backward()
        observe()
    }
}

extension StagedMethod {
    public func stageSummary(_ model: any Classifier) -> String? { nil }
    public func isStageTensor(_ name: String) -> Bool { false }

    public func switchEpoch(of epochs: Int) -> Int {
        Self.stageSwitchEpoch(fraction: stageFraction, epochs: epochs)
    }

    /// Refuses stage options the switch and scoring cannot use (checked when the method is applied).
    func validateStageOptions(method: String) throws {
        guard stageFraction >= 0 && stageFraction <= 1 else {
            throw ModuleError("\(method): the stage-one fraction must be in [0, 1], got \(stageFraction)")
        }
        guard scoringBatches >= 1 else {
            throw ModuleError("\(method): scoring needs at least 1 batch, got \(scoringBatches)")
        }
    }

    /// The first epoch of the second stage: `fraction` of the run, at least one epoch into it and one before its end.
    static func stageSwitchEpoch(fraction: Float, epochs: Int) -> Int {
        min(max(1, Int((fraction * Float(epochs)).rounded())), max(epochs - 1, 1))
    }
}
