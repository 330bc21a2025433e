import Foundation
import Layers

/// A JSON value of a method's configuration (integers kept apart from reals, so ranks and seeds stay exact).
public enum ConfigValue: Codable, Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    /// An integer above `Int64.max` (a seed).
    case unsigned(UInt64)
    case real(Double)
    case string(String)
    case array([ConfigValue])
    case object([String: ConfigValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let flag = try? container.decode(Bool.self) { self = .bool(flag) }
        else if let integer = try? container.decode(Int64.self) { self = .int(integer) }
        else if let integer = try? container.decode(UInt64.self) { self = .unsigned(integer) }
        else if let number = try? container.decode(Double.self) { self = .real(number) }
        else if let text = try? container.decode(String.self) { self = .string(text) }
        else if let list = try? container.decode([ConfigValue].self) { self = .array(list) }
        else { self = .object(try container.decode([String: ConfigValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .int(let integer): try container.encode(integer)
        case .unsigned(let integer): try container.encode(integer)
        case .real(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        case .array(let list): try container.encode(list)
        case .object(let object): try container.encode(object)
        }
    }

    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let flag): return "\(flag)"
        case .int(let integer): return "\(integer)"
        case .unsigned(let integer): return "\(integer)"
        case .real(let number): return "\(number)"
        case .string(let text): return "\"\(text)\""
        case .array(let list): return "[" + list.map(\.description).joined(separator: ", ") + "]"
        case .object: return "an object"
        }
    }
}

/// A method's configuration as JSON: its keys are the method's option keys.
public typealias ConfigObject = [String: ConfigValue]

/// A method's typed configuration, declared in the method's own file: its coding keys are Hugging Face peft's field
/// names where peft has the method (`r`, `lora_alpha`, `target_modules`, ...), and `options` describes each key for
/// `--option key=value`, `peft methods NAME` and adapter configs. Decoding is lenient, as peft's is: missing keys
/// keep their defaults and unknown keys are ignored (see `decoded(from:)`).
public protocol MethodConfig: Codable, Sendable, Equatable {
    /// The defaults.
    init()
    /// Seed of the method's own initialisation (random factors, masks, prompts).
    var seed: UInt64 { get set }
    /// Every option, by its coding key.
    static var options: [MethodOptionSpec] { get }
    /// The coding key of `seed` (default "seed"; SHiRA's is peft's `random_seed`).
    static var seedKey: String { get }
    /// Keys options had before they were renamed (old -> current), read as the current key by `decoded(from:)`
    /// so that saved configurations keep loading (default none).
    static var renamedOptions: [String: String] { get }
}

extension MethodConfig {
    public static var seedKey: String { "seed" }
    public static var renamedOptions: [String: String] { [:] }

    /// The defaults changed by `edit`: `LoRA.Config { $0.r = 4; $0.useDoRA = true }`.
    public init(_ edit: (inout Self) -> Void) {
        self.init()
        edit(&self)
    }

    /// The configuration as JSON.
    public var values: ConfigObject {
        guard let data = try? JSONEncoder().encode(self),
              let object = try? JSONDecoder().decode(ConfigObject.self, from: data) else { return [:] }
        return object
    }

    /// The configuration `object` describes: its keys that are options of this type (or their former names,
    /// `renamedOptions`) override the defaults, other keys are ignored. A value the type cannot hold is refused
    /// naming the key.
    public static func decoded(from object: ConfigObject) throws -> Self {
        var object = object
        for (old, new) in renamedOptions where object[new] == nil {
            if let value = object.removeValue(forKey: old) { object[new] = value }
        }
        var merged = Self().values
        for spec in options {
            guard let value = object[spec.key] else { continue }
            guard value == .null || spec.accepts(value) else {
                throw ModuleError("'\(spec.key)' is \(value); it takes \(spec.kindText)")
            }
            merged[spec.key] = value
        }
        func decode(_ object: ConfigObject) throws -> Self {
            try JSONDecoder().decode(Self.self, from: JSONEncoder().encode(object))
        }
        do {
            return try decode(merged)
        } catch let error as DecodingError {
            // Name the option: the first whose value alone, over the defaults, does not decode.
            for spec in options {
                guard let value = object[spec.key] else { continue }
                var single = Self().values
                single[spec.key] = value
                do { _ = try decode(single) } catch let failure as DecodingError {
                    let reason = decodingErrorText(failure)
                    let detail = reason.contains("not valid JSON") ? "out of range for the option" : reason
                    throw ModuleError("'\(spec.key)' is \(value): \(detail)")
                }
            }
            throw ModuleError(decodingErrorText(error))
        }
    }
}

/// The text of a decoding error of a configuration: the key, then what was wrong.
func decodingErrorText(_ error: DecodingError) -> String {
    func place(_ path: [CodingKey]) -> String {
        let keys = path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
        return keys.isEmpty ? "" : "'\(keys.joined(separator: "."))': "
    }
    switch error {
    case .typeMismatch(let type, let context): return "\(place(context.codingPath))expected \(type)"
    case .valueNotFound(let type, let context): return "\(place(context.codingPath))expected \(type), found null"
    case .keyNotFound(let key, let context): return "\(place(context.codingPath + [key]))missing"
    case .dataCorrupted(let context): return "\(place(context.codingPath))\(context.debugDescription)"
    @unknown default: return "\(error)"
    }
}

/// The configuration of a method without options (the baselines, and a program's own simple methods).
public struct EmptyConfig: MethodConfig {
    public var seed: UInt64 = 0
    public init() {}
    public static var options: [MethodOptionSpec] { [] }
}

extension ConfigValue: ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByStringLiteral, ExpressibleByArrayLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .real(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: ConfigValue...) { self = .array(elements) }
}

extension ConfigValue {
    public init(_ value: Int) { self = .int(Int64(value)) }
    public init(_ value: UInt64) { self = value <= UInt64(Int64.max) ? .int(Int64(value)) : .unsigned(value) }
    public init(_ value: Float) { self = .real(Double(value)) }
    public init(_ value: Double) { self = .real(value) }
    public init(_ value: Bool) { self = .bool(value) }
    public init(_ value: String) { self = .string(value) }
}
