import Engine

/// A building block with named parameters and named children.
///
/// Parameter paths are dotted (`encoder.layer.0.attention.attention.query.weight`) and are the names used in
/// checkpoints, in `target_modules` patterns and in optimiser state.
public protocol Module: AnyObject {
    /// This module's own parameters, by local name, in a fixed order.
    var ownParameters: [(String, Tensor)] { get }
    /// Direct sub-modules, by local name, in a fixed order.
    var children: [(String, any Module)] { get }
}

extension Module {
    public var ownParameters: [(String, Tensor)] { [] }
    public var children: [(String, any Module)] { [] }

    /// Every parameter of this module and its descendants, by dotted path, in a fixed order.
    public func namedParameters(prefix: String = "") -> [(String, Tensor)] {
        var result: [(String, Tensor)] = []
        for (name, tensor) in ownParameters { result.append((prefix + name, tensor)) }
        for (name, child) in children { result += child.namedParameters(prefix: prefix + name + ".") }
        return result
    }

    /// Every module by dotted path ("" for self), parents before children.
    public func namedModules(prefix: String = "") -> [(String, any Module)] {
        var result: [(String, any Module)] = [(prefix, self)]
        for (name, child) in children {
            let path = prefix.isEmpty ? name : prefix + "." + name
            result += child.namedModules(prefix: path)
        }
        return result
    }

    /// The parameters only.
    public var parameters: [Tensor] { namedParameters().map(\.1) }

    /// Total number of parameter elements.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Values of the frozen weights held quantised (not in `parameters`: they have no float32 tensor).
    public var quantizedParameterCount: Int {
        namedModules().reduce(0) { total, entry in
            guard let layer = entry.1 as? Linear, layer.computesQuantized, let matrix = layer.quantizedWeight else { return total }
            return total + matrix.rows * matrix.columns
        }
    }

    /// Number of parameter elements with `requiresGrad`.
    public var trainableParameterCount: Int { parameters.filter(\.requiresGrad).reduce(0) { $0 + $1.count } }

    /// Sets `requiresGrad` on every parameter.
    public func setRequiresGrad(_ flag: Bool) { for p in parameters { p.requiresGrad = flag } }

    /// Clears every parameter's gradient.
    public func zeroGrad() { for p in parameters { p.grad = nil } }

    /// Parameter values by dotted path (the tensors themselves, not copies).
    public func stateDict() -> [String: Tensor] { Dictionary(namedParameters(), uniquingKeysWith: { a, _ in a }) }

    /// Copies values from `state` into the parameters with the same paths.
    /// - Parameters:
    ///   - strict: when true, every parameter must be present and no extra keys may remain.
    ///   - source: a file name or description used in error messages.
    /// - Returns: the keys of `state` that matched no parameter (empty when strict).
    @discardableResult
    public func load(_ state: [String: Tensor], strict: Bool = true, source: String = "state") throws -> [String] {
        var unused = Set(state.keys)
        var missing: [String] = []
        for (path, parameter) in namedParameters() {
            guard let value = state[path] else { missing.append(path); continue }
            unused.remove(path)
            guard value.shape == parameter.shape else {
                throw ModuleError("\(source): tensor '\(path)' has shape \(value.shape), the model expects \(parameter.shape)")
            }
            parameter.assign(value)
        }
        if strict {
            if !missing.isEmpty {
                throw ModuleError("\(source): missing \(missing.count) tensor(s): \(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? ", ..." : "")")
            }
            if !unused.isEmpty {
                let extra = unused.sorted()
                throw ModuleError("\(source): \(extra.count) unexpected tensor(s): \(extra.prefix(5).joined(separator: ", "))\(extra.count > 5 ? ", ..." : "")")
            }
        }
        return unused.sorted()
    }
}

/// Whether modules run in training mode (dropout active): `ExecutionContext.current.isTraining`, bound by the
/// trainer around each training step's forward pass.
public enum ModelMode {
    public static var isTraining: Bool { ExecutionContext.current.isTraining }
    /// Seed of the current training step; stochastic layers (dropout) derive their randomness from it so that a
    /// resumed run draws the same numbers as an uninterrupted one.
    public static var stepSeed: UInt64 { ExecutionContext.current.stepSeed }

    /// Runs `body` (a forward pass) in training mode with the step's seed.
    public static func training<R>(stepSeed: UInt64, _ body: () throws -> R) rethrows -> R {
        try ExecutionContext.with({ $0.isTraining = true; $0.stepSeed = stepSeed }, body)
    }
}

/// An error about module structure or parameter loading.
public struct ModuleError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
