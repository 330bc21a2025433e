import Checkpoints
import Engine
import Foundation
import Layers

/// Weighted fusion of several adapters of one method trained on one base model, written as a single adapter.
///
/// Semantics, for adapters 1..n with weights w_i (any real numbers; they need not sum to 1):
///
/// - LoRA: the fused update of every adapted layer is exactly sum_i w_i s_i B_i A_i, where s_i = alpha_i / r_i is
///   adapter i's own scale. It is stored as one LoRA of rank R = sum_i r_i with alpha = R (scale 1):
///   B = [w_1 s_1 B_1, ..., w_n s_n B_n] (columns concatenated, [out, R]) and A = [A_1; ...; A_n] (rows
///   concatenated, [R, in]), so B A equals the weighted sum with no approximation (Hugging Face peft's
///   `add_weighted_adapter(combination_type="cat")`, with the weight applied to B only).
/// - SHiRA: the fused mask is the union of the masks; the value at a position is sum_i w_i v_i over the adapters
///   whose mask contains it (positions shared by several masks add; a position in one mask keeps w_i v_i). The
///   dense update is therefore exactly sum_i w_i S_i.
///
/// Every adapter must use the same method and base model (fingerprint) and adapt the same layers with matching
/// shapes (LoRA: the same target layers; SHiRA masks may differ). Other methods are refused: their updates are not
/// linear in their parameters (NEAT, RLRR, TTC, Pear), or they add tokens or branches (VPT, adapters).
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
            do {
                let file = try SafeTensorsFile(path: path)
                for name in file.names {
                    if name.hasSuffix(".shira_indices") {
                        let mask = try ShiraIndices.read(name, from: file)
                        integers[name] = mask.rows + mask.columns
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
        /// Layers adapted, and for SHiRA the stored positions before and after the union.
        public var layers: Int
        public var positionsBefore: Int
        public var positionsAfter: Int
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
        var result: Result
        switch method {
        case "lora": result = try fuseLoRA(adapters, weights: weights)
        default: result = try fuseSHiRA(adapters, weights: weights)
        }
        // The head of one task, unchanged.
        let head = adapters[headFrom]
        for (key, value) in head.tensors where isHead(key) { result.tensors[key] = value }
        guard result.tensors.keys.contains(where: isHead) else {
            throw ModuleError("\(head.weightsPath): no classifier head (base_model.model.classifier.*)")
        }
        var configuration = head.configuration
        configuration.r = result.configuration.r
        configuration.loraAlpha = result.configuration.loraAlpha
        configuration.swiftpeft.options = result.configuration.swiftpeft.options
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

    static func fuseLoRA(_ adapters: [Adapter], weights: [Float]) throws -> Result {
        if let dora = adapters.first(where: { $0.configuration.swiftpeft.options.useDoRA }) {
            throw ModuleError("\(dora.weightsPath): a DoRA adapter cannot be fused (its magnitudes rescale whole weights, which no sum of low-rank updates reproduces)")
        }
        let layerKeys = try sameLayers(adapters, suffix: ".lora_A.weight") { Array($0.tensors.keys) }
        // Every tensor must be a LoRA factor or the head.
        for adapter in adapters {
            if let other = adapter.tensors.keys.sorted().first(where: { !isHead($0) && !$0.hasSuffix(".lora_A.weight") && !$0.hasSuffix(".lora_B.weight") }) {
                throw ModuleError("\(adapter.weightsPath): unexpected tensor '\(other)' in a LoRA adapter")
            }
        }
        let ranks = adapters.map(\.configuration.swiftpeft.options.rank)
        let total = ranks.reduce(0, +)
        var tensors: [String: Tensor] = [:]
        for layer in layerKeys {
            var aParts: [Tensor] = [], bParts: [Tensor] = []
            var shape: (out: Int, in: Int)?
            for (index, adapter) in adapters.enumerated() {
                guard let a = adapter.tensors[layer + ".lora_A.weight"], let b = adapter.tensors[layer + ".lora_B.weight"] else {
                    throw ModuleError("\(adapter.weightsPath): tensor '\(layer).lora_B.weight' is missing")
                }
                let rank = ranks[index]
                guard a.shape.count == 2, b.shape.count == 2, a.shape[0] == rank, b.shape[1] == rank else {
                    throw ModuleError("\(adapter.weightsPath): '\(layer)' has lora_A \(a.shape) and lora_B \(b.shape), not rank \(rank) as its config says")
                }
                if let shape, shape != (b.shape[0], a.shape[1]) {
                    throw ModuleError("\(adapter.weightsPath): '\(layer)' is \(b.shape[0]) x \(a.shape[1]), but \(shape.out) x \(shape.in) in \(adapters[0].weightsPath)")
                }
                shape = (b.shape[0], a.shape[1])
                let options = adapter.configuration.swiftpeft.options
                let scale = options.loraScale
                aParts.append(a)
                bParts.append(Autograd.withoutGrad { b.scaled(by: weights[index] * scale) })
            }
            tensors[layer + ".lora_A.weight"] = Autograd.withoutGrad { concat(aParts, axis: 0) }
            tensors[layer + ".lora_B.weight"] = Autograd.withoutGrad { concat(bParts, axis: 1) }
        }
        var configuration = adapters[0].configuration
        configuration.r = total
        configuration.loraAlpha = Float(total)
        configuration.swiftpeft.options.rank = total
        configuration.swiftpeft.options.alpha = Float(total)
        configuration.swiftpeft.options.dropout = 0
        configuration.swiftpeft.options.useRSLoRA = false  // each source's own scale is folded into B
        configuration.useRSLoRA = false
        return Result(configuration: configuration, tensors: tensors, integers: [:], layers: layerKeys.count,
                      positionsBefore: 0, positionsAfter: 0)
    }

    static func fuseSHiRA(_ adapters: [Adapter], weights: [Float]) throws -> Result {
        let layerKeys = try sameLayers(adapters, suffix: ".shira_indices") { Array($0.integers.keys) }
        for adapter in adapters {
            if let other = adapter.tensors.keys.sorted().first(where: { !isHead($0) && !$0.hasSuffix(".shira_weight") }) {
                throw ModuleError("\(adapter.weightsPath): unexpected tensor '\(other)' in a SHiRA adapter")
            }
        }
        var tensors: [String: Tensor] = [:], integers: [String: Int32Tensor] = [:]
        var before = 0, after = 0
        for layer in layerKeys {
            var fused: [Int64: Float] = [:]
            for (index, adapter) in adapters.enumerated() {
                let indices = adapter.integers[layer + ".shira_indices"] ?? []
                guard let values = adapter.tensors[layer + ".shira_weight"] else {
                    throw ModuleError("\(adapter.weightsPath): tensor '\(layer).shira_weight' is missing")
                }
                let count = values.count
                guard indices.count == 2 * count, values.shape.count == 1 else {
                    throw ModuleError("\(adapter.weightsPath): '\(layer)' has \(indices.count / 2) mask positions for \(count) values")
                }
                guard indices.allSatisfy({ $0 >= 0 }) else {
                    throw ModuleError("\(adapter.weightsPath): tensor '\(layer).shira_indices' holds negative positions")
                }
                var seen = Set<Int64>()
                for i in 0..<count {
                    let key = Int64(indices[i]) << 32 | Int64(indices[count + i])
                    guard seen.insert(key).inserted else {
                        throw ModuleError("\(adapter.weightsPath): tensor '\(layer).shira_indices' repeats position (\(indices[i]), \(indices[count + i]))")
                    }
                    fused[key, default: 0] += weights[index] * values.data[i]
                }
                before += count
            }
            let keys = fused.keys.sorted()
            after += keys.count
            tensors[layer + ".shira_weight"] = Tensor(shape: [keys.count], values: keys.map { fused[$0]! })
            integers[layer + ".shira_indices"] = Int32Tensor(shape: [2, keys.count],
                                                             values: keys.map { Int32($0 >> 32) } + keys.map { Int32($0 & 0xFFFF_FFFF) })
        }
        return Result(configuration: adapters[0].configuration, tensors: tensors, integers: integers,
                      layers: layerKeys.count, positionsBefore: before, positionsAfter: after)
    }

    /// For SHiRA adapters: each adapter's mask size and the number of positions shared by each pair (i, j),
    /// summed over the layers.
    public static func maskOverlap(_ adapters: [Adapter]) -> (counts: [Int], shared: [[Int]]) {
        func positions(_ adapter: Adapter) -> [String: Set<Int64>] {
            var result: [String: Set<Int64>] = [:]
            for (key, indices) in adapter.integers where key.hasSuffix(".shira_indices") {
                let count = indices.count / 2
                result[key] = Set((0..<count).map { Int64(indices[$0]) << 32 | Int64(indices[count + $0]) })
            }
            return result
        }
        let all = adapters.map(positions)
        let counts = all.map { $0.values.reduce(0) { $0 + $1.count } }
        let shared = all.map { a in
            all.map { b in a.reduce(0) { total, entry in total + (b[entry.key].map { entry.value.intersection($0).count } ?? 0) } }
        }
        return (counts, shared)
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
