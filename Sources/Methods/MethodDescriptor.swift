import Foundation
import Layers

/// What a method can do beyond training, for the code that treats methods alike.
public enum MethodCapability: String, Sendable, CaseIterable {
    /// Its adapters fold into the base weights (`Merging`).
    case mergeable
    /// Adapters of it can be fused into one (`Fusion`).
    case fusable
    /// It changes what trains part-way through a run (`StagedMethod`).
    case staged
}

/// One option of a method as configs and the command line name it.
public struct MethodOptionSpec: Sendable, Equatable {
    /// The value kinds an option can take.
    public enum Kind: String, Sendable {
        case integer = "int", real = "float", boolean = "bool", text = "string"
        /// `all-linear`, `re:<regex>` or a comma-separated list of layer names (in configs: peft's list of names or
        /// regex string).
        case targets
    }
    /// The coding key of the option in its method's `Config`: the key of `--option key=value` and of adapter configs
    /// (Hugging Face peft's field name where peft has the method).
    public let key: String
    public let kind: Kind
    /// One line of help.
    public let help: String
    /// Whether peft's config class for the method has this field, so that it is also written at the top level of
    /// `adapter_config.json` where peft reads it.
    public let peft: Bool
    /// The field of the flat options that adapters and checkpoints saved before typed configs used for this option.
    public let legacyField: String?

    public init(_ key: String, _ kind: Kind, _ help: String, peft: Bool = false, legacyField: String? = nil) {
        self.key = key
        self.kind = kind
        self.help = help
        self.peft = peft
        self.legacyField = legacyField
    }

    /// peft's `target_modules`.
    public static func targetModules(legacyField: String = "targetModules") -> MethodOptionSpec {
        MethodOptionSpec("target_modules", .targets, "layers to adapt: names, re:<regex> or all-linear", peft: true,
                         legacyField: legacyField)
    }

    /// The seed of a method's own initialisation (default: the run's `--seed`).
    public static func seed(_ key: String = "seed", peft: Bool = false) -> MethodOptionSpec {
        MethodOptionSpec(key, .integer, "seed of the method's own initialisation (default: the run's --seed)", peft: peft,
                         legacyField: "seed")
    }

    /// The options every staged method has (see `StagedMethod`).
    public static let stageOptions = [
        MethodOptionSpec("stage_fraction", .real, "fraction of the epochs in the first stage", legacyField: "stageOneFraction"),
        MethodOptionSpec("scoring_batches", .integer, "batches used for Taylor scoring", legacyField: "scoringBatches"),
    ]

    /// Whether `value` is of this option's kind (a number for a real, a whole number for an integer, a list of
    /// names or a string for targets).
    public func accepts(_ value: ConfigValue) -> Bool {
        switch (kind, value) {
        case (.integer, .int), (.integer, .unsigned), (.boolean, .bool), (.text, .string): return true
        case (.real, .int), (.real, .unsigned): return true
        case (.real, .real(let number)): return number.isFinite
        case (.targets, .string(let text)): return !text.isEmpty
        case (.targets, .array(let items)):
            return !items.isEmpty && items.allSatisfy { if case .string(let name) = $0 { return !name.isEmpty } else { return false } }
        default: return false
        }
    }

    /// The value of `text` given on the command line for this option, or nil when it is not of the option's kind.
    public func parse(_ text: String) -> ConfigValue? {
        switch kind {
        case .integer:
            if let value = Int64(text) { return .int(value) }
            return UInt64(text).map(ConfigValue.unsigned)
        case .real:
            guard let value = Double(text), value.isFinite else { return nil }
            return .real(value)
        case .boolean:
            switch text.lowercased() {
            case "true", "1", "yes": return .bool(true)
            case "false", "0", "no": return .bool(false)
            default: return nil
            }
        case .text:
            return .string(text)
        case .targets:
            guard !text.isEmpty else { return nil }
            return TargetModules(parsing: text).configValue
        }
    }

