import Foundation

/// Linear warm-up to the base rate, then cosine decay to `minimumFactor` times it.
public struct CosineSchedule: Sendable {
    public var baseRate: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minimumFactor: Float = 0

    public init(baseRate: Float, warmupSteps: Int, totalSteps: Int, minimumFactor: Float = 0) {
        self.baseRate = baseRate
        self.warmupSteps = warmupSteps
        self.totalSteps = max(totalSteps, 1)
        self.minimumFactor = minimumFactor
    }

    /// The rate for update number `step` (0-based).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return baseRate * Float(step + 1) / Float(warmupSteps) }
        let progress = Float(step - warmupSteps) / Float(max(totalSteps - warmupSteps, 1))
        let cosine = 0.5 * (1 + cosf(.pi * min(progress, 1)))
        return baseRate * (minimumFactor + (1 - minimumFactor) * cosine)
    }
}
