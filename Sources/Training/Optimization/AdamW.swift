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
    public func gradientNorm() -> Float {
        var total: Double = 0
        for group in groups {
            guard let grad = group.parameter.grad else { continue }
            let g = grad.data
            for i in 0..<grad.count { total += Double(g[i]) * Double(g[i]) }
        }
        return Float(total.squareRoot())
    }

    /// The first parameter whose gradient holds a NaN or infinity, if any.
    public func firstNonFiniteGradient() -> String? {
        for group in groups {
            guard let grad = group.parameter.grad else { continue }
            let g = grad.data
            for i in 0..<grad.count where !g[i].isFinite { return group.name }
        }
        return nil
    }

    /// The first parameter that `update(learningRate:clipNorm:)` would make (or whose moments it would make) NaN
    /// or infinite, if any. Computes the same arithmetic as the update without writing anything, so a caller can
    /// refuse a bad step before it touches the weights.
    public func firstNonFiniteUpdate(learningRate: Float, clipNorm: Float = 0) -> String? {
        let clipScale = clipScale(clipNorm)
        let next = step + 1
        let correction1 = 1 - powf(beta1, Float(next)), correction2 = 1 - powf(beta2, Float(next))
        let b1 = beta1, b2 = beta2, eps = epsilon
        guard learningRate.isFinite, clipScale.isFinite else { return groups.first?.name }
        for group in groups {
            guard let grad = group.parameter.grad else { continue }
            let lr = learningRate * group.learningRateScale
            let decay = group.decays ? lr * weightDecay : 0
            let p = group.parameter.data, g = grad.data, m = group.firstMoment.data, v = group.secondMoment.data
            for i in 0..<grad.count {
                let gi = g[i] * clipScale
                let mi = b1 * m[i] + (1 - b1) * gi
                let vi = b2 * v[i] + (1 - b2) * gi * gi
                let update = (mi / correction1) / ((vi / correction2).squareRoot() + eps)
                let pi = p[i] - (lr * update + decay * p[i])
                if !(pi.isFinite && mi.isFinite && vi.isFinite) { return group.name }
            }
        }
        return nil
    }

    /// The first parameter, or optimiser moment, holding a NaN or infinity (by parameter path), if any.
    public func firstNonFiniteState() -> String? {
        for group in groups {
            for tensor in [group.parameter, group.firstMoment, group.secondMoment] {
                let d = tensor.data
                for i in 0..<tensor.count where !d[i].isFinite { return group.name }
            }
        }
        return nil
    }

    /// Drops the gradients without updating (a skipped step).
    public func discardGradients() {
        for group in groups { group.parameter.grad = nil }
    }

    private func clipScale(_ clipNorm: Float) -> Float {
        guard clipNorm > 0 else { return 1 }
        let norm = gradientNorm()
        return norm > clipNorm ? clipNorm / (norm + 1e-6) : 1
    }

    /// One update with learning rate `learningRate`; gradients are first scaled down so their global norm is at
    /// most `clipNorm` (when positive). Clears the gradients afterwards.
    public func update(learningRate: Float, clipNorm: Float = 0) {
        step += 1
        let clipScale = clipScale(clipNorm)
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