    /// "an int", "a float", ... for messages.
    var kindText: String {
        switch kind {
        case .integer: return "an int"
        case .targets: return "a list of layer names or a regex string"
        default: return "a \(kind.rawValue)"
        }
    }
}

/// Everything the library knows about a method, declared in the method's own file: its name, a summary, its
/// Hugging Face peft type, default learning rate, capabilities, its typed configuration, and how to build it.
public struct MethodDescriptor: Sendable {
    public let name: String
    public let summary: String
    /// peft's `peft_type` for the method (nil: a method peft does not have; saved as `SWIFTPEFT_<NAME>`).
    public let peftType: String?
    public let defaultLearningRate: Float
    public let capabilities: Set<MethodCapability>
    /// The options of the method's `Config`.
    public let options: [MethodOptionSpec]
    /// The default configuration as JSON.
    public let defaultConfig: ConfigObject
    /// The key of the seed option, when the method has one.
    public let seedKey: String?
    private let build: @Sendable (ConfigObject) throws -> any PEFTMethod
    private let normalize: @Sendable (ConfigObject) throws -> ConfigObject

    /// A method whose configuration is `Config` and which `make` builds from one.
    public init<Config: MethodConfig>(name: String, summary: String, peftType: String? = nil,
                                      defaultLearningRate: Float = 1e-3, capabilities: Set<MethodCapability> = [],
                                      config: Config.Type = Config.self,
                                      make: @escaping @Sendable (Config) -> any PEFTMethod) {
        self.name = name
        self.summary = summary
        self.peftType = peftType
        self.defaultLearningRate = defaultLearningRate
        self.capabilities = capabilities
        options = Config.options
        defaultConfig = Config().values
        seedKey = Config.options.contains { $0.key == Config.seedKey } ? Config.seedKey : nil
        build = { make(try Config.decoded(from: $0)) }
        normalize = { try Config.decoded(from: $0).values }
    }

    /// A method without options (its configuration is `EmptyConfig`).
    public init(name: String, summary: String, peftType: String? = nil, defaultLearningRate: Float = 1e-3,
                capabilities: Set<MethodCapability> = [], make: @escaping @Sendable () -> any PEFTMethod) {
        self.init(name: name, summary: summary, peftType: peftType, defaultLearningRate: defaultLearningRate,
                  capabilities: capabilities, config: EmptyConfig.self, make: { _ in make() })
    }

    /// The `peft_type` written into adapter configs.
    public var adapterPeftType: String { peftType ?? "SWIFTPEFT_\(name.uppercased())" }

    /// The method configured by `config` (missing keys keep their defaults).
    public func make(_ config: ConfigObject = [:]) throws -> any PEFTMethod {
        do { return try build(config) } catch { throw ModuleError("method '\(name)': \(error)") }
    }

    /// `config` checked: every known key holds a value of its option's kind that the method's `Config` accepts;
    /// returned complete (defaults filled in, unknown keys dropped).
    public func validated(_ config: ConfigObject) throws -> ConfigObject {
        do { return try normalize(config) } catch { throw ModuleError("method '\(name)': \(error)") }
    }

    /// `config` with `seed` as the method's seed (when it has one).
    public func seeded(_ config: ConfigObject, with seed: UInt64) -> ConfigObject {
        guard let seedKey else { return config }
        var config = config
        config[seedKey] = seed <= UInt64(Int64.max) ? .int(Int64(seed)) : .unsigned(seed)
        return config
    }

    /// The option called `key`, or an error listing the valid ones and their kinds.
    public func option(_ key: String) throws -> MethodOptionSpec {
        guard let spec = options.first(where: { $0.key == key }) else {
            let valid = options.isEmpty ? "it has none" : "valid ones: " + options.map { "\($0.key) (\($0.kind.rawValue))" }.joined(separator: ", ")
            throw ModuleError("method '\(name)' has no option '\(key)'; \(valid)")
        }
        return spec
    }

