import Checkpoints
import Engine
import Layers
import Models

/// SHiRA, sparse high-rank adapters (Bhardwaj et al., 2024): train a small fraction of a frozen layer's weights
/// directly. With a fixed set M of positions (the mask) and trainable values s,
///
///     W' = W0 + alpha * S,   S[r, c] = s_i for (r, c) = M_i,  S = 0 elsewhere,
///
/// so the update has the layer's full rank while only |M| = density * out * in numbers train (or r (in + out) with
/// Hugging Face peft's sizing, option `r`). The gradient is
/// computed only at the mask (a sampled dense-dense product; see `sparseUpdateLinear`), and `alpha` can be
/// changed at inference. Values are stored flat (`shira_weight`, [nnz]) with static row-major-sorted indices
/// (`shira_indices`, int32 [2, nnz]) as in Hugging Face peft.
public final class ShiraAdapter: LinearAdapter {
    /// The trainable values, one per mask position.
    public let values: Tensor
    /// Mask positions, sorted by row then column.
    public let rows: [Int32]
    public let columns: [Int32]
    /// Scale alpha of the sparse update (1 while training; adjustable at inference).
    public var scale: Float = 1
    /// W0 + alpha S, refreshed at the mask positions on every forward (O(nnz)).
    /// W0 + alpha s for the unfused forward: a copy of the base weight made on the first unfused forward (training),
    /// never for an adapter that is only merged (serving), so a resident SHiRA adapter costs only its mask and values.
    private var fusedWeightCopy: Tensor?
    private let inFeatures: Int
    /// The base values at the mask positions while merged (restored exactly by unmerge).
    var savedBaseValues: [Float] = []
    /// Row-major positions of the mask in the [out, in] weight.
    let flatPositions: [Int]

    /// An adapter on `base` with values zero (the layer starts as the pretrained one).
    public init(base: Linear, rows: [Int32], columns: [Int32]) {
        precondition(rows.count == columns.count, "SHiRA: \(rows.count) rows for \(columns.count) columns")
        self.rows = rows
        self.columns = columns
        values = Tensor(zeros: [rows.count])
        values.requiresGrad = true
        inFeatures = base.inFeatures
        flatPositions = zip(rows, columns).map { Int($0) * base.inFeatures + Int($1) }
    }

    public var ownParameters: [(String, Tensor)] { [("shira_weight", values)] }

    /// Number of trainable values.
    public var nonzeroCount: Int { values.count }

    /// Flat (row-major) positions of the mask in a [out, in] weight.
    public func flatIndices(inFeatures: Int) -> [Int] {
        inFeatures == self.inFeatures ? flatPositions : zip(rows, columns).map { Int($0) * inFeatures + Int($1) }
    }

    /// The fused weight, up to date with `values` and the base at the mask positions.
    func refreshFusedWeight(from base: Linear) -> Tensor {
        let fusedWeight: Tensor
        if let existing = fusedWeightCopy { fusedWeight = existing } else {
            fusedWeight = base.weight.copy()
            fusedWeightCopy = fusedWeight
        }
        let fused = fusedWeight.data, original = base.weight.data, s = values.data, alpha = scale
        flatPositions.withUnsafeBufferPointer { positions in
            for i in 0..<positions.count { fused[positions[i]] = original[positions[i]] + alpha * s[i] }
        }
        return fusedWeight
    }

    public func forward(_ input: Tensor, base: Linear) -> Tensor {
        let fusedWeight = refreshFusedWeight(from: base)
        return sparseUpdateLinear(input, fusedWeight: fusedWeight, bias: base.bias, values: values,
                                  valueScale: scale, rows: rows, columns: columns)
    }

    /// The dense update alpha * S, [out, in].
    public func deltaWeight(outFeatures: Int, inFeatures: Int) -> Tensor {
        let delta = Tensor(zeros: [outFeatures, inFeatures])
        for (i, position) in flatIndices(inFeatures: inFeatures).enumerated() { delta.data[position] = scale * values.data[i] }
        return delta
    }
}

