import Engine
import Layers
import Models

/// NEAT (Zhong et al., 2024; Hugging Face peft's PEANuT): a small nonlinear network maps the frozen weight to its
/// update. For a layer with W0 [out, in], trainable P [r, out] and Q [out, r],
///
///     dW = Q relu(P W0),   W' = W0 + s dW,
///
/// i.e. every column of W0 (the `out` weights leaving one input unit) passes through out -> r -> out. Training
/// never forms dW: with H = relu(P W0)^T [in, r], the layer computes y = x W0^T + b + s (x H) Q^T.
/// The deep variant adds m encoder matrices E_k and m decoder matrices D_k (r x r) with mirrored skips:
/// h_k = relu(h_{k-1} E_k^T), then h_{m+k} = relu(h_{m+k-1} D_k^T) + h_{m-k}, and H = h_{2m}.
/// Q = 0 at start, so the layer starts as the pretrained one. P is Kaiming-uniform U(-1/sqrt(out), 1/sqrt(out)).
public final class NEATAdapter: LinearAdapter {
    public let p: Tensor
    public let q: Tensor
    public let encoders: [Tensor]
    public let decoders: [Tensor]
    public let scale: Float
    /// The original weight while merged.
    var savedWeight: Tensor?

    public init(inFeatures: Int, outFeatures: Int, rank: Int, pairs: Int = 0, scale: Float = 1,
                generator: inout RandomGenerator) {
        let bound = 1 / Float(outFeatures).squareRoot()
        p = Tensor.randomUniform([rank, outFeatures], low: -bound, high: bound, generator: &generator)
        q = Tensor(zeros: [outFeatures, rank])
        let inner = 1 / Float(rank).squareRoot()
        encoders = (0..<pairs).map { _ in Tensor.randomUniform([rank, rank], low: -inner, high: inner, generator: &generator) }
        decoders = (0..<pairs).map { _ in Tensor.randomUniform([rank, rank], low: -inner, high: inner, generator: &generator) }
        self.scale = scale
        setRequiresGrad(true)
    }

    /// peft's PEANuT names (`peanut_A` is P, `peanut_B` is Q), so peft reads the tensors as they are.
    public var ownParameters: [(String, Tensor)] {
        var list = [("peanut_A.weight", p), ("peanut_B.weight", q)]
        for (k, e) in encoders.enumerated() { list.append(("peanut_encoders.\(k).weight", e)) }
        for (k, d) in decoders.enumerated() { list.append(("peanut_decoders.\(k).weight", d)) }
        return list
    }

    /// H [in, r] computed from the frozen weight.
    func hidden(_ weight: Tensor) -> Tensor {
        var h = relu(matmul(p, weight).transposed())          // [in, r]
        var skips: [Tensor] = []
        for e in encoders { skips.append(h); h = relu(linear(h, e)) }
        for d in decoders { h = relu(linear(h, d)) + skips.removeLast() }
        return h
    }

    public func forward(_ input: Tensor, base: Linear) -> Tensor {
        let update = linear(matmul(input, hidden(base.weight)), q).scaled(by: scale)
        return linear(input, base.weight, base.bias) + update
    }

    /// The dense update s * dW [out, in], computed from `original` (the weight before any merge).
    public func deltaWeight(original: Tensor) -> Tensor { matmul(q, hidden(original).transposed()).scaled(by: scale) }
}

/// The NEAT method: a `NEATAdapter` on every target Linear layer (default query and value), of a classifier's
/// backbone or of any module (a causal LM's `q_proj`, ...). The math, the initialisation and the names are peft's
/// PEANuT (`PeanutConfig`), so each library reads the other's adapters.
public struct NEAT: PEFTMethod, ModuleAdaptingMethod {
    /// peft's `PeanutConfig`: `r`, `depth` (encoder/decoder pairs of the deep variant), `scaling`, `act_fn`,
    /// `target_modules`.
    public struct Config: MethodConfig {
        /// Width of the network.
        public var r = 8
        public var targetModules: TargetModules = .names(["query", "value"])
        /// Encoder/decoder pairs of the deep variant (0: the depth-2 network).
        public var depth = 0
        /// Multiplier s of the update.
        public var scaling: Float = 1
        /// The nonlinearity; only peft's default, "relu", is implemented.
        public var actFn = "relu"
        public var seed: UInt64 = 0
        public init() {}

        enum CodingKeys: String, CodingKey {
            case r, targetModules = "target_modules", depth, scaling, actFn = "act_fn", seed
        }

        public static let options = [
            MethodOptionSpec("r", .integer, "width of the network", peft: true, legacyField: "rank"),
            .targetModules(),
            MethodOptionSpec("depth", .integer, "encoder/decoder pairs of the deep variant (0: depth 2)", peft: true, legacyField: "neatPairs"),
            MethodOptionSpec("scaling", .real, "multiplier of the update", peft: true, legacyField: "neatScale"),
            MethodOptionSpec("act_fn", .text, "the nonlinearity (relu)", peft: true),
            .seed(),
        ]

        /// The keys these options had before they took peft's names.
        public static let renamedOptions = ["neat_pairs": "depth", "neat_scale": "scaling"]
    }

    public let name = "neat"
    public let config: Config
    public init(config: Config = Config()) { self.config = config }

    public func apply(to model: any Classifier) throws {
        model.freezeBackbone()
        try attach(to: model.backbone)
    }

    /// Attaches a `NEATAdapter` to every target `Linear` layer of `module` and freezes the module's own weights;
    /// returns the adapted paths. Checks every target before changing anything.
    @discardableResult
    public func attach(to module: any Module) throws -> [String] {
        guard config.r > 0 else { throw ModuleError("NEAT rank must be positive, got \(config.r)") }
        guard config.depth >= 0 && config.depth <= 32 else {
            throw ModuleError("NEAT depth (encoder/decoder pairs) must be in 0...32, got \(config.depth)")
        }
        guard config.actFn == "relu" else { throw ModuleError("NEAT act_fn '\(config.actFn)' is not implemented; only relu is") }
        let targets = try config.targetModules.select(in: module)
        for (path, layer) in targets where config.r > layer.outFeatures {
            throw ModuleError("NEAT rank \(config.r) is larger than layer '\(path)' (\(layer.outFeatures) outputs)")
        }
        module.setRequiresGrad(false)
        var generator = RandomGenerator(seed: config.seed &+ 0x4EA7)
        for (_, layer) in targets {
            layer.adapter = NEATAdapter(inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, rank: config.r,
                                        pairs: config.depth, scale: config.scaling, generator: &generator)
        }
        return targets.map(\.0)
    }
}

extension NEAT {
    /// Default learning rate 3e-3: the released vision code trains at 5e-3 to 1e-2 (batch 256); the suite's grid
    /// (0.3x, 1x, 3x) then spans 9e-4 to 9e-3.
    public static let descriptor = MethodDescriptor(
        name: "neat", summary: "NEAT: a small nonlinear network maps each frozen weight to its update, dW = Q relu(P W0)",
        peftType: "PEANUT", defaultLearningRate: 3e-3, capabilities: [.mergeable],
        make: { NEAT(config: $0) })
}

extension NEATAdapter: MergeableAdapter {
    /// W' = W0 + s Q relu(P W0), computed from the original W0, which is kept for unmerge.
    public func merge(into layer: Linear) {
        savedWeight = layer.weight.copy()
        Autograd.withoutGrad { layer.weight.assign(layer.weight + deltaWeight(original: savedWeight!)) }
    }
    public func unmerge(from layer: Linear) {
        if let savedWeight { layer.weight.assign(savedWeight) }
    }
}
