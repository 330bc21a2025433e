import Engine
import Layers
import Models

/// LoRA (Hu et al., 2022): a frozen Linear layer W gets a trainable low-rank update,
///
///     y = x W^T + b + (alpha / r) * dropout(x) A^T B^T,   A [r, in], B [out, r],
///
/// with A ~ U(-1/sqrt(in), 1/sqrt(in)) (Kaiming-uniform, a = sqrt 5, as Hugging Face peft) and B = 0, so the layer
/// starts exactly as the pretrained one. Parameters are saved as `lora_A.weight` and `lora_B.weight`.
public final class LoRAAdapter: LinearAdapter {
    public let a: Tensor
    public let b: Tensor
    public let scale: Float
    public let dropout: Float
    private let dropoutSeed: UInt64

    /// An adapter scaled by alpha / r, or by `scale` when given (rsLoRA: alpha / sqrt(r)).
    public init(inFeatures: Int, outFeatures: Int, rank: Int, alpha: Float, scale: Float? = nil, dropout: Float = 0,
                generator: inout RandomGenerator) {
        let bound = 1 / Float(inFeatures).squareRoot()
        a = Tensor.randomUniform([rank, inFeatures], low: -bound, high: bound, generator: &generator)
        b = Tensor(zeros: [outFeatures, rank])
        self.scale = scale ?? alpha / Float(rank)
        self.dropout = dropout
        dropoutSeed = generator.next()
        a.requiresGrad = true
        b.requiresGrad = true
    }

    public var children: [(String, any Module)] { [("lora_A", WeightHolder(a)), ("lora_B", WeightHolder(b))] }

    /// The input of the low-rank path: dropout(x) while training with dropout, else x.
    private func lowRankInput(_ input: Tensor) -> Tensor {
        guard ModelMode.isTraining && dropout > 0 else { return input }
        var generator = RandomGenerator(seed: dropoutSeed ^ ModelMode.stepSeed)
        return Engine.dropout(input, probability: dropout, generator: &generator)
    }

    /// The update alone, (alpha / r) dropout(x) A^T B^T.
    public func delta(_ input: Tensor) -> Tensor {
        linear(linear(lowRankInput(input), a), b).scaled(by: scale)
    }

    /// x W^T + b + (alpha / r) dropout(x) A^T B^T as one op (`lowRankLinear`): the update accumulates into the
    /// layer's output.
    /// On a layer whose frozen W is held quantised (QLoRA), the base output comes from the quantised blocks and the
    /// update is added to it, so W is never expanded.
    public func forward(_ input: Tensor, base: Linear) -> Tensor {
        if base.computesQuantized { return base.baseOutput(input) + delta(input) }
        return lowRankLinear(input, weight: base.weight, bias: base.bias, lowRankInput: lowRankInput(input), a: a, b: b,
                             scale: scale)
    }

    /// The dense update (alpha / r) B A, [out, in].
    public func deltaWeight() -> Tensor { matmul(b, a).scaled(by: scale) }
}

/// A module that holds one tensor named `weight` (so adapter parameters get peft's `lora_A.weight` paths).
public final class WeightHolder: Module {
    public let weight: Tensor
    public init(_ weight: Tensor) { self.weight = weight }
    public var ownParameters: [(String, Tensor)] { [("weight", weight)] }
}

/// The LoRA method: attaches a `LoRAAdapter` to every target Linear layer (a `DoRAAdapter` with `useDoRA`).
public struct LoRA: PEFTMethod {
    /// peft's `LoraConfig` fields (and ours: the seed).
    public struct Config: MethodConfig {
        /// Rank of the update.
        public var r = 8
        /// The update is scaled by lora_alpha / r.
        public var loraAlpha: Float = 8
        /// Dropout on the input of the low-rank path.
        public var loraDropout: Float = 0
        /// Which Linear layers are adapted.
        public var targetModules: TargetModules = .names(["query", "value"])
        /// Scale by lora_alpha / sqrt(r) instead of lora_alpha / r (rsLoRA).
        public var useRSLoRA = false
        /// Weight-decomposed LoRA (DoRA): a trainable magnitude per output feature.
        public var useDoRA = false
        public var seed: UInt64 = 0
        public init() {}

