import Checkpoints
import Engine
import Foundation
import Layers
import Models

/// `adapter_config.json`: the Hugging Face peft fields (so peft tooling can read what it knows) plus a
/// `swiftpeft` section with everything needed to rebuild the adapter exactly.
public struct AdapterConfiguration: Codable, Sendable {
    /// peft's method name: LORA, SHIRA, PEANUT (NEAT), or SWIFTPEFT_<METHOD> for methods peft does not have.
    public var peftType: String
    public var baseModelNameOrPath: String
    public var inferenceMode = true
    public var targetModules: [String]?
    public var modulesToSave = ["classifier"]
    public var r: Int?
    public var loraAlpha: Float?
    public var loraDropout: Float?
    /// peft's LoRA variants: rsLoRA scaling and DoRA's magnitude vectors.
    public var useRSLoRA: Bool?
    public var useDoRA: Bool?
    public var maskType: String?
    public var randomSeed: UInt64?
    public var swiftpeft: Details

    /// What this library needs to rebuild the adapter.
    public struct Details: Codable, Sendable {
        public var method: String
        public var options: MethodOptions
        public var classes: Int
        public var backbone: String
        public var baseFingerprint: String
        public var classNames: [String]?
        /// For staged methods (TTC, Pear): the stage-2 decision (selected channels, sharing map).
        public var stage: String?
        /// For fused adapters: the sources, weights and which head is stored (see `Fusion`).
        public var fusion: FusionRecord?
        /// The image side the adapter was trained at (absent for text models and in adapters saved before it was
        /// recorded); `predict` uses it so that answers do not depend on files next to the adapter.
        public var resolution: Int?
    }

    enum CodingKeys: String, CodingKey {
        case peftType = "peft_type", baseModelNameOrPath = "base_model_name_or_path", inferenceMode = "inference_mode"
        case targetModules = "target_modules", modulesToSave = "modules_to_save", r, loraAlpha = "lora_alpha"
        case loraDropout = "lora_dropout", maskType = "mask_type", randomSeed = "random_seed", swiftpeft
        case useRSLoRA = "use_rslora", useDoRA = "use_dora"
    }
}

/// Saving and loading adapters as a directory with `adapter_config.json` and `adapter_model.safetensors`, in the
/// Hugging Face peft layout: tensor keys are `base_model.model.` + the parameter path (e.g.
/// `base_model.model.dinov2.encoder.layer.0.attention.attention.query.lora_A.weight`); the classification head is
/// saved as `base_model.model.classifier.{weight,bias}`; a method may add integer tensors that record its adapters'
/// structure (`PEFTMethod.structureTensors`, SHiRA's `<layer>.shira_indices`) and frozen stage tensors
/// (`StagedMethod.stageState`).
public enum AdapterFiles {
    static let prefix = "base_model.model."

    static func peftType(for method: String) -> String {
        (try? MethodRegistry.descriptor(named: method))?.adapterPeftType ?? "SWIFTPEFT_\(method.uppercased())"
    }

    /// Writes the trainable parameters of `model` (adapter and head) to `directory` (files written atomically).
    public static func save(_ model: any Classifier, method: String, options: MethodOptions, baseModel: String,
                            classNames: [String]? = nil, resolution: Int? = nil, to directory: URL) throws {
        var configuration = makeConfiguration(
            method: method, options: options, baseModel: baseModel,
            details: .init(method: method, options: options, classes: model.classCount, backbone: model.backboneName,
                           baseFingerprint: model.baseFingerprint, classNames: classNames, resolution: resolution))
        var tensors: [String: Tensor] = [:]
        for (name, parameter) in model.trainableParameters { tensors[prefix + name] = parameter }
        let resolved = try MethodRegistry.method(named: method, options: options)
        if let staged = resolved as? any StagedMethod, staged.isPastFirstStage(model) {
            let stage = try staged.stageState(model)
            configuration.swiftpeft.stage = stage.json
            for (name, value) in stage.tensors { tensors[prefix + name] = value }
        }
        try write(configuration, tensors: tensors, integers: structureTensors(of: resolved, in: model), to: directory)
    }

