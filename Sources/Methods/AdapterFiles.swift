import Checkpoints
import Engine
import Foundation
import Layers
import Models

/// `adapter_config.json`: the Hugging Face peft fields (so peft tooling can read what it knows) plus a
/// `swiftpeft` section with everything needed to rebuild the adapter exactly.
public struct AdapterConfiguration: Codable, Sendable {
    /// peft's method name: LORA, SHIRA, PEANUT (NEAT), IA3, LN_TUNING (LayerNorm tuning), or SWIFTPEFT_<METHOD> for methods peft does not have.
    public var peftType: String
    public var baseModelNameOrPath: String
    public var inferenceMode = true
    public var modulesToSave = ["classifier"]
    /// Every other top-level field, as peft writes its configs: the method's fields that peft has (`r`,
    /// `lora_alpha`, `target_modules`, `use_dora`, `mask_type`, ...; written from `swiftpeft.config` by
    /// `setConfig`, and on reading they override it), and whatever else a peft-written config holds (kept as is).
    public var peftFields: ConfigObject = [:]
    public var swiftpeft: Details

    /// What this library needs to rebuild the adapter.
    public struct Details: Codable, Sendable {
        public var method: String
        /// The method's configuration (its `Config` as JSON).
        public var config: ConfigObject
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
        /// True for an adapter saved by Hugging Face peft itself (no `swiftpeft` section): its method comes from
        /// `peft_type`, its configuration from the top-level fields, its head size from the stored head; there is no
        /// base fingerprint to check. Not written.
        public var savedByPeft = false
        /// The top-level `target_modules` as written (under transformers' names): while the top level still holds
        /// them, `config`'s targets (ours) are used; an edited top level wins.
        public var writtenTargets: ConfigValue?

        public init(method: String, config: ConfigObject, classes: Int, backbone: String, baseFingerprint: String,
                    classNames: [String]? = nil, resolution: Int? = nil) {
            self.method = method
            self.config = config
            self.classes = classes
            self.backbone = backbone
            self.baseFingerprint = baseFingerprint
            self.classNames = classNames
            self.resolution = resolution
        }

        enum CodingKeys: String, CodingKey {
            case method, config, classes, backbone, baseFingerprint, classNames, stage, fusion, resolution
            case writtenTargets = "peftTargetModules"
            /// The flat options of adapters saved before typed configs.
            case options
        }

