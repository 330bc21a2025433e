import Checkpoints
import Foundation
import Layers

/// Reading adapters under transformers' module names (peft's own, or ours written for a transformers release):
/// tensor names and `target_modules` are translated to this library's names on load.
extension AdapterFiles {
    /// NEAT's tensor names before they took peft's PEANuT names, and the current ones.
    static let formerNEATNames = [
        (".neat_A.", ".peanut_A."), (".neat_B.", ".peanut_B."), (".neat_encoder.", ".peanut_encoders."),
        (".neat_decoder.", ".peanut_decoders."),
    ]

    /// `key` (a tensor name of an adapter file) under this library's names: transformers 4's and 5's module names
    /// of the vision backbones (``TransformersNaming``) read as ours, NEAT's former tensor names as the current
    /// (peft's) ones, peft's LayerNorm-tuning copies (`<norm>.ln_tuning_layers.weight`) as the norm's own.
    static func canonicalTensorName(_ key: String) -> String {
        var name = key.replacingOccurrences(of: ".ln_tuning_layers.", with: ".")
        if name.hasPrefix(prefix) { name = prefix + TransformersNames.ours(String(name.dropFirst(prefix.count))) }
        for (theirs, ours) in formerNEATNames where name.contains(theirs) {
            name = name.replacingOccurrences(of: theirs, with: ours)
        }
        return name
    }

    /// The adapter weights file at `url`, its tensors known by their canonical names.
    static func openWeights(_ url: URL) throws -> SafeTensorsFile {
        try SafeTensorsFile(path: url.path, renaming: canonicalTensorName)
    }

    /// `config` with each `target_modules` name that matches no Linear layer of `model` but names layers under
    /// transformers 4's or 5's module names (`q_proj`, `layernorm_before`, full paths) replaced by ours.
    static func transformersTargets(_ config: ConfigObject, in model: any Module) -> ConfigObject {
        guard let value = config["target_modules"], let targets = TargetModules(configValue: value) else { return config }
        var result = config
        result["target_modules"] = TransformersNames.ours(targets, in: model).configValue
        return result
    }

    /// The class count of a peft-saved adapter's head (`modules_to_save: ["classifier"]`): the rows of its stored
    /// `classifier.weight`, or 0 when it stores none (an adapter of a module without a head).
    static func peftHeadClasses(in directory: URL) throws -> Int {
        let file = try openWeights(directory.appendingPathComponent("adapter_model.safetensors"))
        guard let info = file.info(prefix + "classifier.weight") else { return 0 }
        guard info.shape.count == 2, info.shape[0] >= 1, info.shape[0] <= maximumClasses else {
            throw ModuleError("\(file.path): 'classifier.weight' has shape \(info.shape); a head needs 1...\(maximumClasses) rows")
        }
        return info.shape[0]
    }
}
