import Engine
import Layers
import Models

/// Linear probe: the backbone is frozen; only the classification head trains.
public struct LinearProbe: PEFTMethod {
    public let name = "linear"
    public init() {}
    public func apply(to model: any Classifier) throws { model.freezeBackbone() }
}

/// Full fine-tuning: every parameter trains.
public struct FullFineTuning: PEFTMethod {
    public let name = "full"
    public init() {}
    public func apply(to model: any Classifier) throws { model.setRequiresGrad(true) }
}

/// BitFit (Ben Zaken et al., 2022): only the bias terms of the backbone (and the head) train.
public struct BitFit: PEFTMethod {
    public let name = "bitfit"
    public init() {}
    public func apply(to model: any Classifier) throws {
        model.freezeBackbone()
        for (path, parameter) in model.namedParameters() where path.hasSuffix(".bias") { parameter.requiresGrad = true }
    }
}

/// LayerNorm tuning: only the scale and shift of every LayerNorm (and the head) train
/// (also TTC's first stage; Hugging Face peft's LN tuning).
public struct LayerNormTuning: PEFTMethod {
    public let name = "layernorm"
    public init() {}
    public func apply(to model: any Classifier) throws {
        model.freezeBackbone()
        for (_, module) in model.namedModules() {
            if let norm = module as? LayerNorm { norm.setRequiresGrad(true) }
        }
    }

    /// peft keeps a trained copy of each LayerNorm in `<norm>.ln_tuning_layers`.
    public func peftTensorName(_ path: String, in module: any Module) -> String {
        guard let dot = path.lastIndex(of: "."), normPaths(in: module).contains(String(path[..<dot])) else { return path }
        return path[..<dot] + ".ln_tuning_layers" + path[dot...]
    }

    /// `target_modules`: the last name of every LayerNorm under `naming` (norm1, norm2, layernorm for DINOv2).
    public func peftFields(in module: any Module, naming: TransformersNaming) -> ConfigObject {
        let tails = Set(normPaths(in: module).map { TransformersNames.theirs($0, naming: naming).split(separator: ".").last.map(String.init) ?? $0 })
        return ["target_modules": .array(tails.sorted().map(ConfigValue.string))]
    }

    func normPaths(in module: any Module) -> Set<String> {
        Set(module.namedModules().compactMap { $0.1 is LayerNorm ? $0.0 : nil })
    }
}

extension LinearProbe {
    public static let descriptor = MethodDescriptor(
        name: "linear", summary: "linear probe: train only the head on frozen features", defaultLearningRate: 1e-2,
        make: { LinearProbe() })
}

extension FullFineTuning {
    public static let descriptor = MethodDescriptor(
        name: "full", summary: "full fine-tuning: every backbone weight trains", defaultLearningRate: 2e-5,
        make: { FullFineTuning() })
}

extension BitFit {
    public static let descriptor = MethodDescriptor(
        name: "bitfit", summary: "BitFit: train only the bias vectors", make: { BitFit() })
}

extension LayerNormTuning {
    public static let descriptor = MethodDescriptor(
        name: "layernorm", summary: "LayerNorm tuning: train only the LayerNorm scales and shifts",
        peftType: "LN_TUNING", make: { LayerNormTuning() })
}
