import Engine
import Layers
import Models

/// RLRR, residual low-rank rescaling (Dong et al., CVPR 2024). Each frozen linear layer W [out, in] is rescaled
/// by a rank-1 residual mask with trainable u [out], v [in] and a bias shift f [out]:
///
///     W' = (1 + u v^T) * W  (elementwise) = W + diag(u) W diag(v),   b' = b + f,
///
/// and an SSF scale-and-shift z * s + t (s, t [D]) follows every LayerNorm and the patch embedding.
/// Initialisation follows the released code: u, v Kaiming-uniform (so the model does not start as the pretrained
/// one), f = 0, s ~ N(1, 0.02^2), t ~ N(0, 0.02^2); `identityStart` sets u = 0, s = 1, t = 0 instead.
/// Everything folds into the base weights (`mergedWeight`, `LayerNorm` weight/bias).
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
public final class ScaleShift: ElementwiseAffine {
    public let scale: Tensor
    public let shift: Tensor

    public init(width: Int, identityStart: Bool, generator: inout RandomGenerator) {
        scale = identityStart ? Tensor(shape: [width], repeating: 1)
            : Tensor.randomNormal([width], std: 0.02, mean: 1, generator: &generator)
        shift = identityStart ? Tensor(zeros: [width]) : Tensor.randomNormal([width], std: 0.02, generator: &generator)
        setRequiresGrad(true)
    }

    public var ownParameters: [(String, Tensor)] { [("ssf_scale", scale), ("ssf_shift", shift)] }

    public func callAsFunction(_ x: Tensor) -> Tensor { x * scale + shift }
}

/// The RLRR method on a vision backbone: RLRR adapters on q, k, v, attention output, fc1, fc2 and scale-shift
/// after both LayerNorms of every block, the final LayerNorm and the patch embedding.
public struct RLRR: PEFTMethod {
    public let name = "rlrr"
    public let options: MethodOptions
    public init(options: MethodOptions = MethodOptions()) { self.options = options }

    public func apply(to model: any Classifier) throws {
        guard let vision = model.visionBackbone else { throw ModuleError("RLRR (with SSF) needs a vision backbone") }
        model.freezeBackbone()
        var generator = RandomGenerator(seed: options.seed &+ 0x11_22)
        let identity = options.identityStart
        for (_, layer) in try TargetModules.allLinear.select(in: vision) {
            layer.adapter = RLRRAdapter(inFeatures: layer.inFeatures, outFeatures: layer.outFeatures,
                                        identityStart: identity, generator: &generator)
        }
        let width = vision.configuration.width
        for block in vision.blocks {
            block.norm1.scaleShift = ScaleShift(width: width, identityStart: identity, generator: &generator)
            block.norm2.scaleShift = ScaleShift(width: width, identityStart: identity, generator: &generator)
        }
        vision.layernorm.scaleShift = ScaleShift(width: width, identityStart: identity, generator: &generator)
        vision.embeddings.projection.scaleShift = ScaleShift(width: width, identityStart: identity, generator: &generator)
    }
}

extension RLRR {
    public static let descriptor = MethodDescriptor(
        name: "rlrr", summary: "RLRR: rescale every frozen weight by (1 + u v^T), shift biases, scale-and-shift after LayerNorms",
        capabilities: [.mergeable],
        options: [MethodOptionSpec("identity_start", field: "identityStart", .boolean, "start as the pretrained model instead of the released code's random init")],
        make: { RLRR(options: $0) })
}
