import Checkpoints
import Foundation
import Layers

/// Reading adapters that Hugging Face peft saved itself (no `swiftpeft` section), from models in transformers 5,
/// which names DINOv2's attention projections `attention.q_proj`, `k_proj`, `v_proj`, `o_proj` in memory (and so in
/// peft's adapters) while its checkpoints, and this library, call them `attention.attention.query`, `key`, `value`
/// and `attention.output.dense`.
extension AdapterFiles {
    /// transformers 5's in-memory names of DINOv2's attention projections and this library's (checkpoint) names.
    static let transformersAttentionNames = [
        (".attention.q_proj.", ".attention.attention.query."), (".attention.k_proj.", ".attention.attention.key."),
        (".attention.v_proj.", ".attention.attention.value."), (".attention.o_proj.", ".attention.output.dense."),
    ]

    /// NEAT's tensor names before they took peft's PEANuT names, and the current ones.
    static let formerNEATNames = [
        (".neat_A.", ".peanut_A."), (".neat_B.", ".peanut_B."), (".neat_encoder.", ".peanut_encoders."),
        (".neat_decoder.", ".peanut_decoders."),
    ]

    /// `key` (a tensor name of an adapter file) with transformers 5's DINOv2 attention names replaced by ours and
    /// NEAT's former tensor names by the current (peft's) ones.
    static func canonicalTensorName(_ key: String) -> String {
        var name = key
        for (theirs, ours) in transformersAttentionNames + formerNEATNames where name.contains(theirs) {
            name = name.replacingOccurrences(of: theirs, with: ours)
        }
        return name
    }

    /// `config` with each `target_modules` name that matches no Linear layer of `model` but is one of transformers
    /// 5's DINOv2 attention names (`q_proj`, ...) replaced by ours (`attention.query`, ...).
    static func transformersTargets(_ config: ConfigObject, in model: any Module) -> ConfigObject {
        guard let value = config["target_modules"], case .names(let names)? = TargetModules(configValue: value) else {
            return config
        }
        let paths = model.namedModules().compactMap { $0.1 is Linear ? $0.0 : nil }
        let translated = names.map { name -> String in
            guard !paths.contains(where: { TargetModules.names([name]).matches($0) }) else { return name }
            guard let ours = transformersAttentionNames.first(where: { $0.0.hasSuffix("." + name + ".") })?.1 else { return name }
            return String(ours.dropFirst().dropLast())  // "attention.attention.query"
        }
        var result = config
        result["target_modules"] = TargetModules.names(translated).configValue
        return result
    }

    /// The class count of a peft-saved adapter's head (`modules_to_save: ["classifier"]`): the rows of its stored
    /// `classifier.weight`, or 0 when it stores none (an adapter of a module without a head).
    static func peftHeadClasses(in directory: URL) throws -> Int {
        let file = try SafeTensorsFile(path: directory.appendingPathComponent("adapter_model.safetensors").path)
        guard let info = file.info(prefix + "classifier.weight") else { return 0 }
        guard info.shape.count == 2, info.shape[0] >= 1, info.shape[0] <= maximumClasses else {
            throw ModuleError("\(file.path): 'classifier.weight' has shape \(info.shape); a head needs 1...\(maximumClasses) rows")
        }
        return info.shape[0]
    }
}
