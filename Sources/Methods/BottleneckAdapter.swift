import Engine
import Layers
import Models

/// AdaptFormer-style bottleneck adapter (Chen et al., 2022), a branch beside each block's feed-forward sub-layer:
///
///     out = h + MLP(LN(h)) + s * up(ReLU(down(h))),   down [w, D], up [D, w]
///
/// (on a post-norm block such as BERT's the branch is added inside the output LayerNorm: LN(h + FFN(h) + s ...)),
/// with `up` initialised to zero so the model starts as the pretrained one.
public final class BottleneckAdapter: StreamModule {
    public let down: Linear
    public let up: Linear
    public let scale: Float

    public init(width: Int, hidden: Int, scale: Float, generator: inout RandomGenerator) {
        let bound = 1 / Float(width).squareRoot()
        down = Linear(weight: Tensor.randomUniform([hidden, width], low: -bound, high: bound, generator: &generator),
                      bias: Tensor(zeros: [hidden]))
        up = Linear(weight: Tensor(zeros: [width, hidden]), bias: Tensor(zeros: [width]))
        self.scale = scale
        setRequiresGrad(true)
    }

    public var children: [(String, any Module)] { [("down_proj", down), ("up_proj", up)] }

    public func callAsFunction(_ residual: Tensor) -> Tensor { up(relu(down(residual))).scaled(by: scale) }
}

/// Attaches a `BottleneckAdapter` beside the feed-forward of every block of a transformer backbone (saved under
/// `adapter.*`).
public struct BottleneckAdapterMethod: PEFTMethod {
    /// The bottleneck's width and output scale.
    public struct Config: MethodConfig {
        public var adapterWidth = 8
        public var adapterScale: Float = 0.1
        public var seed: UInt64 = 0
        public init() {}

        enum CodingKeys: String, CodingKey { case adapterWidth = "adapter_width", adapterScale = "adapter_scale", seed }

        public static let options = [
            MethodOptionSpec("adapter_width", .integer, "hidden width of the bottleneck", legacyField: "adapterWidth"),
            MethodOptionSpec("adapter_scale", .real, "scale of the adapter's output", legacyField: "adapterScale"),
            .seed(),
        ]
    }

    public let name = "adapter"
    public let config: Config
    public init(config: Config = Config()) { self.config = config }

    public func apply(to model: any Classifier) throws {
        let backbone = try model.requireTransformer(for: "the bottleneck adapter")
        guard config.adapterWidth > 0 else { throw ModuleError("adapter width must be positive") }
        guard config.adapterWidth <= 4 * backbone.width else {
            throw ModuleError("adapter width \(config.adapterWidth) is more than 4 x the model width \(backbone.width)")
        }
        model.freezeBackbone()
        var generator = RandomGenerator(seed: config.seed &+ 0xADA)
        for hooks in backbone.blockHooks {
            hooks.set(BottleneckAdapter(width: backbone.width, hidden: config.adapterWidth,
                                        scale: config.adapterScale, generator: &generator),
                      named: "adapter", at: .besideFeedForward)
        }
    }
}

extension BottleneckAdapterMethod {
    public static let descriptor = MethodDescriptor(
        name: "adapter", summary: "bottleneck adapter (AdaptFormer): a small parallel MLP beside each block's MLP",
        make: { BottleneckAdapterMethod(config: $0) })
}
