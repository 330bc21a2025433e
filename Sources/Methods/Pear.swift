import Engine
import Foundation
import Layers
import Models

/// Pear (prune and share adapters, with a knowledge checkpoint), reconstructed from the paper's abstract (its code is
/// unavailable; the filled-in details follow shared/methods/README.md and are options):
///
/// 1. A LoRA adapter at each of N positions (query and value of every block by default) trains for a warm-up
///    (`stageOneFraction` of the epochs).
/// 2. Importance of adapter a: first-order Taylor, sum over its parameters of |theta * dL/dtheta| over S batches
///    (options: L1 norm of its parameters; Frobenius norm of its update B A).
/// 3. The lowest-scoring fraction p (default 0.5) is pruned.
/// 4. Each pruned position shares a kept adapter (default: the highest-scoring kept one of the same type, e.g. query
///    to query; option: the nearest kept layer of the same type), scaled by its own learnable gate (init 1).
///    Gradients from every position using a shared adapter accumulate into its one parameter set.
/// 5. Knowledge checkpoint: the pruned adapter's learned update (its A, B and scale) is frozen and kept at its
///    position for the rest of training and at inference; merging would fold it into the base weight. Its storage
///    is reported separately from the trainable parameters.
public final class PearAdapter: LinearAdapter {
    /// This position's own adapter (all positions before pruning, kept positions after).
    public var own: LoRAAdapter?
    /// The kept adapter this pruned position uses, and the path it lives at.
    public var shared: LoRAAdapter?
    public var sharedFrom: String?
    /// Learnable scalar on the shared update.
    public var gate: Tensor?
    /// Frozen knowledge checkpoint: the pruned adapter's A [r, in], B [out, r] and scale.
    public var knowledge: (a: Tensor, b: Tensor, scale: Float)?

    public init(own: LoRAAdapter) { self.own = own }

    public var children: [(String, any Module)] { own.map { [("pear", $0)] } ?? [] }

    public var ownParameters: [(String, Tensor)] {
        var list: [(String, Tensor)] = []
        if let gate { list.append(("pear_gate", gate)) }
        if let knowledge { list += [("pear_knowledge_A", knowledge.a), ("pear_knowledge_B", knowledge.b)] }
        return list
    }

    public func forward(_ input: Tensor, base: Linear) -> Tensor {
        var output = linear(input, base.weight, base.bias)
        if let own { output = output + own.delta(input) }
        if let shared {
            let update = shared.delta(input)
            output = output + (gate.map { update * $0 } ?? update)
        }
        if let knowledge {
            output = output + linear(linear(input, knowledge.a), knowledge.b).scaled(by: knowledge.scale)
        }
        return output
    }
}

/// The Pear method.
public struct Pear: StagedMethod {
    /// The LoRA adapters (on query and value) and the prune-and-share stage.
    public struct Config: MethodConfig {
        /// Rank of the LoRA adapters.
        public var r = 8
        /// Their alpha (scale lora_alpha / r).
        public var loraAlpha: Float = 8
        /// Fraction of the epochs in the warm-up (the design's default, 20%).
        public var stageFraction: Float = 0.2
        /// Batches used to score adapters.
        public var scoringBatches = 8
        /// Fraction of adapters pruned.
        public var pruneFraction: Float = 0.5
        /// Importance score: taylor, l1 or frobenius.
        public var score = "taylor"
        /// Which kept adapter a pruned position shares: best-same-type or nearest.
        public var sharing = "best-same-type"
        /// A learnable scalar gate per pruned position.
        public var gates = true
        /// Keep the pruned adapters' learned updates as a frozen knowledge checkpoint.
        public var knowledgeCheckpoint = true
        public var seed: UInt64 = 0
        public init() {}

        enum CodingKeys: String, CodingKey {
            case r, loraAlpha = "lora_alpha", stageFraction = "stage_fraction", scoringBatches = "scoring_batches"
            case pruneFraction = "prune_fraction", score, sharing, gates, knowledgeCheckpoint = "knowledge_checkpoint", seed
        }

