import Methods

/// A method as the suite runs it: a registered method, optionally with option assignments that make a variant,
/// written `name:key=value:key=value` (e.g. `lora:r=4:lora_alpha=4`, `shira:r=4:target_modules=query,value`,
/// `rlrr:identity_start=true`). Variants are cells of their own, so one table compares sizes and ablations of a
/// method. A piece without `=` continues the previous value, so `target_modules=re:...` regexes keep their colon.
public struct SuiteMethod: Sendable, Equatable {
    /// The text as given, which names the cell in tables and records.
    public let spec: String
    /// The registered method.
    public let name: String
    /// The "key=value" assignments, in order.
    public let assignments: [String]
    /// The method's configuration with the assignments applied (checked against its options).
    public let config: ConfigObject

    /// - Throws: ``TrainingError`` naming the spec when the method is unknown or an assignment is not one of its
    ///   options or not of the option's kind.
    public init(_ spec: String) throws {
        var pieces = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let name = pieces.removeFirst()
        guard MethodRegistry.names.contains(name) else {
            throw TrainingError("unknown method '\(name)' in '\(spec)'; valid methods: \(MethodRegistry.names.joined(separator: ", "))")
        }
        var assignments: [String] = []
        for piece in pieces {
            if piece.contains("=") || assignments.isEmpty {
                assignments.append(piece)
            } else {
                assignments[assignments.count - 1] += ":" + piece
            }
        }
        do {
            config = try MethodRegistry.descriptor(named: name).applying(assignments)
        } catch {
            throw TrainingError("method variant '\(spec)': \(error)")
        }
        self.spec = spec
        self.name = name
        self.assignments = assignments
    }

    /// The folder of this cell's records (see ``folderName(_:)``).
    public var directoryName: String { Self.folderName(spec) }

    /// The folder of a cell's records: the spec with `:` as `+` and anything unusual in file names as `_`
    /// (a plain method name is its own folder).
    public static func folderName(_ spec: String) -> String {
        String(spec.map { character -> Character in
            if character == ":" { return "+" }
            return character.isLetter || character.isNumber || "._=,+-".contains(character) ? character : "_"
        })
    }

    /// The method's default learning rate (variants share it).
    public var defaultLearningRate: Float { TrainingConfiguration.defaultLearningRate(method: name) }
}
