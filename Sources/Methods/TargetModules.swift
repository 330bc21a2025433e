import Layers

/// Which `Linear` layers a method adapts, with Hugging Face peft's matching rules:
/// - a single string is a regular expression that must match the whole module path;
/// - a list matches a path equal to an entry or ending in "." + entry;
/// - "all-linear" selects every Linear layer except the classification head.
///
/// Encoded as peft writes `target_modules`: a list of names, or one string (a regex, or "all-linear").
public enum TargetModules: Codable, Sendable, Equatable {
    case names([String])
    case pattern(String)
    case allLinear

    /// Parses a command-line value: "all-linear", "re:<regex>", or a comma-separated list of names.
    public init(parsing text: String) {
        if text == "all-linear" { self = .allLinear }
        else if text.hasPrefix("re:") { self = .pattern(String(text.dropFirst(3))) }
        else { self = .names(text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }
    }

    /// The value as a config holds it: a list of names, or a string.
    public var configValue: ConfigValue {
        switch self {
        case .names(let names): return .array(names.map(ConfigValue.string))
        case .pattern(let pattern): return .string(pattern)
        case .allLinear: return .string("all-linear")
        }
    }

    /// peft's form: a list of names, or a string ("all-linear" or a regex).
    public init?(configValue: ConfigValue) {
        switch configValue {
        case .string(let text): self = text == "all-linear" ? .allLinear : .pattern(text)
        case .array(let items):
            var names: [String] = []
            for case .string(let name) in items { names.append(name) }
            guard names.count == items.count else { return nil }
            self = .names(names)
        default: return nil
        }
    }

    /// The form of adapters saved before typed configs (`{"names": {"_0": [...]}}`, `{"pattern": {"_0": "..."}}`,
    /// `{"allLinear": {}}`), or peft's.
    init?(legacyValue: ConfigValue) {
        guard case .object(let object) = legacyValue else {
            self.init(configValue: legacyValue)
            return
        }
        if case .object(let inner)? = object["names"], let names = inner["_0"], case .array = names {
            self.init(configValue: names)
        } else if case .object(let inner)? = object["pattern"], case .string(let pattern)? = inner["_0"] {
            self = .pattern(pattern)
        } else if object["allLinear"] != nil {
            self = .allLinear
        } else {
            return nil
        }
    }

    public init(from decoder: Decoder) throws {
        let value = try ConfigValue(from: decoder)
        guard let targets = TargetModules(legacyValue: value) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription:
                "expected a list of layer names or a regex string, got \(value)"))
        }
        self = targets
    }

    public func encode(to encoder: Encoder) throws { try configValue.encode(to: encoder) }

    /// Whether the module at `path` is targeted.
    public func matches(_ path: String) -> Bool {
        switch self {
        case .allLinear:
            return !(path == "classifier" || path.hasSuffix(".classifier"))
        case .names(let names):
            return names.contains { path == $0 || path.hasSuffix("." + $0) }
        case .pattern(let pattern):
            guard let regex = try? Regex(pattern) else { return false }
            return (try? regex.wholeMatch(in: path)) != nil
        }
    }

    /// The Linear layers of `model` this selects, by path; throws when none match (naming what exists).
    public func select(in model: any Module) throws -> [(String, Linear)] {
        if case .pattern(let pattern) = self, (try? Regex(pattern)) == nil {
            throw ModuleError("target_modules: '\(pattern)' is not a valid regular expression")
        }
        let linears = model.namedModules().compactMap { path, module in (module as? Linear).map { (path, $0) } }
        let selected = linears.filter { matches($0.0) && !($0.0 == "classifier") }
        if selected.isEmpty {
            let leafNames = Set(linears.map { $0.0.split(separator: ".").last.map(String.init) ?? $0.0 }).sorted()
            throw ModuleError("target_modules \(self) matched no Linear layer; layer names in this model: \(leafNames.joined(separator: ", "))")
        }
        return selected
    }

    /// The value as written in adapter configs: a list of names or a regex string.
    public var description: String {
        switch self {
        case .allLinear: return "all-linear"
        case .names(let names): return names.joined(separator: ",")
        case .pattern(let pattern): return "re:" + pattern
        }
    }
}
