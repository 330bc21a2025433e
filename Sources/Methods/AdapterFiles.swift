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
    /// peft's `target_modules`: written as a list of names, or one string (a regex, or "all-linear").
    public var targetModules: TargetModules?
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

    public init(peftType: String, baseModelNameOrPath: String, swiftpeft: Details) {
        self.peftType = peftType
        self.baseModelNameOrPath = baseModelNameOrPath
        self.swiftpeft = swiftpeft
    }

    /// Decodes as peft writes configs: `base_model_name_or_path` and `modules_to_save` may be null, fields may be
    /// missing (they keep their defaults), unknown fields are ignored.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        peftType = try container.decode(String.self, forKey: .peftType)
        baseModelNameOrPath = try container.decodeIfPresent(String.self, forKey: .baseModelNameOrPath) ?? ""
        inferenceMode = try container.decodeIfPresent(Bool.self, forKey: .inferenceMode) ?? true
        if let names = try? container.decodeIfPresent([String].self, forKey: .targetModules) {
            targetModules = .names(names)
        } else if let text = try? container.decodeIfPresent(String.self, forKey: .targetModules) {
            targetModules = text == "all-linear" ? .allLinear : .pattern(text)
        }
        modulesToSave = try container.decodeIfPresent([String].self, forKey: .modulesToSave) ?? []
        r = try container.decodeIfPresent(Int.self, forKey: .r)
        loraAlpha = try container.decodeIfPresent(Float.self, forKey: .loraAlpha)
        loraDropout = try container.decodeIfPresent(Float.self, forKey: .loraDropout)
        useRSLoRA = try container.decodeIfPresent(Bool.self, forKey: .useRSLoRA)
        useDoRA = try container.decodeIfPresent(Bool.self, forKey: .useDoRA)
        maskType = try container.decodeIfPresent(String.self, forKey: .maskType)
        randomSeed = try container.decodeIfPresent(UInt64.self, forKey: .randomSeed)
        swiftpeft = try container.decode(Details.self, forKey: .swiftpeft)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(peftType, forKey: .peftType)
        try container.encode(baseModelNameOrPath, forKey: .baseModelNameOrPath)
        try container.encode(inferenceMode, forKey: .inferenceMode)
        switch targetModules {
        case .names(let names): try container.encode(names, forKey: .targetModules)
        case .pattern(let pattern): try container.encode(pattern, forKey: .targetModules)
        case .allLinear: try container.encode("all-linear", forKey: .targetModules)
        case nil: break
        }
        try container.encode(modulesToSave, forKey: .modulesToSave)
        try container.encodeIfPresent(r, forKey: .r)
        try container.encodeIfPresent(loraAlpha, forKey: .loraAlpha)
        try container.encodeIfPresent(loraDropout, forKey: .loraDropout)
        try container.encodeIfPresent(useRSLoRA, forKey: .useRSLoRA)
        try container.encodeIfPresent(useDoRA, forKey: .useDoRA)
        try container.encodeIfPresent(maskType, forKey: .maskType)
        try container.encodeIfPresent(randomSeed, forKey: .randomSeed)
        try container.encode(swiftpeft, forKey: .swiftpeft)
    }

    enum CodingKeys: String, CodingKey {
        case peftType = "peft_type", baseModelNameOrPath = "base_model_name_or_path", inferenceMode = "inference_mode"
        case targetModules = "target_modules", modulesToSave = "modules_to_save", r, loraAlpha = "lora_alpha"
        case loraDropout = "lora_dropout", maskType = "mask_type", randomSeed = "random_seed", swiftpeft
        case useRSLoRA = "use_rslora", useDoRA = "use_dora"
    }
}