        enum CodingKeys: String, CodingKey {
            case r, loraAlpha = "lora_alpha", loraDropout = "lora_dropout", targetModules = "target_modules"
            case useRSLoRA = "use_rslora", useDoRA = "use_dora", seed
        }

        public static let options = [
            MethodOptionSpec("r", .integer, "rank of the update", peft: true, legacyField: "rank"),
            MethodOptionSpec("lora_alpha", .real, "the update is scaled by lora_alpha / r (by lora_alpha / sqrt(r) with use_rslora)", peft: true, legacyField: "alpha"),
            MethodOptionSpec("lora_dropout", .real, "dropout on the input of the low-rank path, in [0, 1)", peft: true, legacyField: "dropout"),
            .targetModules(),
            MethodOptionSpec("use_rslora", .boolean, "rank-stabilised scaling lora_alpha / sqrt(r)", peft: true, legacyField: "useRSLoRA"),
            MethodOptionSpec("use_dora", .boolean, "DoRA: a trainable magnitude per output feature", peft: true, legacyField: "useDoRA"),
            .seed(),
        ]

        /// The factor s of LoRA's update: alpha / r, or alpha / sqrt(r) with rsLoRA (Kalajdzievski, 2023; peft's
        /// `use_rslora`), which keeps the update's scale stable as the rank grows.
        public var scale: Float { useRSLoRA ? loraAlpha / Float(r).squareRoot() : loraAlpha / Float(r) }
    }

    public let name = "lora"
    public let config: Config
    public init(config: Config = Config()) { self.config = config }

    public func apply(to model: any Classifier) throws {
        model.freezeBackbone()
        try attach(to: model.backbone)
    }

    /// Attaches a `LoRAAdapter` to every target `Linear` layer of any module built from the library's layers
    /// (a user's own model included) and freezes the module's own weights, so that only the adapters train.
    /// Returns the paths of the adapted layers. Merge with `Merging.mergeLinearAdapters(in:)`.
    @discardableResult
    public func attach(to module: any Module) throws -> [String] {
        guard config.r > 0 else { throw ModuleError("LoRA rank must be positive, got \(config.r)") }
        guard config.loraDropout >= 0 && config.loraDropout < 1 else {
            throw ModuleError("LoRA dropout must be in [0, 1), got \(config.loraDropout)")
        }
        let targets = try config.targetModules.select(in: module)
        for (path, layer) in targets where config.r > min(layer.inFeatures, layer.outFeatures) {
            throw ModuleError("LoRA rank \(config.r) is larger than layer '\(path)' (\(layer.outFeatures) x \(layer.inFeatures))")
        }
        module.setRequiresGrad(false)
        var generator = RandomGenerator(seed: config.seed &+ 0x10_5A)
        for (_, layer) in targets {
            if config.useDoRA {
                layer.adapter = DoRAAdapter(base: layer, rank: config.r, scale: config.scale,
                                            dropout: config.loraDropout, generator: &generator)
            } else {
                layer.adapter = LoRAAdapter(inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, rank: config.r,
                                            alpha: config.loraAlpha, scale: config.scale, dropout: config.loraDropout,
                                            generator: &generator)
            }
        }
        return targets.map(\.0)
    }
}

extension LoRA {
    public static let descriptor = MethodDescriptor(
        name: "lora", summary: "LoRA: low-rank update B A added to target Linear layers (default query, value; r 8; rsLoRA, DoRA)",
        peftType: "LORA", capabilities: [.mergeable, .fusable], make: { LoRA(config: $0) })
}