/// Reading a stored SHiRA mask (`<layer>.shira_indices`) with every check a hostile file needs.
public enum ShiraIndices {
    /// The rows and columns of the mask stored as `key` in `file`: an integer tensor of shape exactly [2, nnz]
    /// (row indices, then column indices) with nnz >= 1, no negative and (when `rows`/`columns` are given)
    /// no out-of-range position, and no position twice. Errors name the file and tensor.
    public static func read(_ key: String, from file: SafeTensorsFile, rows: Int? = nil, columns: Int? = nil) throws
        -> (rows: [Int32], columns: [Int32]) {
        let stored = file.storedName(key)
        let shape = file.info(key)?.shape ?? []
        guard shape.count == 2, shape[0] == 2, shape[1] >= 1 else {
            throw ModuleError("\(file.path): tensor '\(stored)' has shape \(shape); SHiRA indices are [2, nnz] (row indices, then column indices) with nnz >= 1")
        }
        let values = try file.int32Values(key)
        let count = shape[1]
        let r = Array(values[0..<count]), c = Array(values[count...])
        var seen = Set<Int64>()
        seen.reserveCapacity(count)
        for i in 0..<count {
            guard r[i] >= 0, c[i] >= 0, rows.map({ Int(r[i]) < $0 }) ?? true, columns.map({ Int(c[i]) < $0 }) ?? true else {
                let size = rows.map { "the \($0) x \(columns ?? 0) weight" } ?? "a weight"
                throw ModuleError("\(file.path): tensor '\(stored)' holds positions outside \(size) (entry \(i): (\(r[i]), \(c[i])))")
            }
            guard seen.insert(Int64(r[i]) << 32 | Int64(c[i])).inserted else {
                throw ModuleError("\(file.path): tensor '\(stored)' repeats position (\(r[i]), \(c[i])) (entry \(i))")
            }
        }
        return (r, c)
    }
}

/// How SHiRA chooses the positions that train.
public enum ShiraMask: String, Codable, Sendable, CaseIterable {
    /// The diagonal plus every f-th row (SHiRA-Struct): structured and high rank.
    case structured = "struct"
    /// Uniformly random positions (SHiRA-Rand; Hugging Face peft's default).
    case random = "rand"
    /// The largest |W0| (SHiRA-WM).
    case weightMagnitude = "wm"
    /// The largest |dL/dW| on calibration batches (SHiRA-Grad).
    case gradient = "grad"
    /// The largest |W0 * dL/dW| on calibration batches (SHiRA-SNIP).
    case snip = "snip"

    /// Whether the mask needs gradients from data.
    public var needsCalibration: Bool { self == .gradient || self == .snip }

    /// Encodes `.random` as Hugging Face peft's `mask_type` "random" (its only mask), the others by our names.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self == .random ? "random" : rawValue)
    }

    /// Decodes our names and Hugging Face peft's `mask_type` "random" (its only mask) as `.random`.
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let mask = text == "random" ? .random : ShiraMask(rawValue: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription:
                "unknown SHiRA mask '\(text)'; choose one of: \(ShiraMask.allCases.map(\.rawValue).joined(separator: ", ")) (or peft's 'random')"))
        }
        self = mask
    }
}

/// Mask construction. Every mask has exactly round(density * out * in) positions (at least 1), sorted.
public enum ShiraMaskBuilder {
    /// Number of positions for a layer of `out` x `in` at `density`.
    public static func count(out: Int, in inFeatures: Int, density: Double) -> Int {
        max(1, min(out * inFeatures, Int((density * Double(out * inFeatures)).rounded())))
    }

