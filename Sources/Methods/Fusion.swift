import Checkpoints
import Engine
import Foundation
import Layers

/// A method whose adapters can be fused: the weighted sum of several adapters' updates stored as one adapter of
/// the same method (LoRA and SHiRA implement it in their own files).
public protocol FusableMethod: PEFTMethod {
    /// The fused body of `adapters` (same method and base, already checked) with weights `weights`: its config
    /// (from the first adapter, with the method's fields updated), its tensors and integer tensors without the
    /// head, and a line describing it.
    func fuse(_ adapters: [Fusion.Adapter], weights: [Float]) throws -> Fusion.Result
}

/// Weighted fusion of several adapters of one method trained on one base model, written as a single adapter.
///
/// For adapters 1..n with weights w_i (any real numbers; they need not sum to 1), the fused adapter's update is
/// exactly sum_i w_i Delta_i; how that is stored is the method's (`FusableMethod`). Every adapter must use the
/// same fusable method and base model (fingerprint) and adapt the same layers with matching shapes. Other methods
/// are refused: their updates are not linear in their parameters (NEAT, RLRR, TTC, Pear), or they add tokens or
/// branches (VPT, adapters).
///
/// Classification heads are per task and are never mixed. The fused adapter stores the fused body update plus
/// the head of one source adapter (`headFrom`, default the first), so it loads, merges and predicts like any
/// adapter for that task. To use the fused body for the task of another source adapter, load it with that
/// adapter's head: `AdapterFiles.load(from: fused, into: model, headFrom: adapterOfTask)`. The config's
/// `swiftpeft.fusion` section lists the sources (paths, weights, class counts) in order.
public enum Fusion {
    /// Methods that can be fused.
    public static var fusableMethods: [String] { MethodRegistry.all.filter { $0.capabilities.contains(.fusable) }.map(\.name) }

    /// The tensors of one adapter directory.
    public struct Adapter {
        public let directory: URL
        public let configuration: AdapterConfiguration
        public var tensors: [String: Tensor]
        public var integers: [String: [Int32]]

        var weightsPath: String { directory.appendingPathComponent("adapter_model.safetensors").path }

        /// Reads `adapter_config.json` and every tensor of `adapter_model.safetensors`.
        public init(directory: URL) throws {
            self.directory = directory
            configuration = try AdapterFiles.configuration(in: directory)
            let path = directory.appendingPathComponent("adapter_model.safetensors").path
            var tensors: [String: Tensor] = [:], integers: [String: [Int32]] = [:]
            let method = try? MethodRegistry.method(named: configuration.swiftpeft.method, config: configuration.swiftpeft.config)
            do {
                let file = try AdapterFiles.openWeights(URL(fileURLWithPath: path))
                for name in file.names {
                    // Integer tensors record structure (SHiRA's masks), checked by their method.
                    if file.info(name)?.dtype.isInteger ?? false {
                        try method?.validateStructureTensor(name, in: file)
                        integers[name] = try file.int32Values(name)
                    } else {
                        tensors[name] = try file.tensor(name)
                    }
                }
            } catch {
                let text = "\(error)"
                throw ModuleError(text.contains(path) ? text : "\(path): cannot read the adapter weights (\(text))")
            }
            self.tensors = tensors
            self.integers = integers
        }

        /// An adapter from parts (tests, or adapters built in memory).
        public init(directory: URL, configuration: AdapterConfiguration, tensors: [String: Tensor],
                    integers: [String: [Int32]] = [:]) {
            self.directory = directory
            self.configuration = configuration
            self.tensors = tensors
            self.integers = integers
        }
    }

    /// The fused adapter: its config and tensors (written by `write`).
    public struct Result {
        public var configuration: AdapterConfiguration
        public var tensors: [String: Tensor]
        public var integers: [String: Int32Tensor]
        /// Layers adapted.
        public var layers: Int
        /// What the method made of the sources ("rank 16", "1200 positions ..."), for the command's summary.
        public var summary: String

        public init(configuration: AdapterConfiguration, tensors: [String: Tensor], integers: [String: Int32Tensor],
                    layers: Int, summary: String) {
            self.configuration = configuration
            self.tensors = tensors
            self.integers = integers
            self.layers = layers
            self.summary = summary
        }
    }

    static let prefix = AdapterFiles.prefix
    static func isHead(_ key: String) -> Bool { key.hasPrefix(prefix + "classifier.") }

    /// Fuses adapter directories and writes the result to `output` (see the type's documentation).
    @discardableResult
    public static func fuse(_ directories: [URL], weights: [Float], headFrom: Int = 0, to output: URL) throws -> Result {
        let adapters = try directories.map { try Adapter(directory: $0) }
        let result = try fuse(adapters, weights: weights, headFrom: headFrom)
        try write(result, to: output)
        return result
    }

    /// Writes a fused adapter in the usual adapter layout.
    public static func write(_ result: Result, to directory: URL) throws {
        try AdapterFiles.write(result.configuration, tensors: result.tensors, integers: result.integers, to: directory)
    }