extension LoRA: FusableMethod {
    /// The fused update of every adapted layer is exactly sum_i w_i s_i B_i A_i, s_i = alpha_i / r_i being adapter
    /// i's own scale, stored as one LoRA of rank R = sum_i r_i with alpha = R (scale 1):
    /// B = [w_1 s_1 B_1, ..., w_n s_n B_n] (columns concatenated, [out, R]) and A = [A_1; ...; A_n] (rows
    /// concatenated, [R, in]), so B A equals the weighted sum with no approximation (Hugging Face peft's
    /// `add_weighted_adapter(combination_type="cat")`, with the weight applied to B only). DoRA is refused.
    public func fuse(_ adapters: [Fusion.Adapter], weights: [Float]) throws -> Fusion.Result {
        let configs = try adapters.map { adapter in
            do { return try Config.decoded(from: adapter.configuration.swiftpeft.config) } catch {
                throw ModuleError("\(adapter.directory.path): \(error)")
            }
        }
        if let dora = zip(adapters, configs).first(where: { $0.1.useDoRA })?.0 {
            throw ModuleError("\(dora.weightsPath): a DoRA adapter cannot be fused (its magnitudes rescale whole weights, which no sum of low-rank updates reproduces)")
        }
        let layerKeys = try Fusion.sameLayers(adapters, suffix: ".lora_A.weight") { Array($0.tensors.keys) }
        // Every tensor must be a LoRA factor or the head.
        for adapter in adapters {
            if let other = adapter.tensors.keys.sorted().first(where: { !Fusion.isHead($0) && !$0.hasSuffix(".lora_A.weight") && !$0.hasSuffix(".lora_B.weight") }) {
                throw ModuleError("\(adapter.weightsPath): unexpected tensor '\(other)' in a LoRA adapter")
            }
        }
        let ranks = configs.map(\.r)
        let total = ranks.reduce(0, +)
        var tensors: [String: Tensor] = [:]
        for layer in layerKeys {
            var aParts: [Tensor] = [], bParts: [Tensor] = []
            var shape: (out: Int, in: Int)?
            for (index, adapter) in adapters.enumerated() {
                guard let a = adapter.tensors[layer + ".lora_A.weight"], let b = adapter.tensors[layer + ".lora_B.weight"] else {
                    throw ModuleError("\(adapter.weightsPath): tensor '\(layer).lora_B.weight' is missing")
                }
                let rank = ranks[index]
                guard a.shape.count == 2, b.shape.count == 2, a.shape[0] == rank, b.shape[1] == rank else {
                    throw ModuleError("\(adapter.weightsPath): '\(layer)' has lora_A \(a.shape) and lora_B \(b.shape), not rank \(rank) as its config says")
                }
                if let shape, shape != (b.shape[0], a.shape[1]) {
                    throw ModuleError("\(adapter.weightsPath): '\(layer)' is \(b.shape[0]) x \(a.shape[1]), but \(shape.out) x \(shape.in) in \(adapters[0].weightsPath)")
                }
                shape = (b.shape[0], a.shape[1])
                let scale = configs[index].scale
                aParts.append(a)
                bParts.append(Autograd.withoutGrad { b.scaled(by: weights[index] * scale) })
            }
            tensors[layer + ".lora_A.weight"] = Autograd.withoutGrad { concat(aParts, axis: 0) }
            tensors[layer + ".lora_B.weight"] = Autograd.withoutGrad { concat(bParts, axis: 1) }
        }
        var configuration = adapters[0].configuration
        var fused = configs[0]
        fused.r = total
        fused.loraAlpha = Float(total)
        fused.loraDropout = 0
        fused.useRSLoRA = false  // each source's own scale is folded into B
        configuration.setConfig(fused.values, of: Self.descriptor)  // the top-level peft fields say the same
        return Fusion.Result(configuration: configuration, tensors: tensors, integers: [:], layers: layerKeys.count,
                             summary: "rank \(total)")
    }
}

extension LoRAAdapter: MergeableAdapter {
    /// W += (alpha / r) B A, one GEMM accumulating into W (undone by subtraction, as Hugging Face peft does;
    /// exact up to float rounding).
    public func merge(into layer: Linear) { accumulate(into: layer, sign: 1) }
    public func unmerge(from layer: Linear) { accumulate(into: layer, sign: -1) }

    private func accumulate(into layer: Linear, sign: Float) {
        let rank = a.shape[0]
        gemm(transA: false, transB: false, m: layer.outFeatures, n: layer.inFeatures, k: rank, alpha: sign * scale,
             a: b.data, lda: rank, b: a.data, ldb: layer.inFeatures, beta: 1, c: layer.weight.data, ldc: layer.inFeatures)
    }
}
