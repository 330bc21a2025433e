import Engine
import Foundation

/// AdamW (Loshchilov & Hutter, 2019) with decoupled weight decay:
///
///     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
///     p -= lr * ( m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd * p )
///
/// Weight decay applies only to matrices (rank >= 2 weights); biases, norm scales, layer scales, tokens and
/// position embeddings are not decayed.
public final class AdamW {
    public struct Group {
        public let name: String
        public let parameter: Tensor
        public let decays: Bool
        public let learningRateScale: Float
        let firstMoment: Tensor
        let secondMoment: Tensor
    }

    public private(set) var groups: [Group]
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var weightDecay: Float
    /// Number of updates made so far.
    public private(set) var step = 0

    /// - Parameters:
    ///   - parameters: the trainable parameters by path.
    ///   - learningRateScale: a per-parameter factor on the learning rate (e.g. a faster head), by path.
    public init(parameters: [(String, Tensor)], weightDecay: Float = 0.05,
                learningRateScale: (String) -> Float = { _ in 1 }) {
        self.weightDecay = weightDecay
        groups = parameters.map { name, tensor in
            let noDecay = tensor.rank < 2 || name.contains("cls_token") || name.contains("position_embeddings")
                || name.contains("prompt_embeddings")
            return Group(name: name, parameter: tensor, decays: !noDecay, learningRateScale: learningRateScale(name),
                         firstMoment: Tensor(zeros: tensor.shape), secondMoment: Tensor(zeros: tensor.shape))
        }
    }

    /// Global L2 norm of all gradients (missing gradients count as zero).
    public func gradientNorm() -> Float { Float(squaredGradientSum().squareRoot()) }

    /// The sum of all squared gradients, in Double over all cores: finite exactly when every gradient is (a
    /// float's square cannot overflow a Double), while the Float norm may overflow for finite gradients.
    private func squaredGradientSum() -> Double {
        var total: Double = 0
        for group in groups {
            guard let grad = group.parameter.grad else { continue }
            let g = grad.data
            total += parallelSum(grad.count) { range in
                var sum: Double = 0
                for i in range { sum += Double(g[i]) * Double(g[i]) }
                return sum
            }
        }
        return total
    }

    /// The first parameter whose gradient holds a NaN or infinity, if any.
    public func firstNonFiniteGradient() -> String? {
        groups.first { group in
            guard let grad = group.parameter.grad else { return false }
            let g = grad.data
            return parallelAny(grad.count) { range in range.contains { !g[$0].isFinite } }
        }?.name
    }

    /// The first parameter that `update(learningRate:clipNorm:)` would make (or whose moments it would make) NaN
    /// or infinite, if any. Computes the same arithmetic as the update without writing anything, so a caller can
    /// refuse a bad step before it touches the weights.
    public func firstNonFiniteUpdate(learningRate: Float, clipNorm: Float = 0) -> String? {
        firstNonFiniteUpdate(learningRate: learningRate, clipScale: clipScale(clipNorm))
    }

    private func firstNonFiniteUpdate(learningRate: Float, clipScale: Float) -> String? {
        let next = step + 1
        let correction1 = 1 - powf(beta1, Float(next)), correction2 = 1 - powf(beta2, Float(next))
        let b1 = beta1, b2 = beta2, eps = epsilon
        guard learningRate.isFinite, clipScale.isFinite else { return groups.first?.name }
        return groups.first { group in
            guard let grad = group.parameter.grad else { return false }
            let lr = learningRate * group.learningRateScale
            let decay = group.decays ? lr * weightDecay : 0
            let p = group.parameter.data, g = grad.data, m = group.firstMoment.data, v = group.secondMoment.data
            return parallelAny(grad.count) { range in
                var finite = true
                for i in range {
                    let gi = g[i] * clipScale
                    let mi = b1 * m[i] + (1 - b1) * gi
                    let vi = b2 * v[i] + (1 - b2) * gi * gi
                    let update = (mi / correction1) / ((vi / correction2).squareRoot() + eps)
                    let pi = p[i] - (lr * update + decay * p[i])
                    // Non-short-circuit test: the loop stays branch-free.
                    finite = finite && (pi.isFinite && mi.isFinite && vi.isFinite)
                }
                return !finite
            }
        }?.name
    }

    /// A problem that stops `updateIfFinite` from applying a step.
    public enum UpdateFault: Equatable, Sendable {
        /// This parameter's gradient holds a NaN or infinity.
        case nonFiniteGradient(String)
        /// The update would make this parameter or its moments NaN or infinite.
        case nonFiniteUpdate(String)
    }

    /// Checks the step and applies it only when every gradient is finite and the update keeps every parameter and
    /// moment finite; otherwise writes nothing (the gradients stay for the caller to inspect or discard) and says
    /// why. Equivalent to `firstNonFiniteGradient`, `firstNonFiniteUpdate` and `update` in turn, with the
    /// gradient norm computed once (its finiteness is the gradient check; the offender is looked up only on
    /// failure).
    public func updateIfFinite(learningRate: Float, clipNorm: Float = 0) -> UpdateFault? {
        let squares = squaredGradientSum()
        guard squares.isFinite else { return .nonFiniteGradient(firstNonFiniteGradient() ?? "") }
        let scale = Self.clipScale(norm: squares.squareRoot(), clipNorm: clipNorm)
        if let bad = firstNonFiniteUpdate(learningRate: learningRate, clipScale: scale) { return .nonFiniteUpdate(bad) }
        apply(learningRate: learningRate, clipScale: scale)
        return nil
    }

