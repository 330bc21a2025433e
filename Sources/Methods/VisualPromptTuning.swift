import Engine
import Layers
import Models

/// VPT-deep (Jia et al., 2022): P learnable tokens per block, inserted after the class token before every block
/// (the previous block's prompt outputs are dropped). Initialised U(-v, v) with v = sqrt(6 / (3 p^2 + D)) as in
/// the paper's code (p the patch size). The backbone is frozen.
public struct VisualPromptTuning: PEFTMethod {
    public let name = "vpt"
    public let options: MethodOptions
    public init(options: MethodOptions = MethodOptions()) { self.options = options }

    public func apply(to model: any Classifier) throws {
        guard let vision = model.visionBackbone else { throw ModuleError("VPT needs a vision backbone") }
        guard options.prompts > 0 else { throw ModuleError("VPT needs at least one prompt token") }
        // A bound, so a corrupt or hostile adapter config cannot make it allocate without limit.
        guard options.prompts <= 1024 else { throw ModuleError("VPT: at most 1024 prompt tokens per layer, got \(options.prompts)") }
        model.freezeBackbone()
        var generator = RandomGenerator(seed: options.seed &+ 0x0B7)
        let c = vision.configuration
        let bound = (6 / Float(3 * c.patchSize * c.patchSize + c.width)).squareRoot()
        vision.deepPrompts = (0..<c.depth).map { _ in
            let prompts = Tensor.randomUniform([options.prompts, c.width], low: -bound, high: bound, generator: &generator)
            prompts.requiresGrad = true
            return prompts
        }
    }
}

extension VisualPromptTuning {
    public static let descriptor = MethodDescriptor(
        name: "vpt", summary: "VPT-deep: learnable prompt tokens inserted before every block", defaultLearningRate: 1e-2,
        options: [MethodOptionSpec("num_virtual_tokens", field: "prompts", .integer, "prompt tokens per layer")],
        make: { VisualPromptTuning(options: $0) })
}