    /// Fuses adapters already read.
    public static func fuse(_ adapters: [Adapter], weights: [Float], headFrom: Int = 0) throws -> Result {
        guard adapters.count >= 2 else { throw ModuleError("fusion needs at least two adapters, got \(adapters.count)") }
        guard weights.count == adapters.count else {
            throw ModuleError("\(weights.count) fusion weights for \(adapters.count) adapters (\(adapters.map(\.directory.path).joined(separator: ", "))); give one weight per adapter")
        }
        guard weights.allSatisfy({ $0.isFinite }) else { throw ModuleError("fusion weights must be finite, got \(weights)") }
        guard adapters.indices.contains(headFrom) else {
            throw ModuleError("head-from index \(headFrom) is out of range for \(adapters.count) adapters")
        }
        let first = adapters[0]
        let method = first.configuration.swiftpeft.method
        for adapter in adapters {
            let config = adapter.directory.appendingPathComponent("adapter_config.json").path
            let details = adapter.configuration.swiftpeft
            guard Fusion.fusableMethods.contains(details.method) else {
                throw ModuleError("\(config): method '\(details.method)' cannot be fused (fusion supports \(fusableMethods.joined(separator: ", ")))")
            }
            guard details.method == method else {
                throw ModuleError("\(config): method '\(details.method)' differs from '\(method)' in \(first.directory.path); fuse adapters of one method")
            }
            guard details.baseFingerprint == first.configuration.swiftpeft.baseFingerprint,
                  details.backbone == first.configuration.swiftpeft.backbone else {
                throw ModuleError("\(config): trained on base '\(adapter.configuration.baseModelNameOrPath)' (fingerprint \(details.baseFingerprint)), but \(first.directory.path) on '\(first.configuration.baseModelNameOrPath)' (fingerprint \(first.configuration.swiftpeft.baseFingerprint)); fuse adapters of one base model")
            }
            guard details.stage == nil else { throw ModuleError("\(config): staged adapters cannot be fused") }
            for (key, value) in adapter.tensors where !isHead(key) {
                guard value.values.allSatisfy({ $0.isFinite }) else {
                    throw ModuleError("\(adapter.weightsPath): tensor '\(key)' holds NaN or infinite values")
                }
            }
        }
        guard let fusable = try MethodRegistry.method(named: method, config: first.configuration.swiftpeft.config)
                as? any FusableMethod else {
            throw ModuleError("\(first.directory.path): method '\(method)' has no fusion (it does not implement FusableMethod)")
        }
        var result = try fusable.fuse(adapters, weights: weights)
        // The head of one task, unchanged.
        let head = adapters[headFrom]
        for (key, value) in head.tensors where isHead(key) { result.tensors[key] = value }
        guard result.tensors.keys.contains(where: isHead) else {
            throw ModuleError("\(head.weightsPath): no classifier head (base_model.model.classifier.*)")
        }
        // The body's config, with the head's task: its classes, class names and resolution.
        var configuration = result.configuration
        configuration.swiftpeft.classes = head.configuration.swiftpeft.classes
        configuration.swiftpeft.classNames = head.configuration.swiftpeft.classNames
        configuration.swiftpeft.resolution = head.configuration.swiftpeft.resolution
        configuration.swiftpeft.fusion = FusionRecord(
            sources: adapters.map(\.directory.path), weights: weights, headFrom: headFrom,
            classes: adapters.map(\.configuration.swiftpeft.classes))
        result.configuration = configuration
        return result
    }

    /// Layer paths (with the prefix) of the tensors ending in `suffix`.
    static func layers(_ adapter: Adapter, suffix: String, in keys: some Sequence<String>) -> Set<String> {
        Set(keys.filter { $0.hasSuffix(suffix) }.map { String($0.dropLast(suffix.count)) })
    }

    static func sameLayers(_ adapters: [Adapter], suffix: String, keys: (Adapter) -> [String]) throws -> [String] {
        let reference = layers(adapters[0], suffix: suffix, in: keys(adapters[0]))
        guard !reference.isEmpty else {
            throw ModuleError("\(adapters[0].weightsPath): no '*\(suffix)' tensors; not a \(adapters[0].configuration.swiftpeft.method) adapter")
        }
        for adapter in adapters.dropFirst() {
            let own = layers(adapter, suffix: suffix, in: keys(adapter))
            if let missing = reference.subtracting(own).sorted().first ?? own.subtracting(reference).sorted().first {
                throw ModuleError("\(adapter.weightsPath): adapts other layers than \(adapters[0].weightsPath) (first difference: '\(missing)')")
            }
        }
        return reference.sorted()
    }

}

/// Where a fused adapter came from (stored in `adapter_config.json` under `swiftpeft.fusion`).
public struct FusionRecord: Codable, Sendable, Equatable {
    /// Source adapter directories, in order.
    public var sources: [String]
    /// Weight w_i of each source.
    public var weights: [Float]
    /// Index of the source whose classification head is stored.
    public var headFrom: Int
    /// Class count of each source's head.
    public var classes: [Int]
}