    /// The first parameter, or optimiser moment, holding a NaN or infinity (by parameter path), if any.
    public func firstNonFiniteState() -> String? {
        groups.first { group in
            [group.parameter, group.firstMoment, group.secondMoment].contains { tensor in
                let d = tensor.data
                return parallelAny(tensor.count) { range in range.contains { !d[$0].isFinite } }
            }
        }?.name
    }

    /// Drops the gradients without updating (a skipped step).
    public func discardGradients() {
        for group in groups { group.parameter.grad = nil }
    }

    private func clipScale(_ clipNorm: Float) -> Float {
        clipNorm > 0 ? Self.clipScale(norm: squaredGradientSum().squareRoot(), clipNorm: clipNorm) : 1
    }

    /// The factor that scales gradients of global norm `norm` down to at most `clipNorm` (1 when not clipping).
    private static func clipScale(norm: Double, clipNorm: Float) -> Float {
        guard clipNorm > 0 else { return 1 }
        let floatNorm = Float(norm)
        // A finite norm beyond Float's range (gradients of about 1e35 and more) is divided in Double.
        if !floatNorm.isFinite && norm.isFinite { return Float(Double(clipNorm) / norm) }
        return floatNorm > clipNorm ? clipNorm / (floatNorm + 1e-6) : 1
    }

    /// One update with learning rate `learningRate`; gradients are first scaled down so their global norm is at
    /// most `clipNorm` (when positive). Clears the gradients afterwards.
    public func update(learningRate: Float, clipNorm: Float = 0) {
        apply(learningRate: learningRate, clipScale: clipScale(clipNorm))
    }

    private func apply(learningRate: Float, clipScale: Float) {
        step += 1
        let correction1 = 1 - powf(beta1, Float(step)), correction2 = 1 - powf(beta2, Float(step))
        let b1 = beta1, b2 = beta2, eps = epsilon
        for group in groups {
            guard let grad = group.parameter.grad else { continue }
            let lr = learningRate * group.learningRateScale
            let decay = group.decays ? lr * weightDecay : 0
            let p = group.parameter.data, g = grad.data, m = group.firstMoment.data, v = group.secondMoment.data
            Parallel.forEachChunk(grad.count) { range in
                for i in range {
                    let gi = g[i] * clipScale
                    m[i] = b1 * m[i] + (1 - b1) * gi
                    v[i] = b2 * v[i] + (1 - b2) * gi * gi
                    let update = (m[i] / correction1) / ((v[i] / correction2).squareRoot() + eps)
                    p[i] -= lr * update + decay * p[i]
                }
            }
            group.parameter.grad = nil
        }
    }

    /// Optimiser state for checkpoints: moments by "<path>.exp_avg" / "<path>.exp_avg_sq".
    public func stateTensors() -> [String: Tensor] {
        var state: [String: Tensor] = [:]
        for group in groups {
            state["optimizer.\(group.name).exp_avg"] = group.firstMoment
            state["optimizer.\(group.name).exp_avg_sq"] = group.secondMoment
        }
        return state
    }

    /// Restores moments and the step count saved by `stateTensors()`.
    public func restore(from state: [String: Tensor], step: Int, source: String) throws {
        for group in groups {
            for (key, destination) in [("exp_avg", group.firstMoment), ("exp_avg_sq", group.secondMoment)] {
                guard let value = state["optimizer.\(group.name).\(key)"], value.count == destination.count else {
                    throw TrainingError("\(source): optimiser state for '\(group.name)' (\(key)) is missing or has the wrong size")
                }
                destination.assign(value)
            }
        }
        self.step = step
    }
}

/// Errors raised by the training loop and its files.
public struct TrainingError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Chunks of at least this many elements go to the cores; smaller tensors (biases, LoRA factors) run inline.
private let reductionGrain = 65_536

/// The sum of `body` over chunks of 0..<count, the chunks split over the cores.
private func parallelSum(_ count: Int, _ body: (Range<Int>) -> Double) -> Double {
    let chunks = max(1, min(Parallel.workerCount, count / reductionGrain))
    if chunks == 1 { return body(0..<count) }
    var partial = [Double](repeating: 0, count: chunks)
    partial.withUnsafeMutableBufferPointer { out in
        Parallel.forEachChunk(chunks, grain: 1) { range in
            for c in range { out[c] = body((count * c / chunks)..<(count * (c + 1) / chunks)) }
        }
    }
    return partial.reduce(0, +)
}

/// Whether `body` holds for any chunk of 0..<count (all chunks are evaluated, split over the cores).
private func parallelAny(_ count: Int, _ body: (Range<Int>) -> Bool) -> Bool {
    parallelSum(count) { body($0) ? 1 : 0 } > 0
}