    /// The (rows, columns) of a mask, sorted by flat index.
    /// `part` (random masks only) takes block `part` of k positions from the seeded random order instead of the
    /// first, so the same generator state with different parts gives disjoint masks.
    public static func build(_ kind: ShiraMask, weight: Tensor, density: Double, gradient: Tensor? = nil,
                             part: Int = 0, generator: inout RandomGenerator) throws -> (rows: [Int32], columns: [Int32]) {
        let out = weight.shape[0], inFeatures = weight.shape[1]
        let k = count(out: out, in: inFeatures, density: density)
        var flat: [Int]
        switch kind {
        case .random:
            let (parts, overflow) = (part + 1).multipliedReportingOverflow(by: k)
            guard part >= 0, !overflow, parts <= out * inFeatures else {
                let needed = overflow ? "more than \(Int.max)" : "\(parts)"
                throw ModuleError("SHiRA mask part \(part) needs \(needed) positions; the \(out) x \(inFeatures) weight has \(out * inFeatures) (parts 0...\(out * inFeatures / k - 1) fit)")
            }
            // Partial Fisher-Yates. A later part runs on a copy of the generator and then advances the shared one
            // by k draws, as part 0 does, so every layer's order (and so each part's block) matches part 0's.
            var all = Array(0..<(out * inFeatures))
            var local = generator
            for i in 0..<((part + 1) * k) {
                let j = i + Int(local.next() % UInt64(all.count - i))
                all.swapAt(i, j)
            }
            for _ in 0..<k { _ = generator.next() }
            flat = Array(all[(part * k)..<((part + 1) * k)])
        case .weightMagnitude:
            flat = topK(k, count: weight.count) { abs(weight.data[$0]) }
        case .gradient, .snip:
            guard let gradient, gradient.count == weight.count else {
                throw ModuleError("SHiRA \(kind.rawValue) mask needs a gradient from calibration batches")
            }
            flat = kind == .gradient ? topK(k, count: weight.count) { abs(gradient.data[$0]) }
                : topK(k, count: weight.count) { abs(gradient.data[$0] * weight.data[$0]) }
        case .structured:
            flat = structured(k, out: out, in: inFeatures, generator: &generator)
        }
        flat.sort()
        return (flat.map { Int32($0 / inFeatures) }, flat.map { Int32($0 % inFeatures) })
    }

    /// Indices of the k largest scores (ties broken by lower index).
    static func topK(_ k: Int, count: Int, score: (Int) -> Float) -> [Int] {
        let scores = (0..<count).map(score)
        return Array((0..<count).sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }.prefix(k))
    }

    /// SHiRA-Struct: the main diagonal, then every f-th row with f chosen to reach k positions (the last row
    /// taken partly so the count is exact); random rows fill in if the stride runs out.
    static func structured(_ k: Int, out: Int, in inFeatures: Int, generator: inout RandomGenerator) -> [Int] {
        var chosen = Set<Int>(), order: [Int] = []
        func add(_ flat: Int) -> Bool {
            if chosen.count >= k { return false }
            if chosen.insert(flat).inserted { order.append(flat) }
            return chosen.count < k
        }
        for d in 0..<min(out, inFeatures) where !add(d * inFeatures + d) { break }
        let rowsNeeded = max(1, (k - chosen.count + inFeatures - 1) / inFeatures)
        let stride = max(1, out / rowsNeeded)
        var rows = Array(Swift.stride(from: 0, to: out, by: stride))
        var rest = Array(Set(0..<out).subtracting(rows)).sorted()
        rest.shuffle(using: &generator)
        rows += rest
        for r in rows {
            if chosen.count >= k { break }
            for c in 0..<inFeatures where !add(r * inFeatures + c) { break }
        }
        return order
    }
}

/// The SHiRA method: a `ShiraAdapter` on every target Linear layer with the chosen mask.
public struct SHiRA: PEFTMethod {
    /// peft's `ShiraConfig` fields (`r`, `mask_type`, `target_modules`, `random_seed`) and ours: the density
    /// sizing (the default) and the mask part.
    public struct Config: MethodConfig {
        /// Fraction of each target weight that trains.
        public var density = 0.01
        /// peft's sizing, r (in + out) trained positions per weight, instead of `density` (nil: size by density).
        public var r: Int?
        /// How the trained positions are chosen.
        public var maskType: ShiraMask = .random
        /// Which Linear layers get a sparse adapter.
        public var targetModules: TargetModules = .allLinear
        /// `rand` mask: which block of positions to take from the seeded random order of all positions (block p is
        /// positions p k ..< (p + 1) k). Masks with the same seed and different parts are disjoint (for fusion).
        public var maskPart = 0
        public var seed: UInt64 = 0
        public init() {}

        enum CodingKeys: String, CodingKey {
            case density, r, maskType = "mask_type", targetModules = "target_modules", maskPart = "mask_part"
            case seed = "random_seed"
        }

        public static var seedKey: String { "random_seed" }

        public static let options = [
            MethodOptionSpec("density", .real, "fraction of each target weight that trains, in (0, 1]", legacyField: "density"),
            MethodOptionSpec("r", .integer, "peft's sizing: r (in + out) trained positions per weight, instead of density", peft: true, legacyField: "shiraRank"),
            MethodOptionSpec("mask_type", .text, "struct, rand (peft's random), wm, grad or snip", peft: true, legacyField: "shiraMask"),
            .targetModules(legacyField: "shiraTargets"),
            MethodOptionSpec("mask_part", .integer, "rand mask: which block of the seeded order (disjoint masks for fusion)", legacyField: "shiraMaskPart"),
            .seed("random_seed", peft: true),
        ]
    }