        public static let options = [
            MethodOptionSpec("r", .integer, "rank of the LoRA adapters", legacyField: "rank"),
            MethodOptionSpec("lora_alpha", .real, "the adapters are scaled by lora_alpha / r", legacyField: "alpha"),
        ] + MethodOptionSpec.stageOptions + [
            MethodOptionSpec("prune_fraction", .real, "fraction of adapters pruned", legacyField: "pruneFraction"),
            MethodOptionSpec("score", .text, "importance score: taylor, l1 or frobenius", legacyField: "pearScore"),
            MethodOptionSpec("sharing", .text, "best-same-type or nearest", legacyField: "pearSharing"),
            MethodOptionSpec("gates", .boolean, "a learnable gate per shared position", legacyField: "pearGates"),
            MethodOptionSpec("knowledge_checkpoint", .boolean, "keep pruned adapters' updates as a frozen checkpoint", legacyField: "knowledgeCheckpoint"),
            .seed(),
        ]
    }

    public let name = "pear"
    public let config: Config
    public init(config: Config = Config()) { self.config = config }
    public var stageFraction: Float { config.stageFraction }
    public var scoringBatches: Int { config.scoringBatches }

    public func apply(to model: any Classifier) throws {
        guard ["taylor", "l1", "frobenius"].contains(config.score) else {
            throw ModuleError("Pear score '\(config.score)' is not one of: taylor, l1, frobenius")
        }
        guard ["best-same-type", "nearest"].contains(config.sharing) else {
            throw ModuleError("Pear sharing '\(config.sharing)' is not one of: best-same-type, nearest")
        }
        try validateStageOptions(method: "Pear")
        guard config.pruneFraction >= 0 && config.pruneFraction < 1 else {
            throw ModuleError("Pear prune fraction must be in [0, 1), got \(config.pruneFraction)")
        }
        try LoRA(config: .init { $0.r = config.r; $0.loraAlpha = config.loraAlpha; $0.seed = config.seed }).apply(to: model)
        for (_, module) in model.namedModules() {
            if let layer = module as? Linear, let lora = layer.adapter as? LoRAAdapter { layer.adapter = PearAdapter(own: lora) }
        }
    }

    /// Pear adapters by path, in model order.
    func positions(_ model: any Classifier) -> [(String, Linear, PearAdapter)] {
        model.namedModules().compactMap { path, module in
            guard let layer = module as? Linear, let adapter = layer.adapter as? PearAdapter else { return nil }
            return (path, layer, adapter)
        }
    }

