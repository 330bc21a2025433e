import Checkpoints
import Engine
import Foundation
import Layers

/// A method that can adapt any module built from the library's layers, not only a classifier.
public protocol ModuleAdaptingMethod: PEFTMethod {
    /// Attaches the method's adapters to `module`'s target layers and freezes its own weights; returns the paths.
    @discardableResult
    func attach(to module: any Module) throws -> [String]
}

extension LoRA: ModuleAdaptingMethod {}
extension SHiRA: ModuleAdaptingMethod {}

/// PEFT on a model of your own, in the spirit of Hugging Face peft's `get_peft_model`: any `Module` made of the
/// library's layers (its `Linear` layers are what the methods adapt). Attach a method by target names, train with
/// `LossTrainer` on your own loss, save and load the adapter in the peft layout, and merge it with
/// `Merging.mergeLinearAdapters(in:)`.
///
/// ```swift
/// let lora = LoRA(config: .init { $0.targetModules = .names(["up", "down"]) })
/// try lora.attach(to: model)
/// // ... train ...
/// try ModuleAdapters.save(model, method: lora, baseModel: "my-model", to: folder)
/// try ModuleAdapters.load(from: folder, into: freshModel)
/// ```
public enum ModuleAdapters {
    /// The method called `name` (LoRA with its variants, SHiRA), configured by `config`, attached to `module`.
    @discardableResult
    public static func attach(_ name: String, config: ConfigObject = [:], to module: any Module) throws -> [String] {
        guard let method = try MethodRegistry.method(named: name, config: config) as? any ModuleAdaptingMethod else {
            throw ModuleError("method '\(name)' adapts classifiers only; on a plain module use one of: \(moduleMethods.joined(separator: ", "))")
        }
        return try method.attach(to: module)
    }

    /// Names of the registered methods that can adapt any module.
    public static var moduleMethods: [String] {
        MethodRegistry.all.filter { (try? $0.make()) is any ModuleAdaptingMethod }.map(\.name)
    }

    /// A fingerprint of `module`'s weights except `excluded` paths (the adapter's own and any other trained
    /// parameters), so that an adapter is loaded only into the base it was trained on.
    static func baseFingerprint(_ module: any Module, excluding excluded: Set<String>) -> String {
        weightFingerprint(of: fingerprintEntries(module, prefix: "").filter { !excluded.contains($0.0) })
    }

    /// Writes `module`'s trainable parameters (the adapters, and anything else that trains) and SHiRA masks to
    /// `directory` in the peft layout (`base_model.model.<path>`), with a config naming `baseModel` and, when given,
    /// peft's `taskType` (e.g. `CAUSAL_LM` for a decoder, which `AutoPeftModelForCausalLM` needs).
    /// Files named in `preserving` that the directory already holds are kept (the whole directory is replaced at once).
    public static func save(_ module: any Module, method: any PEFTMethod, baseModel: String, taskType: String? = nil,
                            to directory: URL, preserving kept: [String] = []) throws {
        let trainable = module.namedParameters().filter { $0.1.requiresGrad }
        guard !trainable.isEmpty else { throw ModuleError("nothing in the module trains: attach a method first") }
        let fingerprint = baseFingerprint(module, excluding: Set(trainable.map(\.0)))
        let configuration = AdapterFiles.makeConfiguration(
            method, baseModel: baseModel,
            details: .init(method: method.name, config: method.config.values, classes: 0, backbone: "module",
                           baseFingerprint: fingerprint))
        var configured = configuration
        configured.modulesToSave = []  // no head: the trainable parameters are all saved as the adapter
        if let taskType { configured.peftFields["task_type"] = .string(taskType) }
        var tensors: [String: Tensor] = [:]
        for (name, parameter) in trainable { tensors[AdapterFiles.prefix + name] = parameter }
        try AdapterFiles.write(configured, tensors: tensors,
                               integers: AdapterFiles.structureTensors(of: method, in: module), to: directory,
                               preserving: kept)
    }

    /// Attaches the adapter saved in `directory` to `module` (a fresh copy of the base it was trained on) and
    /// loads its values. Refuses another base, and missing, unexpected or mis-shaped tensors, naming the file.
    public static func load(from directory: URL, into module: any Module) throws {
        let configuration = try AdapterFiles.configuration(in: directory)
        let details = configuration.swiftpeft
        let configPath = directory.appendingPathComponent("adapter_config.json").path
        guard details.classes == 0 else {
            throw ModuleError("\(configPath): a classifier's adapter (\(details.classes) classes); load it with AdapterFiles.load(from:into:)")
        }
        let weightsPath = directory.appendingPathComponent("adapter_model.safetensors").path
        let file = try SafeTensorsFile(path: weightsPath)
        let method = try MethodRegistry.method(named: details.method, config: details.config)
        // Our parameter path of each stored tensor -> its name in the file.
        var stored: [String: String] = [:]
        for key in AdapterFiles.weightNames(in: file, staged: nil) {
            stored[String(AdapterFiles.canonicalTensorName(key).dropFirst(AdapterFiles.prefix.count))] = key
        }
        let saved = Set(stored.keys)
        let fingerprint = baseFingerprint(module, excluding: saved)
        // An adapter saved by peft records no fingerprint of its base (only its name).
        guard details.savedByPeft || fingerprint == details.baseFingerprint else {
            throw ModuleError("\(configPath): the adapter was trained on base '\(configuration.baseModelNameOrPath)' with weight fingerprint \(details.baseFingerprint); this module's is \(fingerprint)")
        }
        if try !method.attachStored(from: file, to: module) {
            try attach(details.method, config: details.config, to: module)
        }
        let parameters = Dictionary(module.namedParameters(), uniquingKeysWith: { first, _ in first })
        for (name, key) in stored.sorted(by: { $0.key < $1.key }) {
            guard let parameter = parameters[name] else {
                throw ModuleError("\(weightsPath): unexpected tensor '\(key)' (no such parameter in this module)")
            }
            let value = try file.tensor(key)
            guard value.shape == parameter.shape else {
                throw ModuleError("\(weightsPath): tensor '\(key)' has shape \(value.shape), the module expects \(parameter.shape)")
            }
            parameter.assign(value)
            parameter.requiresGrad = true
        }
        if let missing = module.namedParameters().first(where: { $0.1.requiresGrad && !saved.contains($0.0) }) {
            throw ModuleError("\(weightsPath): tensor '\(AdapterFiles.prefix + missing.0)' is missing")
        }
    }
}