    public let name = "shira"
    public let config: Config
    public init(config: Config = Config()) { self.config = config }

    public var calibrationBatches: Int { config.maskType.needsCalibration ? 8 : 0 }

    public func apply(to model: any Classifier) throws { try apply(to: model, calibration: []) }

    /// Attaches a `ShiraAdapter` to every target `Linear` layer of any module (a user's own model included) with a
    /// data-free mask (rand, struct or wm) and freezes the module's own weights. Returns the adapted paths.
    @discardableResult
    public func attach(to module: any Module) throws -> [String] {
        guard !config.maskType.needsCalibration else {
            throw ModuleError("SHiRA's \(config.maskType.rawValue) mask scores weights on labelled data; on a plain module use rand, struct or wm")
        }
        try checkDensity()
        let targets = try config.targetModules.select(in: module)
        module.setRequiresGrad(false)
        try attachMasks(to: targets, gradients: [:])
        return targets.map(\.0)
    }

    func checkDensity() throws {
        guard config.density > 0 && config.density <= 1 else {
            throw ModuleError("SHiRA density must be in (0, 1], got \(config.density)")
        }
        if let rank = config.r, !(1...Self.maximumRank).contains(rank) {
            throw ModuleError("SHiRA r (peft's sizing, r (in + out) positions per weight) must be in 1...\(Self.maximumRank), got \(rank)")
        }
    }

    /// The largest `r` of peft's sizing (a bound, so r (in + out) cannot overflow).
    static let maximumRank = 1 << 20

    /// The fraction of `layer`'s weight that trains: `density`, or r (in + out) / (out in) with peft's sizing
    /// (at most the whole weight).
    func density(of layer: Linear) -> Double {
        guard let rank = config.r else { return config.density }
        let size = Double(layer.outFeatures) * Double(layer.inFeatures)
        return min(1, Double(rank) * Double(layer.outFeatures + layer.inFeatures) / size)
    }

    /// Builds each target's mask (the gradient-scored masks from `gradients`) and attaches its adapter.
    func attachMasks(to targets: [(String, Linear)], gradients: [ObjectIdentifier: Tensor]) throws {
        var generator = RandomGenerator(seed: config.seed &+ 0x5_41_2A)
        for (_, layer) in targets {
            let mask = try ShiraMaskBuilder.build(config.maskType, weight: layer.weight, density: density(of: layer),
                                                  gradient: gradients[ObjectIdentifier(layer)],
                                                  part: config.maskPart, generator: &generator)
            layer.adapter = ShiraAdapter(base: layer, rows: mask.rows, columns: mask.columns)
        }
    }

    public func apply(to model: any Classifier, calibration: [(ClassifierInput, [Int])]) throws {
        try checkDensity()
        let targets = try config.targetModules.select(in: model.backbone)
        var gradients: [ObjectIdentifier: Tensor] = [:]
        if config.maskType.needsCalibration {
            guard !calibration.isEmpty else {
                throw ModuleError("SHiRA's \(config.maskType.rawValue) mask scores weights on data; give it calibration batches")
            }
            gradients = calibrationGradients(model: model, layers: targets.map(\.1), batches: calibration)
        }
        model.freezeBackbone()
        try attachMasks(to: targets, gradients: gradients)
    }

    /// Dense weight gradients of the target layers, summed over the calibration batches.
    func calibrationGradients(model: any Classifier, layers: [Linear], batches: [(ClassifierInput, [Int])]) -> [ObjectIdentifier: Tensor] {
        let previous = model.namedParameters().map { ($0.1, $0.1.requiresGrad) }
        model.setRequiresGrad(false)
        for layer in layers { layer.weight.requiresGrad = true; layer.weight.grad = nil }
        for (input, labels) in batches {
            crossEntropy(model.logits(input), labels: labels).backward()
        }
        var result: [ObjectIdentifier: Tensor] = [:]
        for layer in layers {
            result[ObjectIdentifier(layer)] = layer.weight.grad ?? Tensor(zeros: layer.weight.shape)
            layer.weight.grad = nil
        }
        for (parameter, flag) in previous { parameter.requiresGrad = flag }
        return result
    }
}

