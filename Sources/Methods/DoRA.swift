import Engine
import Layers
import Models

/// DoRA, weight-decomposed low-rank adaptation (Liu et al., 2024), peft's `LoraConfig(use_dora=True)`: the adapted
/// weight W0 + s B A is split into a direction and a trainable magnitude m per output feature,
///
///     W' = m / ||W0 + s B A||_row * (W0 + s B A),   y = x W'^T + b,
///
/// with the row norm treated as a constant in the backward (as the paper and peft do, Section 4.3). m starts as
/// ||W0||_row and B = 0, so the layer starts exactly as the pretrained one. Parameters: `lora_A.weight`,
/// `lora_B.weight` and `lora_magnitude_vector` (peft's names). Enabled by `LoRA.Config.useDoRA` on the LoRA
/// method; rsLoRA scaling (`useRSLoRA`, s = alpha / sqrt(r)) applies as for LoRA.
public final class DoRAAdapter: LinearAdapter {
    /// The LoRA factors: A [r, in], B [out, r].
    public let a: Tensor
    public let b: Tensor
    /// The magnitude m [out], trainable.
    public let magnitude: Tensor
    /// s: alpha / r, or alpha / sqrt(r) with rsLoRA.
    public let scale: Float
    public let dropout: Float
    private let dropoutSeed: UInt64
    /// W0 while merged (restored exactly by unmerge).
    var savedWeight: Tensor?

    public init(base: Linear, rank: Int, scale: Float, dropout: Float = 0, generator: inout RandomGenerator) {
        let bound = 1 / Float(base.inFeatures).squareRoot()
        a = Tensor.randomUniform([rank, base.inFeatures], low: -bound, high: bound, generator: &generator)
        b = Tensor(zeros: [base.outFeatures, rank])
        self.scale = scale
        self.dropout = dropout
        dropoutSeed = generator.next()
        magnitude = Tensor(shape: [base.outFeatures], values: DoRAAdapter.rowNorms(base.weight))
        for tensor in [a, b, magnitude] { tensor.requiresGrad = true }
    }

    public var ownParameters: [(String, Tensor)] { [("lora_magnitude_vector", magnitude)] }
    public var children: [(String, any Module)] { [("lora_A", WeightHolder(a)), ("lora_B", WeightHolder(b))] }

    /// The Euclidean norm of each row of a [out, in] matrix.
    static func rowNorms(_ weight: Tensor) -> [Float] {
        let rows = weight.shape[0], columns = weight.shape[1]
        return (0..<rows).map { r in
            var sum: Double = 0
            for c in 0..<columns { let v = Double(weight.data[r * columns + c]); sum += v * v }
            return Float(sum.squareRoot())
        }
    }

    /// W0 + s B A, without recording the graph.
    func combinedWeight(_ base: Tensor) -> Tensor {
        Autograd.withoutGrad { base + matmul(b, a).scaled(by: scale) }
    }

    /// m / ||combined||_row for combined = W0 + s B A, [out], differentiable in m only.
    func magnitudeScale(combined: Tensor) -> Tensor {
        let norms = Tensor(shape: [magnitude.count], values: DoRAAdapter.rowNorms(combined).map { max($0, 1e-12) })
        return magnitude / norms
    }

    public func forward(_ input: Tensor, base: Linear) -> Tensor {
        var u = input
        if ModelMode.isTraining && dropout > 0 {
            var generator = RandomGenerator(seed: dropoutSeed ^ ModelMode.stepSeed)
            u = Engine.dropout(input, probability: dropout, generator: &generator)
        }
        // (x W0^T + s u A^T B^T) scaled per output feature, then the bias (which DoRA does not rescale).
        let direction = lowRankLinear(input, weight: base.weight, bias: nil, lowRankInput: u, a: a, b: b, scale: scale)
        let scaled = direction * magnitudeScale(combined: combinedWeight(base.weight))
        if let bias = base.bias { return scaled + bias }
        return scaled
    }
}

extension DoRAAdapter: MergeableAdapter {
    /// W' = (m / ||W0 + s B A||_row) (W0 + s B A); W0 is kept for unmerge.
    public func merge(into layer: Linear) {
        let original = layer.weight.copy()
        savedWeight = original
        Autograd.withoutGrad {
            let width = magnitude.count
            let combined = combinedWeight(original)
            let merged = combined * magnitudeScale(combined: combined).reshaped([width, 1])
            layer.weight.assign(merged)
        }
    }

    /// `unmerge` writes back the values saved by `merge`.
    public var unmergeRestoresExactly: Bool { true }
    public func unmerge(from layer: Linear) {
        if let savedWeight { layer.weight.assign(savedWeight) }
        savedWeight = nil
    }
}