/// A top-level field of a config as far as method options need it (JSON booleans and numbers kept apart).
enum ConfigFieldValue: Decodable, Equatable, CustomStringConvertible {
    case null, bool(Bool), number(Double), string(String), strings([String]), other

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let flag = try? container.decode(Bool.self) { self = .bool(flag) }
        else if let number = try? container.decode(Double.self) { self = .number(number) }
        else if let string = try? container.decode(String.self) { self = .string(string) }
        else if let strings = try? container.decode([String].self) { self = .strings(strings) }
        else { self = .other }
    }

    var description: String {
        switch self {
        case .null: return "null"
        case .bool(let flag): return "\(flag)"
        case .number(let number): return number == number.rounded() && abs(number) < 1e15 ? "\(Int(number))" : "\(number)"
        case .string(let string): return "\"\(string)\""
        case .strings(let strings): return "\(strings)"
        case .other: return "an object or a mixed list"
        }
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
        let resolved = try MethodRegistry.method(named: method, options: options)
        var configuration = makeConfiguration(
            resolved, baseModel: baseModel,
            details: .init(method: method, options: options, classes: model.classCount, backbone: model.backboneName,
                           baseFingerprint: model.baseFingerprint, classNames: classNames, resolution: resolution))
        var tensors: [String: Tensor] = [:]
        for (name, parameter) in model.trainableParameters { tensors[prefix + name] = parameter }
        if let staged = resolved as? any StagedMethod, staged.isPastFirstStage(model) {
            let stage = try staged.stageState(model)
            configuration.swiftpeft.stage = stage.json
            for (name, value) in stage.tensors { tensors[prefix + name] = value }
        }
        try write(configuration, tensors: tensors, integers: structureTensors(of: resolved, in: model), to: directory)
    }

    /// A config with `method`'s peft top-level fields and our `details`.
    static func makeConfiguration(_ method: any PEFTMethod, baseModel: String,
                                  details: AdapterConfiguration.Details) -> AdapterConfiguration {
        var configuration = AdapterConfiguration(peftType: peftType(for: details.method), baseModelNameOrPath: baseModel,
                                                 swiftpeft: details)
        method.describe(into: &configuration)
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
        var configuration: AdapterConfiguration
        let topLevel: [String: ConfigFieldValue]
        do {
            let data = try RegularFile.read(url)
            configuration = try decodeJSON(AdapterConfiguration.self, from: data, path: url.path, what: "adapter config")
            topLevel = try JSONDecoder().decode([String: ConfigFieldValue].self, from: data)
        } catch let failure as RegularFile.Failure where failure.kind == .missing {
            throw ModuleError("\(url.path): missing (not an adapter directory?)")
        } catch {
            throw ModuleError("\(error)")
        }
        try applyPeftFields(topLevel, to: &configuration, path: url.path)
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

    /// Makes the top-level peft fields the truth: every option of the adapter's method whose key (peft's field name:
    /// `r`, `lora_alpha`, `target_modules`, `use_dora`, `mask_type`, ...) is at the top level of the config overrides
    /// the value in `swiftpeft.options`, so a config edited the peft way is applied as edited. A value of the wrong
    /// kind is refused naming the file and the field.
    static func applyPeftFields(_ topLevel: [String: ConfigFieldValue], to configuration: inout AdapterConfiguration,
                                path: String) throws {
        guard let descriptor = try? MethodRegistry.descriptor(named: configuration.swiftpeft.method) else { return }
        var assignments: [String] = []
        for spec in descriptor.options {
            guard let value = topLevel[spec.key], value != .null else { continue }
            func refuse() -> ModuleError {
                ModuleError("\(path): '\(spec.key)' is \(value); method '\(descriptor.name)' takes a\(spec.kind == .integer ? "n" : "") \(spec.kind == .targets ? "list of layer names or a regex string" : spec.kind.rawValue) there")
            }
            let text: String
            switch (spec.kind, value) {
            case (.boolean, .bool(let flag)): text = flag ? "true" : "false"
            case (.integer, .number(let number)):
                guard number == number.rounded(), abs(number) < 1e15 else { throw refuse() }
                text = String(Int(number))
            case (.real, .number(let number)): text = "\(number)"
            case (.text, .string(let string)): text = string
            // peft: a list of names (suffix match), or one string that is a regex (or "all-linear").
            case (.targets, .strings(let names)) where !names.isEmpty && names.allSatisfy({ !$0.isEmpty && !$0.contains(",") }):
                text = names.joined(separator: ",")
            case (.targets, .string(let pattern)) where !pattern.isEmpty:
                text = pattern == "all-linear" ? pattern : "re:" + pattern
            default: throw refuse()
            }
            assignments.append(spec.key + "=" + text)
        }
        do {
            configuration.swiftpeft.options = try descriptor.applying(assignments, to: configuration.swiftpeft.options)
        } catch {
            throw ModuleError("\(path): \(error)")
        }
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