extension SHiRA {
    /// The masks are stored (`<layer>.shira_indices`), so they are read back rather than drawn again (a mask
    /// scored on data could not be).
    public func attachStored(from file: SafeTensorsFile, to module: any Module) throws -> Bool {
        module.setRequiresGrad(false)
        for (path, module) in module.namedModules() {
            guard let layer = module as? Linear else { continue }
            let key = AdapterFiles.prefix + path + ".shira_indices"
            guard file.contains(key) else { continue }
            let mask = try ShiraIndices.read(key, from: file, rows: layer.outFeatures, columns: layer.inFeatures)
            layer.adapter = ShiraAdapter(base: layer, rows: mask.rows, columns: mask.columns)
        }
        return true
    }

    /// The masks as `<layer>.shira_indices` int32 [2, nnz] tensors (rows, then columns), peft's layout.
    public func structureTensors(in module: any Module) -> [String: Int32Tensor] {
        var integers: [String: Int32Tensor] = [:]
        for (path, module) in module.namedModules() {
            guard let layer = module as? Linear, let shira = layer.adapter as? ShiraAdapter else { continue }
            integers[path + ".shira_indices"] = Int32Tensor(shape: [2, shira.rows.count], values: shira.rows + shira.columns)
        }
        return integers
    }

    /// A mask must be [2, nnz] with no negative and no repeated position.
    public func validateStructureTensor(_ name: String, in file: SafeTensorsFile) throws {
        _ = try ShiraIndices.read(name, from: file)
    }

    public static let descriptor = MethodDescriptor(
        name: "shira", summary: "SHiRA: train 1-2% of the base weights directly at a fixed sparse mask (struct, rand, wm, grad, snip)",
        peftType: "SHIRA", capabilities: [.mergeable, .fusable],
        make: { SHiRA(config: $0) })
}

extension SHiRA: FusableMethod {
    /// The fused mask is the union of the masks; the value at a position is sum_i w_i v_i over the adapters whose
    /// mask contains it (positions shared by several masks add; a position in one mask keeps w_i v_i), so the
    /// dense update is exactly sum_i w_i S_i. Masks may differ between the adapters; the layers may not.
    public func fuse(_ adapters: [Fusion.Adapter], weights: [Float]) throws -> Fusion.Result {
        let layerKeys = try Fusion.sameLayers(adapters, suffix: ".shira_indices") { Array($0.integers.keys) }
        for adapter in adapters {
            if let other = adapter.tensors.keys.sorted().first(where: { !Fusion.isHead($0) && !$0.hasSuffix(".shira_weight") }) {
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
        return Fusion.Result(configuration: adapters[0].configuration, tensors: tensors, integers: integers,
                             layers: layerKeys.count,
                             summary: "\(after) positions (\(before) in the sources, \(before - after) shared)")
    }

    /// For SHiRA adapters: each adapter's mask size and the number of positions shared by each pair (i, j),
    /// summed over the layers.
    public static func maskOverlap(_ adapters: [Fusion.Adapter]) -> (counts: [Int], shared: [[Int]]) {
        func positions(_ adapter: Fusion.Adapter) -> [String: Set<Int64>] {
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

extension ShiraAdapter: MergeableAdapter {
    /// Scatters W0 + alpha s into the mask positions, keeping the overwritten values so unmerge restores the base
    /// bit for bit. This scatter is also what makes switching SHiRA adapters fast.
    public func merge(into layer: Linear) {
        let weight = layer.weight.data, alpha = scale, s = values.data
        if savedBaseValues.count != flatPositions.count { savedBaseValues = [Float](repeating: 0, count: flatPositions.count) }
        flatPositions.withUnsafeBufferPointer { positions in
            savedBaseValues.withUnsafeMutableBufferPointer { saved in
                for i in 0..<positions.count {
                    let position = positions[i]
                    saved[i] = weight[position]
                    weight[position] = saved[i] + alpha * s[i]
                }
            }
        }
    }
    /// `unmerge` writes back the values saved by `merge`.
    public var unmergeRestoresExactly: Bool { true }
    public func unmerge(from layer: Linear) {
        let weight = layer.weight.data
        flatPositions.withUnsafeBufferPointer { positions in
            savedBaseValues.withUnsafeBufferPointer { saved in
                for i in 0..<min(positions.count, saved.count) { weight[positions[i]] = saved[i] }
            }
        }
    }
}