    /// A config with peft's top-level fields for `method` and our `details`.
    static func makeConfiguration(method: String, options: MethodOptions, baseModel: String,
                                  details: AdapterConfiguration.Details) -> AdapterConfiguration {
        var configuration = AdapterConfiguration(peftType: peftType(for: method), baseModelNameOrPath: baseModel,
                                                 swiftpeft: details)
        (try? MethodRegistry.method(named: method, options: options))?.describe(into: &configuration)
        return configuration
    }

    /// `method`'s structure tensors of `module` under their file names.
    static func structureTensors(of method: any PEFTMethod, in module: any Module) -> [String: Int32Tensor] {
        Dictionary(uniqueKeysWithValues: method.structureTensors(in: module).map { (prefix + $0.key, $0.value) })
    }

    /// The tensors of `file` that hold parameter values: not integer (structure) tensors, not `staged`'s stage
    /// tensors.
    static func weightNames(in file: SafeTensorsFile, staged: (any StagedMethod)?) -> Set<String> {
        Set(file.names.filter { name in
            !(file.info(name)?.dtype.isInteger ?? false)
                && !(staged?.isStageTensor(String(name.dropFirst(prefix.count))) ?? false)
        })
    }


    /// Writes an adapter directory (`adapter_config.json` + `adapter_model.safetensors`) as a whole: the two files
    /// go into a staging directory that then replaces `directory` atomically, so a killed or failed write never
    /// leaves a config of one adapter next to the weights of another.
    public static func write(_ configuration: AdapterConfiguration, tensors: [String: Tensor],
                             integers: [String: Int32Tensor], to directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(configuration)
        try writeDirectoryAtomically(directory) { staging in
            try SafeTensors.write(tensors, int32: integers, metadata: ["format": "pt"],
                                  to: staging.appendingPathComponent("adapter_model.safetensors"))
            try writeFileAtomically(data, to: staging.appendingPathComponent("adapter_config.json"))
        }
    }

    /// At most this many classes in an adapter's head (a larger count in a config is refused before allocating).
    public static let maximumClasses = 100_000

    /// Reads `adapter_config.json` from an adapter directory and checks what would otherwise be trusted blindly:
    /// the class count (1...`maximumClasses`), the class names (one per class), the resolution (positive).
    public static func configuration(in directory: URL) throws -> AdapterConfiguration {
        let url = directory.appendingPathComponent("adapter_config.json")
        let configuration: AdapterConfiguration
        do {
            configuration = try decodeJSONFile(AdapterConfiguration.self, from: url, what: "adapter config")
        } catch let failure as RegularFile.Failure where failure.kind == .missing {
            throw ModuleError("\(url.path): missing (not an adapter directory?)")
        } catch {
            throw ModuleError("\(error)")
        }
        let details = configuration.swiftpeft
        // 0: an adapter of a module without a classification head (`ModuleAdapters`).
        guard details.classes >= 0 && details.classes <= maximumClasses else {
            throw ModuleError("\(url.path): 'swiftpeft.classes' is \(details.classes); it must be in 1...\(maximumClasses) (or 0 for a module adapter)")
        }
        if let names = details.classNames, names.count != details.classes {
            throw ModuleError("\(url.path): 'swiftpeft.classNames' has \(names.count) names for \(details.classes) classes")
        }
        if let resolution = details.resolution, resolution <= 0 {
            throw ModuleError("\(url.path): 'swiftpeft.resolution' is \(resolution); it must be positive")
        }
        return configuration
    }