    public func advance(_ model: any Classifier, calibration: [(ClassifierInput, [Int])]) throws {
        let sites = positions(model)
        var scores = [Double](repeating: 0, count: sites.count)
        switch config.score {
        case "l1":
            for (i, site) in sites.enumerated() {
                scores[i] = [site.2.own!.a, site.2.own!.b].reduce(0) { $0 + $1.values.reduce(0) { $0 + Double(abs($1)) } }
            }
        case "frobenius":
            for (i, site) in sites.enumerated() {
                scores[i] = Double(Autograd.withoutGrad { site.2.own!.deltaWeight() }.values.reduce(0) { $0 + $1 * $1 }).squareRoot()
            }
        default:
            runCalibration(model, calibration) {
                for (i, site) in sites.enumerated() {
                    for parameter in [site.2.own!.a, site.2.own!.b] {
                        guard let grad = parameter.grad else { continue }
                        for k in 0..<parameter.count { scores[i] += Double(abs(parameter.data[k] * grad.data[k])) }
                    }
                }
                model.zeroGrad()
            }
        }
        let pruneCount = Int((config.pruneFraction * Float(sites.count)).rounded(.down))
        let order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] < scores[$1] : $0 < $1 }
        let pruned = Set(order.prefix(pruneCount))
        var sources: [String: String] = [:]
        for i in pruned {
            let kind = leafName(sites[i].0)
            let candidates = sites.indices.filter { !pruned.contains($0) && leafName(sites[$0].0) == kind }
            let pool = candidates.isEmpty ? sites.indices.filter { !pruned.contains($0) } : candidates
            guard !pool.isEmpty else { continue }
            let chosen: Int
            if config.sharing == "nearest" {
                chosen = pool.min { (abs(layerIndex(sites[$0].0) - layerIndex(sites[i].0)), -scores[$0]) < (abs(layerIndex(sites[$1].0) - layerIndex(sites[i].0)), -scores[$1]) }!
            } else {
                chosen = pool.max { scores[$0] < scores[$1] }!
            }
            sources[sites[i].0] = sites[chosen].0
        }
        try prune(model, sources: sources, knowledge: nil)
    }

    /// Turns the positions in `sources` (pruned path -> kept path) into shared positions.
    func prune(_ model: any Classifier, sources: [String: String], knowledge: [String: Tensor]?) throws {
        let sites = positions(model)
        let byPath = Dictionary(uniqueKeysWithValues: sites.map { ($0.0, $0.2) })
        for (path, _, adapter) in sites {
            guard let source = sources[path] else { continue }
            guard let kept = byPath[source]?.own else { throw ModuleError("Pear: shared adapter '\(source)' is not kept") }
            if config.knowledgeCheckpoint {
                if let knowledge {
                    guard let a = knowledge["\(path).pear_knowledge_A"], let b = knowledge["\(path).pear_knowledge_B"] else {
                        throw ModuleError("Pear: knowledge checkpoint for '\(path)' is missing")
                    }
                    adapter.knowledge = (a, b, kept.scale)
                } else if let own = adapter.own {
                    adapter.knowledge = (own.a.copy(), own.b.copy(), own.scale)
                }
            }
            adapter.own = nil
            adapter.shared = kept
            adapter.sharedFrom = source
            if config.gates {
                adapter.gate = Tensor(shape: [1], repeating: 1)
                adapter.gate!.requiresGrad = true
            }
        }
    }

    /// Trainable and stored parameter counts after pruning: (trainable adapter values, knowledge-checkpoint values).
    public static func storage(_ model: any Classifier) -> (trainable: Int, knowledge: Int) {
        var trainable = 0, knowledge = 0
        for (_, module) in model.namedModules() {
            guard let layer = module as? Linear, let adapter = layer.adapter as? PearAdapter else { continue }
            trainable += (adapter.own.map { $0.a.count + $0.b.count } ?? 0) + (adapter.gate?.count ?? 0)
            knowledge += adapter.knowledge.map { $0.a.count + $0.b.count } ?? 0
        }
        return (trainable, knowledge)
    }

    public func stageState(_ model: any Classifier) throws -> (json: String, tensors: [String: Tensor]) {
        var sources: [String: String] = [:], tensors: [String: Tensor] = [:]
        for (path, _, adapter) in positions(model) {
            if let source = adapter.sharedFrom { sources[path] = source }
            if let knowledge = adapter.knowledge {
                tensors["\(path).pear_knowledge_A"] = knowledge.a
                tensors["\(path).pear_knowledge_B"] = knowledge.b
            }
        }
        return (String(decoding: try JSONEncoder().encode(sources), as: UTF8.self), tensors)
    }

    public func restoreStage(_ model: any Classifier, json: String, tensors: [String: Tensor]) throws {
        guard let sources = try? JSONDecoder().decode([String: String].self, from: Data(json.utf8)) else {
            throw ModuleError("Pear: the stored pruning decision is not readable")
        }
        try prune(model, sources: sources, knowledge: tensors)
    }
}

private func leafName(_ path: String) -> String { path.split(separator: ".").last.map(String.init) ?? path }

private func layerIndex(_ path: String) -> Int {
    let parts = path.split(separator: ".")
    for (i, part) in parts.enumerated() where part == "layer" && i + 1 < parts.count { return Int(parts[i + 1]) ?? 0 }
    return 0
}

extension Pear {
    /// Past the switch once an adapter shares another's factors.
    public func isPastFirstStage(_ model: any Classifier) -> Bool {
        model.namedModules().contains { ((($0.1 as? Linear)?.adapter as? PearAdapter)?.sharedFrom) != nil }
    }

    /// The knowledge checkpoint's frozen factors (`<layer>.pear_knowledge_A/B`).
    public func isStageTensor(_ name: String) -> Bool { name.hasSuffix(".pear_knowledge_A") || name.hasSuffix(".pear_knowledge_B") }

    public func stageSummary(_ model: any Classifier) -> String? {
        let storage = Pear.storage(model)
        return "pear: \(storage.trainable) trainable adapter values after pruning, \(storage.knowledge) stored in the knowledge checkpoint"
    }

    public static let descriptor = MethodDescriptor(
        name: "pear", summary: "Pear (reconstructed from the abstract): warm up LoRA adapters, prune half, share the best, keep a knowledge checkpoint",
        capabilities: [.staged],
        make: { Pear(config: $0) })
}
