import Engine
import Layers
import Models

/// (IA)^3 (Liu et al., 2022): learned vectors rescale activations of the target Linear layers. On an attention layer
/// (keys and values by default) the output is rescaled, y = (x W^T + b) * l with l [out]; on a feed-forward layer
/// (`feedforward_modules`) the input is, y = (x * l) W^T + b with l [in]. The vectors start at 1, so the model starts
/// as the pretrained one, and fold into W (and b) on merge. Saved as `<layer>.ia3_l` in Hugging Face peft's shapes:
/// [out, 1] when the output is scaled, [1, in] when the input is.
public final class IA3Adapter: LinearAdapter {
    /// The scaling vector, [out, 1] or [1, in].
    public let vector: Tensor
    /// Whether the input (feed-forward layers) or the output is scaled.
    public let scalesInput: Bool
    /// The original weight and bias while merged.
    var savedWeight: Tensor?
    var savedBias: Tensor?

    public init(inFeatures: Int, outFeatures: Int, scalesInput: Bool) {
        vector = Tensor(shape: scalesInput ? [1, inFeatures] : [outFeatures, 1], repeating: 1)
        self.scalesInput = scalesInput
        vector.requiresGrad = true
    }

    public var ownParameters: [(String, Tensor)] { [("ia3_l", vector)] }

    public func forward(_ input: Tensor, base: Linear) -> Tensor {
        let scaling = vector.reshaped([vector.count])
        if scalesInput { return linear(input * scaling, base.weight, base.bias) }
        return linear(input, base.weight, base.bias) * scaling
    }
}

extension IA3Adapter: MergeableAdapter {
    /// W' = diag(l) W and b' = l * b (output scaling) or W' = W diag(l) (input scaling); the originals are kept for
    /// unmerge.
    public func merge(into layer: Linear) {
        savedWeight = layer.weight.copy()
        savedBias = layer.bias?.copy()
        Autograd.withoutGrad {
            layer.weight.assign(layer.weight * vector)
            if !scalesInput, let bias = layer.bias { bias.assign(bias * vector.reshaped([vector.count])) }
        }
    }

    public func unmerge(from layer: Linear) {
        if let savedWeight { layer.weight.assign(savedWeight) }
        if let savedBias { layer.bias?.assign(savedBias) }
    }
}

/// The (IA)^3 method: an `IA3Adapter` on every target Linear layer, scaling the input of those that are also
/// feed-forward modules and the output of the others.
public struct IA3: PEFTMethod, ModuleAdaptingMethod {
    /// peft's `IA3Config` fields.
    public struct Config: MethodConfig {
        /// Which Linear layers are rescaled (default: the attention keys and values, and the MLP's second layer).
        public var targetModules: TargetModules = .names(["key", "value", "fc2"])
        /// Which of the targets scale their input instead of their output (peft requires them to be targets too).
        public var feedforwardModules: TargetModules = .names(["fc2"])
        public var seed: UInt64 = 0
        public init() {}

        enum CodingKeys: String, CodingKey {
            case targetModules = "target_modules", feedforwardModules = "feedforward_modules", seed
        }

        public static let options = [
            MethodOptionSpec.targetModules(),
            MethodOptionSpec("feedforward_modules", .targets, "targets whose input (not output) is scaled", peft: true),
        ]
    }

    public let name = "ia3"
    public let config: Config
    public init(config: Config = Config()) { self.config = config }

    public func apply(to model: any Classifier) throws {
        model.freezeBackbone()
        try attachAdapters(to: model.backbone)
    }

    /// Attaches an `IA3Adapter` to every target `Linear` layer of `module` and freezes the module's own weights.
    @discardableResult
    public func attach(to module: any Module) throws -> [String] {
        module.setRequiresGrad(false)
        return try attachAdapters(to: module)
    }

    @discardableResult
    private func attachAdapters(to module: any Module) throws -> [String] {
        if case .pattern(let pattern) = config.feedforwardModules, (try? Regex(pattern)) == nil {
            throw ModuleError("feedforward_modules: '\(pattern)' is not a valid regular expression")
        }
        let targets = try config.targetModules.select(in: module)
        for (path, layer) in targets {
            layer.adapter = IA3Adapter(inFeatures: layer.inFeatures, outFeatures: layer.outFeatures,
                                       scalesInput: config.feedforwardModules.matches(path))
        }
        return targets.map(\.0)
    }

    public static let descriptor = MethodDescriptor(
        name: "ia3", summary: "(IA)^3: learned vectors rescale the keys, values and feed-forward inputs (peft's IA3)",
        peftType: "IA3", defaultLearningRate: 3e-3, capabilities: [.mergeable], make: { IA3(config: $0) })
}
