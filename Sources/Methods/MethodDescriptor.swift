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
        /// `all-linear`, `re:<regex>` or a comma-separated list of layer names.
        case targets
    }
    /// The key in `--option key=value` (Hugging Face peft's field name where peft has the method).
    public let key: String
    /// The `MethodOptions` field it sets.
    public let field: String
    public let kind: Kind
    /// One line of help.
    public let help: String

    public init(_ key: String, field: String, _ kind: Kind, _ help: String) {
        self.key = key
        self.field = field
        self.kind = kind
        self.help = help
    }

    /// peft's `target_modules`, setting `field`.
    public static func targetModules(field: String = "targetModules") -> MethodOptionSpec {
        MethodOptionSpec("target_modules", field: field, .targets, "layers to adapt: names, re:<regex> or all-linear")
    }

    /// The options every staged method has (see `StagedMethod`).
    public static let stageOptions = [
        MethodOptionSpec("stage_fraction", field: "stageOneFraction", .real, "fraction of the epochs in the first stage"),
        MethodOptionSpec("scoring_batches", field: "scoringBatches", .integer, "batches used for Taylor scoring"),
    ]
}

/// Everything the library knows about a method, declared in the method's own file: its name, a summary, its
/// Hugging Face peft type, default learning rate, capabilities, options, and how to build it.
public struct MethodDescriptor: Sendable {
    public let name: String
    public let summary: String
    /// peft's `peft_type` for the method (nil: a method peft does not have; saved as `SWIFTPEFT_<NAME>`).
    public let peftType: String?
    public let defaultLearningRate: Float
    public let capabilities: Set<MethodCapability>
    public let options: [MethodOptionSpec]
    /// Builds the method from the shared options.
    public let make: @Sendable (MethodOptions) -> any PEFTMethod

    public init(name: String, summary: String, peftType: String? = nil, defaultLearningRate: Float = 1e-3,
                capabilities: Set<MethodCapability> = [], options: [MethodOptionSpec] = [],
                make: @escaping @Sendable (MethodOptions) -> any PEFTMethod) {
        self.name = name
        self.summary = summary
        self.peftType = peftType
        self.defaultLearningRate = defaultLearningRate
        self.capabilities = capabilities
        self.options = options
        self.make = make
    }

    /// The `peft_type` written into adapter configs.
    public var adapterPeftType: String { peftType ?? "SWIFTPEFT_\(name.uppercased())" }

    /// `options` with `assignments` ("key=value", keys from `self.options`) applied. Unknown keys and values
    /// of the wrong kind are refused with the list of valid keys and their kinds.
    public func applying(_ assignments: [String], to options: MethodOptions) throws -> MethodOptions {
        guard !assignments.isEmpty else { return options }
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(options)) as? [String: Any] ?? [:]
        for assignment in assignments {
            guard let equals = assignment.firstIndex(of: "=") else {
                throw ModuleError("--option '\(assignment)': expected key=value")
            }
            let key = String(assignment[..<equals]).trimmingCharacters(in: .whitespaces)
            let text = String(assignment[assignment.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
            guard let spec = self.options.first(where: { $0.key == key }) else {
                let valid = self.options.isEmpty ? "it has none" : "valid ones: " + self.options.map { "\($0.key) (\($0.kind.rawValue))" }.joined(separator: ", ")
                throw ModuleError("method '\(name)' has no option '\(key)'; \(valid)")
            }
            object[spec.field] = try Self.value(text, for: spec, method: name)
        }
        let data = try JSONSerialization.data(withJSONObject: object)
        do { return try JSONDecoder().decode(MethodOptions.self, from: data) } catch {
            throw ModuleError("method '\(name)': the options do not form a valid configuration (\(error))")
        }
    }

    /// The JSON value of `text` for an option of `spec`'s kind.
    static func value(_ text: String, for spec: MethodOptionSpec, method: String) throws -> Any {
        func refuse() -> ModuleError {
            ModuleError("method '\(method)': option \(spec.key) takes a\(spec.kind == .integer ? "n" : "") \(spec.kind.rawValue), got '\(text)'")
        }
        switch spec.kind {
        case .integer:
            guard let value = Int(text) else { throw refuse() }
            return value
        case .real:
            guard let value = Double(text), value.isFinite else { throw refuse() }
            return value
        case .boolean:
            switch text.lowercased() {
            case "true", "1", "yes": return true
            case "false", "0", "no": return false
            default: throw refuse()
            }
        case .text:
            return text
        case .targets:
            let targets = TargetModules(parsing: text)
            return try JSONSerialization.jsonObject(with: JSONEncoder().encode(targets))
        }
    }

    /// The default value of every option, as text (for `peft methods NAME`).
    public func defaults() -> [String: String] {
        guard let data = try? JSONEncoder().encode(MethodOptions()),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        var result: [String: String] = [:]
        for spec in options {
            switch spec.kind {
            case .targets:
                if let value = object[spec.field], let json = try? JSONSerialization.data(withJSONObject: ["v": value]),
                   let decoded = try? JSONDecoder().decode([String: TargetModules].self, from: json)["v"] {
                    result[spec.key] = decoded.description
                }
            case .boolean:
                result[spec.key] = (object[spec.field] as? Bool).map { "\($0)" } ?? "unset"
            default:
                result[spec.key] = object[spec.field].map { "\($0)" } ?? "unset"
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
        NEAT.descriptor, RLRR.descriptor, TTC.descriptor, Pear.descriptor,
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

    /// The method called `name`, configured by `options`.
    public static func method(named name: String, options: MethodOptions = MethodOptions()) throws -> any PEFTMethod {
        try descriptor(named: name).make(options)
    }
}