        /// Reads `config`, or the flat `options` of adapters saved before typed configs (through the method's
        /// descriptor).
        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            method = try container.decode(String.self, forKey: .method)
            if let config = try container.decodeIfPresent(ConfigObject.self, forKey: .config) {
                self.config = config
            } else if let legacy = try container.decodeIfPresent(ConfigObject.self, forKey: .options) {
                config = (try? MethodRegistry.descriptor(named: method))?.config(fromLegacyOptions: legacy) ?? [:]
            } else {
                config = [:]
            }
            classes = try container.decode(Int.self, forKey: .classes)
            backbone = try container.decode(String.self, forKey: .backbone)
            baseFingerprint = try container.decode(String.self, forKey: .baseFingerprint)
            classNames = try container.decodeIfPresent([String].self, forKey: .classNames)
            stage = try container.decodeIfPresent(String.self, forKey: .stage)
            fusion = try container.decodeIfPresent(FusionRecord.self, forKey: .fusion)
            resolution = try container.decodeIfPresent(Int.self, forKey: .resolution)
            writtenTargets = try container.decodeIfPresent(ConfigValue.self, forKey: .writtenTargets)
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(method, forKey: .method)
            try container.encode(config, forKey: .config)
            try container.encode(classes, forKey: .classes)
            try container.encode(backbone, forKey: .backbone)
            try container.encode(baseFingerprint, forKey: .baseFingerprint)
            try container.encodeIfPresent(classNames, forKey: .classNames)
            try container.encodeIfPresent(stage, forKey: .stage)
            try container.encodeIfPresent(fusion, forKey: .fusion)
            try container.encodeIfPresent(resolution, forKey: .resolution)
            try container.encodeIfPresent(writtenTargets, forKey: .writtenTargets)
        }
    }

    public init(peftType: String, baseModelNameOrPath: String, swiftpeft: Details) {
        self.peftType = peftType
        self.baseModelNameOrPath = baseModelNameOrPath
        self.swiftpeft = swiftpeft
    }

    /// Sets the method's configuration and the top-level fields peft has for it (`descriptor`'s options marked
    /// `peft`; a field the configuration leaves unset is removed).
    public mutating func setConfig(_ config: ConfigObject, of descriptor: MethodDescriptor) {
        swiftpeft.config = config
        for spec in descriptor.options where spec.peft {
            peftFields[spec.key] = config[spec.key].flatMap { $0 == .null ? nil : $0 }
        }
    }

    private struct Key: CodingKey {
        let stringValue: String
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    private static let ownKeys: Set<String> = ["peft_type", "base_model_name_or_path", "inference_mode", "modules_to_save", "swiftpeft"]

    /// Decodes as peft writes configs: `base_model_name_or_path` and `modules_to_save` may be null, fields may be
    /// missing (they keep their defaults), other fields are kept in `peftFields`.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        peftType = try container.decode(String.self, forKey: Key("peft_type"))
        // A registry model is written under its hub id and read back under its registry name.
        baseModelNameOrPath = PretrainedModels.registryName(
            of: try container.decodeIfPresent(String.self, forKey: Key("base_model_name_or_path")) ?? "")
        inferenceMode = try container.decodeIfPresent(Bool.self, forKey: Key("inference_mode")) ?? true
        modulesToSave = try container.decodeIfPresent([String].self, forKey: Key("modules_to_save")) ?? []
        for key in container.allKeys where !Self.ownKeys.contains(key.stringValue) {
            peftFields[key.stringValue] = try container.decode(ConfigValue.self, forKey: key)
        }
        if container.contains(Key("swiftpeft")) {
            swiftpeft = try container.decode(Details.self, forKey: Key("swiftpeft"))
        } else {
            // Saved by peft: the method whose peft type this is, configured by the top-level fields (applied later).
            let type = peftType
            guard let descriptor = MethodRegistry.all.first(where: { $0.peftType == type }) else {
                let known = MethodRegistry.all.compactMap(\.peftType).sorted().joined(separator: ", ")
                throw DecodingError.dataCorrupted(.init(codingPath: [Key("peft_type")], debugDescription:
                    "peft_type '\(type)' is not a method this library reads (it reads \(known))"))
            }
            swiftpeft = Details(method: descriptor.name, config: [:], classes: 0, backbone: "", baseFingerprint: "")
            swiftpeft.savedByPeft = true
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (key, value) in peftFields where !Self.ownKeys.contains(key) { try container.encode(value, forKey: Key(key)) }
        try container.encode(peftType, forKey: Key("peft_type"))
        try container.encode(PretrainedModels.hubID(of: baseModelNameOrPath), forKey: Key("base_model_name_or_path"))
        try container.encode(inferenceMode, forKey: Key("inference_mode"))
        // peft writes null when nothing besides the adapters is saved (a module without a head).
        if modulesToSave.isEmpty { try container.encodeNil(forKey: Key("modules_to_save")) } else {
            try container.encode(modulesToSave, forKey: Key("modules_to_save"))
        }
        try container.encode(swiftpeft, forKey: Key("swiftpeft"))
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

    /// Writes the trainable parameters of `model` (adapter and head), trained with `method`, to `directory` (files
    /// written atomically).
    ///
    /// Tensor names and the top-level `target_modules` are written under the module names of `naming`'s
    /// transformers release (default: the current one), which is what peft matches on that release; the private
    /// `swiftpeft` section keeps ours. Loading reads either.
    public static func save(_ model: any Classifier, method: any PEFTMethod, baseModel: String,
                            classNames: [String]? = nil, resolution: Int? = nil,
                            naming: TransformersNaming = .current, to directory: URL) throws {
        var configuration = makeConfiguration(
            method, baseModel: baseModel,
            details: .init(method: method.name, config: method.config.values, classes: model.classCount,
                           backbone: model.backboneName, baseFingerprint: model.baseFingerprint,
                           classNames: classNames, resolution: resolution))
        var tensors: [String: Tensor] = [:]
        for (name, parameter) in model.trainableParameters { tensors[prefix + name] = parameter }
        if let staged = method as? any StagedMethod, staged.isPastFirstStage(model) {
            let stage = try staged.stageState(model)
            configuration.swiftpeft.stage = stage.json
            for (name, value) in stage.tensors { tensors[prefix + name] = value }
        }
        if let mapping = autoMapping(of: model) { configuration.peftFields["auto_mapping"] = mapping }
        if let value = configuration.peftFields["target_modules"], let targets = TargetModules(configValue: value) {
            let written = TransformersNames.theirs(targets, in: model, naming: naming).configValue
            configuration.peftFields["target_modules"] = written
            if written != value { configuration.swiftpeft.writtenTargets = written }
        }
        for (key, value) in method.peftFields(in: model, naming: naming) { configuration.peftFields[key] = value }
        func theirs(_ key: String) -> String {
            prefix + TransformersNames.theirs(method.peftTensorName(String(key.dropFirst(prefix.count)), in: model), naming: naming)
        }
        try write(configuration, tensors: Dictionary(uniqueKeysWithValues: tensors.map { (theirs($0.key), $0.value) }),
                  integers: Dictionary(uniqueKeysWithValues: structureTensors(of: method, in: model).map { (theirs($0.key), $0.value) }),
                  to: directory)
    }

    /// The transformers class whose head is the same as `model`'s, as peft's `auto_mapping` names it (what
    /// `AutoPeftModel` builds the base from): image classifiers of DINOv2 (class token and mean patch) and ViT
    /// (class token). None for text classifiers: their mean-pooled head is not BertForSequenceClassification's.
    static func autoMapping(of model: any Classifier) -> ConfigValue? {
        guard let image = model as? ImageClassifier else { return nil }
        let (classes, library): (String, String)
        switch (model.backboneName, image.pooling) {
        case ("dinov2", .classAndPatchMean): (classes, library) = ("Dinov2ForImageClassification", "dinov2")
        case ("vit", .classToken): (classes, library) = ("ViTForImageClassification", "vit")
        default: return nil
        }
        return .object(["base_model_class": .string(classes), "parent_library": .string("transformers.models.\(library).modeling_\(library)")])
    }

    /// A config with our `details` and the method's peft top-level fields (for a registered method).
    static func makeConfiguration(_ method: any PEFTMethod, baseModel: String,
                                  details: AdapterConfiguration.Details) -> AdapterConfiguration {
        var configuration = AdapterConfiguration(peftType: peftType(for: details.method), baseModelNameOrPath: baseModel,
                                                 swiftpeft: details)
        if let descriptor = try? MethodRegistry.descriptor(named: method.name) {
            configuration.setConfig(details.config, of: descriptor)
        }
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
    /// leaves a config of one adapter next to the weights of another. Files named in `preserving` that the old
    /// directory holds are copied into the new one.
    public static func write(_ configuration: AdapterConfiguration, tensors: [String: Tensor],
                             integers: [String: Int32Tensor], to directory: URL, preserving kept: [String] = []) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(configuration)
        try writeDirectoryAtomically(directory) { staging in
            // Files of the old directory that live on next to the adapter (a run's checkpoint and log).
            for name in kept where FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path) {
                try FileManager.default.copyItem(at: directory.appendingPathComponent(name), to: staging.appendingPathComponent(name))
            }
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
        do {
            let data = try RegularFile.read(url)
            configuration = try decodeJSON(AdapterConfiguration.self, from: data, path: url.path, what: "adapter config")
        } catch let failure as RegularFile.Failure where failure.kind == .missing {
            throw ModuleError("\(url.path): missing (not an adapter directory?)")
        } catch {
            throw ModuleError("\(error)")
        }
        try applyPeftFields(to: &configuration, path: url.path)
        if configuration.swiftpeft.savedByPeft {
            configuration.swiftpeft.classes = try peftHeadClasses(in: directory)
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

    /// Makes the top-level peft fields the truth: every option of the adapter's method whose key (peft's field name:
    /// `r`, `lora_alpha`, `target_modules`, `use_dora`, `mask_type`, ...) is at the top level of the config overrides
    /// the value in `swiftpeft.config`, so a config edited the peft way is applied as edited. The result is checked
    /// against the method's `Config` (a value of the wrong kind is refused naming the file and the field) and stored
    /// complete in `swiftpeft.config`.
    static func applyPeftFields(to configuration: inout AdapterConfiguration, path: String) throws {
        guard let descriptor = try? MethodRegistry.descriptor(named: configuration.swiftpeft.method) else { return }
        var config = configuration.swiftpeft.config
        for spec in descriptor.options {
            guard let value = configuration.peftFields[spec.key], value != .null else { continue }
            // Targets this library wrote under transformers' names, unedited: ours (in `config`) say the same.
            if spec.key == "target_modules", value == configuration.swiftpeft.writtenTargets, config[spec.key] != nil { continue }
            config[spec.key] = value
        }
        do {
            configuration.swiftpeft.config = try descriptor.validated(config)
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
    /// Returns the method as applied (for a peft-saved adapter, its targets in this library's names), to save the
    /// adapter again with.
    @discardableResult
    public static func load(from directory: URL, into model: any Classifier, headFrom headDirectory: URL? = nil) throws -> any PEFTMethod {
        let configuration = try configuration(in: directory)
        let details = configuration.swiftpeft
        let configPath = directory.appendingPathComponent("adapter_config.json").path
        guard details.classes >= 1 else {
            throw ModuleError("\(configPath): an adapter of a module without a classification head (saved by ModuleAdapters); load it with ModuleAdapters.load(from:into:)")
        }
        guard details.savedByPeft || details.baseFingerprint == model.baseFingerprint else {
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
            headFile = try openWeights(headDirectory.appendingPathComponent("adapter_model.safetensors"))
        } else {
            guard details.classes == model.classCount else {
                throw ModuleError("\(configPath): the adapter's head has \(details.classes) classes, the model's \(model.classCount)")
            }
        }
        let weightsURL = directory.appendingPathComponent("adapter_model.safetensors")
        let file = try openWeights(weightsURL)
        let methodConfig = transformersTargets(details.config, in: model)
        let method = try MethodRegistry.method(named: details.method, config: methodConfig)
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
        // Our name of each stored tensor -> its name in the file view (already translated to ours).
        var expected: [String: String] = [:]
        for key in weightNames(in: file, staged: method as? any StagedMethod) where headFile == nil || !key.hasPrefix(prefix + "classifier.") {
            expected[canonicalTensorName(key)] = key
        }
        for (name, parameter) in model.trainableParameters {
            let key = prefix + name
            if let headFile, name.hasPrefix("classifier.") {
                guard headFile.contains(key) else { throw ModuleError("\(headFile.path): tensor '\(key)' is missing") }
                let value = try headFile.tensor(key)
                guard value.shape == parameter.shape else {
                    throw ModuleError("\(headFile.path): tensor '\(headFile.storedName(key))' has shape \(value.shape), the model expects \(parameter.shape)")
                }
                parameter.assign(value)
                continue
            }
            guard let stored = expected.removeValue(forKey: key) else {
                throw ModuleError("\(weightsURL.path): tensor '\(key)' is missing")
            }
            let value = try file.tensor(stored)
            guard value.shape == parameter.shape else {
                throw ModuleError("\(weightsURL.path): tensor '\(file.storedName(stored))' has shape \(value.shape), the model expects \(parameter.shape)")
            }
            parameter.assign(value)
        }
        if let extra = expected.values.sorted().first {
            throw ModuleError("\(weightsURL.path): unexpected tensor '\(file.storedName(extra))' (no such parameter in this model)")
        }
        return method
    }
}