    /// Attaches the adapter in `directory` to `model` (a classifier built on the base it was trained on, with a head
    /// of the adapter's class count) and loads its values. Refuses another base model, a head of the wrong size,
    /// missing, unexpected or mis-shaped tensors, with errors naming the file and tensor.
    ///
    /// With `headFrom`, the classification head comes from that other adapter directory (same base model) instead:
    /// this is how a fused adapter's body is used with the head of each task it fused (see `Fusion`).
    public static func load(from directory: URL, into model: any Classifier, headFrom headDirectory: URL? = nil) throws {
        let configuration = try configuration(in: directory)
        let details = configuration.swiftpeft
        let configPath = directory.appendingPathComponent("adapter_config.json").path
        guard details.classes >= 1 else {
            throw ModuleError("\(configPath): an adapter of a module without a classification head (saved by ModuleAdapters); load it with ModuleAdapters.load(from:into:)")
        }
        guard details.baseFingerprint == model.baseFingerprint else {
            throw ModuleError("\(configPath): the adapter was trained on base model '\(configuration.baseModelNameOrPath)' with weight fingerprint \(details.baseFingerprint); this model's base has fingerprint \(model.baseFingerprint)")
        }
        var headFile: SafeTensorsFile?
        if let headDirectory {
            let headConfiguration = try self.configuration(in: headDirectory)
            let headConfigPath = headDirectory.appendingPathComponent("adapter_config.json").path
            guard headConfiguration.swiftpeft.baseFingerprint == model.baseFingerprint else {
                throw ModuleError("\(headConfigPath): the head's adapter was trained on base fingerprint \(headConfiguration.swiftpeft.baseFingerprint); this model's base has fingerprint \(model.baseFingerprint)")
            }
            guard headConfiguration.swiftpeft.classes == model.classCount else {
                throw ModuleError("\(headConfigPath): the adapter's head has \(headConfiguration.swiftpeft.classes) classes, the model's \(model.classCount)")
            }
            headFile = try SafeTensorsFile(path: headDirectory.appendingPathComponent("adapter_model.safetensors").path)
        } else {
            guard details.classes == model.classCount else {
                throw ModuleError("\(configPath): the adapter's head has \(details.classes) classes, the model's \(model.classCount)")
            }
        }
        let weightsURL = directory.appendingPathComponent("adapter_model.safetensors")
        let file = try SafeTensorsFile(path: weightsURL.path)
        let method = try MethodRegistry.method(named: details.method, options: details.options)
        if try method.attachStored(from: file, to: model) {
            model.head.setRequiresGrad(true)
        } else {
            try method.apply(to: model)
            if let stage = details.stage, let staged = method as? any StagedMethod {
                var stageTensors: [String: Tensor] = [:]
                for key in file.names where staged.isStageTensor(String(key.dropFirst(prefix.count))) {
                    stageTensors[String(key.dropFirst(prefix.count))] = try file.tensor(key)
                }
                try staged.restoreStage(model, json: stage, tensors: stageTensors)
            }
        }
        var expected = weightNames(in: file, staged: method as? any StagedMethod)
        if headFile != nil { expected = expected.filter { !$0.hasPrefix(prefix + "classifier.") } }
        for (name, parameter) in model.trainableParameters {
            let key = prefix + name
            if let headFile, name.hasPrefix("classifier.") {
                guard headFile.contains(key) else { throw ModuleError("\(headFile.path): tensor '\(key)' is missing") }
                let value = try headFile.tensor(key)
                guard value.shape == parameter.shape else {
                    throw ModuleError("\(headFile.path): tensor '\(key)' has shape \(value.shape), the model expects \(parameter.shape)")
                }
                parameter.assign(value)
                continue
            }
            guard expected.remove(key) != nil else {
                throw ModuleError("\(weightsURL.path): tensor '\(key)' is missing")
            }
            let value = try file.tensor(key)
            guard value.shape == parameter.shape else {
                throw ModuleError("\(weightsURL.path): tensor '\(key)' has shape \(value.shape), the model expects \(parameter.shape)")
            }
            parameter.assign(value)
        }
        if let extra = expected.sorted().first {
            throw ModuleError("\(weightsURL.path): unexpected tensor '\(extra)' (no such parameter in this model)")
        }
    }
}