    /// `config` with `assignments` ("key=value", keys from `options`) applied and checked. Unknown keys and values
    /// of the wrong kind are refused with the list of valid keys and their kinds.
    public func applying(_ assignments: [String], to config: ConfigObject = [:]) throws -> ConfigObject {
        var config = config
        for assignment in assignments {
            guard let equals = assignment.firstIndex(of: "=") else {
                throw ModuleError("--option '\(assignment)': expected key=value")
            }
            let key = String(assignment[..<equals]).trimmingCharacters(in: .whitespaces)
            let text = String(assignment[assignment.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
            let spec = try option(key)
            guard let value = spec.parse(text) else {
                throw ModuleError("method '\(name)': option \(key) takes \(spec.kindText), got '\(text)'")
            }
            config[key] = value
        }
        return try validated(config)
    }

    /// The configuration of adapters and checkpoints saved before typed configs, from their flat options (each
    /// option's `legacyField`).
    public func config(fromLegacyOptions legacy: ConfigObject) -> ConfigObject {
        var config: ConfigObject = [:]
        for spec in options {
            guard let field = spec.legacyField, let value = legacy[field] else { continue }
            config[spec.key] = spec.kind == .targets ? TargetModules(legacyValue: value)?.configValue : value
        }
        return config
    }

    /// The default value of every option, as text (for `peft methods NAME`).
    public func defaults() -> [String: String] {
        var result: [String: String] = [:]
        for spec in options {
            switch defaultConfig[spec.key] {
            case nil, .null?: result[spec.key] = "unset"
            case .string(let text)?: result[spec.key] = text
            case let value? where spec.kind == .targets: result[spec.key] = TargetModules(configValue: value)?.description ?? "\(value)"
            case let value?: result[spec.key] = "\(value)"
            }
        }
        return result
    }
}

/// The methods known to the library: the built-in ones, and those a program adds with `register`.
public enum MethodRegistry {
    private final class Storage: @unchecked Sendable {
        let lock = NSLock()
        var descriptors: [MethodDescriptor]
        init(_ descriptors: [MethodDescriptor]) { self.descriptors = descriptors }
    }

    private static let storage = Storage([
        LinearProbe.descriptor, FullFineTuning.descriptor, BitFit.descriptor, LayerNormTuning.descriptor,
        LoRA.descriptor, BottleneckAdapterMethod.descriptor, VisualPromptTuning.descriptor, SHiRA.descriptor,
        NEAT.descriptor, RLRR.descriptor, TTC.descriptor, Pear.descriptor, IA3.descriptor,
    ])

    /// Every known method, built-in first, in registration order.
    public static var all: [MethodDescriptor] {
        storage.lock.lock(); defer { storage.lock.unlock() }
        return storage.descriptors
    }

    /// Adds a method (e.g. one a program defines itself), so that the trainer, the adapter files and the command
    /// line can use it by name. A name already taken is refused.
    public static func register(_ descriptor: MethodDescriptor) throws {
        storage.lock.lock(); defer { storage.lock.unlock() }
        guard !storage.descriptors.contains(where: { $0.name == descriptor.name }) else {
            throw ModuleError("a method called '\(descriptor.name)' is already registered")
        }
        storage.descriptors.append(descriptor)
    }

    /// The descriptor of the method called `name`.
    public static func descriptor(named name: String) throws -> MethodDescriptor {
        guard let descriptor = all.first(where: { $0.name == name }) else {
            throw ModuleError("unknown method '\(name)'; choose one of: \(names.joined(separator: ", "))")
        }
        return descriptor
    }

    /// Name and one-line description of every method.
    public static var descriptions: [(String, String)] { all.map { ($0.name, $0.summary) } }

    /// Names accepted by `--method`.
    public static var names: [String] { all.map(\.name) }

    /// The method called `name`, configured by `config` (missing keys keep their defaults).
    public static func method(named name: String, config: ConfigObject = [:]) throws -> any PEFTMethod {
        try descriptor(named: name).make(config)
    }
}
