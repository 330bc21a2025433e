import Engine
import Layers
import Models

/// RLRR, residual low-rank rescaling (Dong et al., CVPR 2024). Each frozen linear layer W [out, in] is rescaled
/// by a rank-1 residual mask with trainable u [out], v [in] and a bias shift f [out]:
///
///     W' = (1 + u v^T) * W  (elementwise) = W + diag(u) W diag(v),   b' = b + f,
///
/// and an SSF scale-and-shift z * s + t (s, t [D]) follows every LayerNorm and the patch embedding (every
/// `OutputAdaptable` layer of the backbone).
/// Initialisation follows the released code: u, v Kaiming-uniform (so the model does not start as the pretrained
/// one), f = 0, s ~ N(1, 0.02^2), t ~ N(0, 0.02^2); `identityStart` sets u = 0, s = 1, t = 0 instead.
/// Everything folds into the base weights (`mergedWeight`, the host layer's weight and bias).
public final class RLRRAdapter: LinearAdapter {
    public let u: Tensor   // [out, 1]
    public let v: Tensor   // [1, in]
    public let shift: Tensor
    /// The original weight and bias while merged.
    var savedWeight: Tensor?
    var savedBias: Tensor?

    public init(inFeatures: Int, outFeatures: Int, identityStart: Bool, generator: inout RandomGenerator) {
        let boundV = (6 / Float(inFeatures)).squareRoot(), boundU = Float(6).squareRoot()
        v = Tensor.randomUniform([1, inFeatures], low: -boundV, high: boundV, generator: &generator)
        u = identityStart ? Tensor(zeros: [outFeatures, 1])
            : Tensor.randomUniform([outFeatures, 1], low: -boundU, high: boundU, generator: &generator)
        shift = Tensor(zeros: [outFeatures])
        setRequiresGrad(true)
    }

    public var ownParameters: [(String, Tensor)] {
        [("rlrr_scale_line", u), ("rlrr_scale_col", v), ("rlrr_shift_bias", shift)]
    }

    /// W' = W + (u v^T) * W.
    public func mergedWeight(_ weight: Tensor) -> Tensor { weight + matmul(u, v) * weight }

    public func forward(_ input: Tensor, base: Linear) -> Tensor {
        let bias = base.bias.map { $0 + shift } ?? shift
        return linear(input, mergedWeight(base.weight), bias)
    }
}

/// SSF scale and shift after a LayerNorm or the patch embedding: z * s + t.
public final class ScaleShift: OutputAdapter {
    public let scale: Tensor
    public let shift: Tensor
    /// The host's weight and bias from before a merge.
    var savedWeight: Tensor?
    var savedBias: Tensor?

    public init(width: Int, identityStart: Bool, generator: inout RandomGenerator) {
        scale = identityStart ? Tensor(shape: [width], repeating: 1)
            : Tensor.randomNormal([width], std: 0.02, mean: 1, generator: &generator)
        shift = identityStart ? Tensor(zeros: [width]) : Tensor.randomNormal([width], std: 0.02, generator: &generator)
        setRequiresGrad(true)
    }

    public var ownParameters: [(String, Tensor)] { [("ssf_scale", scale), ("ssf_shift", shift)] }

    public func callAsFunction(_ x: Tensor) -> Tensor { x * scale + shift }
}

/// The RLRR method on a transformer backbone: RLRR adapters on every linear layer (q, k, v, attention output and
/// the feed-forward's two) and a scale-shift after every LayerNorm and the patch embedding, in module order.
public struct RLRR: PEFTMethod {
    /// Where RLRR starts.
    public struct Config: MethodConfig {
        /// Start as the pretrained model (u = 0, s = 1, t = 0) instead of the released code's random init.
        public var identityStart = false
        public var seed: UInt64 = 0
        public init() {}

        enum CodingKeys: String, CodingKey { case identityStart = "identity_start", seed }

        public static let options = [
            MethodOptionSpec("identity_start", .boolean, "start as the pretrained model instead of the released code's random init", legacyField: "identityStart"),
            .seed(),
        ]
    }

    public let name = "rlrr"
    public let config: Config
    public init(config: Config = Config()) { self.config = config }

    public func apply(to model: any Classifier) throws {
        let backbone = try model.requireTransformer(for: "RLRR (with SSF)")
        model.freezeBackbone()
        var generator = RandomGenerator(seed: config.seed &+ 0x11_22)
        let identity = config.identityStart
        for (_, layer) in try TargetModules.allLinear.select(in: backbone) {
            layer.adapter = RLRRAdapter(inFeatures: layer.inFeatures, outFeatures: layer.outFeatures,
                                        identityStart: identity, generator: &generator)
        }
        for case let host as any OutputAdaptable in backbone.namedModules().map(\.1) {
            host.outputAdapter = ScaleShift(width: host.bias.count, identityStart: identity, generator: &generator)
        }
    }
}

extension RLRR {
    /// Default learning rate 3e-3: the released VTAB-1k settings (batch 32, as ours) are 1e-3 to 1e-2, most often
    /// 3e-3 or 5e-3.
    public static let descriptor = MethodDescriptor(
        name: "rlrr", summary: "RLRR: rescale every frozen weight by (1 + u v^T), shift biases, scale-and-shift after LayerNorms",
        defaultLearningRate: 3e-3, capabilities: [.mergeable],
        make: { RLRR(config: $0) })
}

extension RLRRAdapter: MergeableAdapter {
    /// W' = (1 + u v^T) * W, b' = b + f; the originals are kept for unmerge.
    public func merge(into layer: Linear) {
        savedWeight = layer.weight.copy()
        savedBias = layer.bias?.copy()
        Autograd.withoutGrad {
            layer.weight.assign(mergedWeight(layer.weight))
            layer.bias?.assign(layer.bias! + shift)
        }
    }
    public func unmerge(from layer: Linear) {
        if let savedWeight { layer.weight.assign(savedWeight) }
        if let savedBias { layer.bias?.assign(savedBias) }
    }
}

extension ScaleShift: MergeableOutputAdapter {
    /// (W, b) followed by z * s + t equals (s W, s b + t), channel by channel; the originals are kept for unmerge.
    public func merge(into layer: any OutputAdaptable) {
        savedWeight = layer.weight.copy()
        savedBias = layer.bias.copy()
        let width = layer.bias.count
        Autograd.withoutGrad {
            layer.weight.assign(layer.weight.reshaped([width, -1]) * scale.reshaped([width, 1]))
            layer.bias.assign(layer.bias * scale + shift)
        }
    }
    public func unmerge(from layer: any OutputAdaptable) {
        if let savedWeight { layer.weight.assign(savedWeight) }
        if let savedBias { layer.bias.assign(savedBias) }
    }
}
