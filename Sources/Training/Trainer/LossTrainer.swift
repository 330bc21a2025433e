import Engine
import Layers

/// Trains the trainable parameters of any module on a loss of the caller's own: AdamW (decoupled weight decay on
/// matrices), linear warm-up then cosine decay, global gradient-norm clipping, training mode with a per-step seed
/// (so dropout is reproducible), and the same guard as `Trainer`: a step whose loss, gradient or update is not
/// finite is never applied and throws, naming the parameter.
///
/// ```swift
/// let trainer = try LossTrainer(module: model, learningRate: 1e-2, totalSteps: 200)
/// for _ in 0..<200 { try trainer.step { meanSquaredError(model(x), y) } }
/// ```
public final class LossTrainer {
    public let optimizer: AdamW
    public let schedule: CosineSchedule
    public let clipNorm: Float
    public let seed: UInt64
    /// Steps applied so far.
    public private(set) var completedSteps = 0

    public init(module: any Module, learningRate: Float, totalSteps: Int, warmupSteps: Int = 0,
                weightDecay: Float = 0, clipNorm: Float = 1, seed: UInt64 = 0) throws {
        guard learningRate.isFinite && learningRate > 0 else {
            throw TrainingError("learning rate must be a positive number, got \(learningRate)")
        }
        guard totalSteps >= 1, warmupSteps >= 0, warmupSteps <= totalSteps else {
            throw TrainingError("steps: total \(totalSteps) must be at least 1 and warm-up \(warmupSteps) within it")
        }
        guard weightDecay.isFinite && weightDecay >= 0, clipNorm.isFinite && clipNorm >= 0 else {
            throw TrainingError("weight decay and clip norm must be zero or positive")
        }
        let trainable = module.namedParameters().filter { $0.1.requiresGrad }
        guard !trainable.isEmpty else { throw TrainingError("nothing in the module trains: attach a method first") }
        optimizer = AdamW(parameters: trainable, weightDecay: weightDecay)
        schedule = CosineSchedule(baseRate: learningRate, warmupSteps: warmupSteps, totalSteps: totalSteps)
        self.clipNorm = clipNorm
        self.seed = seed
    }

    /// What a checkpoint needs to continue this training: the optimiser's moments (`AdamW.stateTensors`) and the
    /// step count, which `restore` puts back.
    public var state: (optimizer: [String: Tensor], completedSteps: Int, optimizerStep: Int) {
        (optimizer.stateTensors(), completedSteps, optimizer.step)
    }

    /// Continues from a saved `state`: the moments, the optimiser's step and the steps done (the schedule and the
    /// per-step seeds go on from there); `source` names the file in errors.
    public func restore(optimizer tensors: [String: Tensor], completedSteps: Int, optimizerStep: Int, source: String) throws {
        guard completedSteps >= 0, optimizerStep >= 0, completedSteps <= schedule.totalSteps else {
            throw TrainingError("\(source): \(completedSteps) completed steps do not fit a run of \(schedule.totalSteps)")
        }
        try optimizer.restore(from: tensors, step: optimizerStep, source: source)
        self.completedSteps = completedSteps
    }

    /// One training step on `loss()` (computed in training mode); returns the loss. Throws, applying nothing, when
    /// the loss, a gradient or the update is NaN or infinite.
    @discardableResult
    public func step(_ loss: () -> Tensor) throws -> Float {
        let value = ModelMode.training(stepSeed: seed &+ UInt64(completedSteps) &* 0x5851_F42D, loss)
        guard value.item.isFinite else {
            throw TrainingError("the loss became \(value.item) at step \(completedSteps + 1); nothing was applied")
        }
        value.backward()
        let rate = schedule.rate(at: completedSteps)
        if let fault = optimizer.updateIfFinite(learningRate: rate, clipNorm: clipNorm) {
            optimizer.discardGradients()
            switch fault {
            case .nonFiniteGradient(let name):
                throw TrainingError("the gradient of '\(name)' holds NaN or infinity at step \(completedSteps + 1); nothing was applied")
            case .nonFiniteUpdate(let name):
                throw TrainingError("the update of '\(name)' would not be finite at step \(completedSteps + 1) (learning rate \(rate)); nothing was applied")
            }
        }
        completedSteps += 1
        return value.item
    }
}
