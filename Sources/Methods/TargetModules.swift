import Layers

/// Which `Linear` layers a method adapts, with Hugging Face peft's matching rules:
/// - a single string is a regular expression that must match the whole module path;
/// - a list matches a path equal to an entry or ending in "." + entry;
/// - "all-linear" selects every Linear layer except the classification head.
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
