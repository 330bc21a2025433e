import Checkpoints
import Engine
import Layers
import Models

/// A parameter-efficient fine-tuning method: it decides which parameters of a classifier train, and may attach
/// new modules (adapters, prompts) to the backbone. The classification head always trains.
public protocol PEFTMethod {
    /// The name used on the command line and in adapter configs.
    var name: String { get }
    /// Freezes the classifier, then makes trainable (and attaches) what this method trains.
    func apply(to model: any Classifier) throws
    /// How many training batches the method wants to score weights on before it is applied (0: none).
    var calibrationBatches: Int { get }
    /// `apply(to:)` given calibration batches (inputs with labels).
    func apply(to model: any Classifier, calibration: [(ClassifierInput, [Int])]) throws
    /// Writes Hugging Face peft's top-level config fields for this method (`r`, `lora_alpha`, `mask_type`, ...)
    /// into an adapter config being saved (default: none).
    func describe(into configuration: inout AdapterConfiguration)
    /// Rebuilds adapters whose structure is stored in an adapter file (SHiRA's masks) on `module`, freezing its own
    /// weights; false (the default) when the method builds its adapters from its options, as `apply` does.
    func attachStored(from file: SafeTensorsFile, to module: any Module) throws -> Bool
    /// Integer tensors that record the structure of this method's adapters on `module` (SHiRA's masks), by path
    /// below `module`; saved next to the weights and read back by `attachStored` (default: none).
    func structureTensors(in module: any Module) -> [String: Int32Tensor]
    /// Checks the stored integer tensor `name` of `file` as this method's structure tensor (shape, ranges), so
    /// tools that read adapter files without a model (fusion) refuse what `attachStored` would (default: no check).
    func validateStructureTensor(_ name: String, in file: SafeTensorsFile) throws
}

extension PEFTMethod {
    public var calibrationBatches: Int { 0 }
    public func apply(to model: any Classifier, calibration: [(ClassifierInput, [Int])]) throws {
        try apply(to: model)
    }
    public func describe(into configuration: inout AdapterConfiguration) {}
    public func attachStored(from file: SafeTensorsFile, to module: any Module) throws -> Bool { false }
    public func structureTensors(in module: any Module) -> [String: Int32Tensor] { [:] }
    public func validateStructureTensor(_ name: String, in file: SafeTensorsFile) throws {}
}

/// Options shared by the methods; each method reads the ones it uses.
public struct MethodOptions: Codable, Sendable, Equatable {
    /// LoRA rank r (also Pear's adapter rank).
    public var rank = 8
    /// LoRA alpha; the update is scaled by alpha / r.
    public var alpha: Float = 8
    /// Dropout on the LoRA input.
    public var dropout: Float = 0
    /// LoRA: scale the update by alpha / sqrt(r) instead of alpha / r (rsLoRA, peft's `use_rslora`).
    public var useRSLoRA = false
    /// LoRA: weight-decomposed LoRA (DoRA, peft's `use_dora`): a trainable magnitude per output feature.
    public var useDoRA = false
    /// Which Linear layers LoRA (and the weight-space methods) adapt.
    public var targetModules: TargetModules = .names(["query", "value"])
    /// Bottleneck adapter hidden width.
    public var adapterWidth = 8
    /// Bottleneck adapter output scale s.
    public var adapterScale: Float = 0.1
    /// VPT prompt tokens per layer.
    public var prompts = 10
    /// Seed for the methods' own initialisation.
    public var seed: UInt64 = 0
    /// SHiRA: fraction of each target weight that trains.
    public var density: Double = 0.01
    /// SHiRA: Hugging Face peft's sizing, r (in + out) trained positions per weight, instead of `density`
    /// (nil: size by density).
    public var shiraRank: Int?
    /// SHiRA: how the trained positions are chosen.
    public var shiraMask: ShiraMask = .random
    /// SHiRA: which Linear layers get a sparse adapter.
    public var shiraTargets: TargetModules = .allLinear
    /// SHiRA `rand` mask: which block of positions to take from the seeded random order of all positions (block p
    /// is positions p k ..< (p + 1) k). Masks with the same seed and different parts are disjoint (for fusion).
    public var shiraMaskPart = 0
    /// NEAT: encoder/decoder pairs of the deep variant (0: the depth-2 network).
    public var neatPairs = 0
    /// NEAT: multiplier s of the update.
    public var neatScale: Float = 1
    /// RLRR: start as the pretrained model (u = 0, s = 1, t = 0) instead of the released code's random init.
    public var identityStart = false
    /// TTC / Pear: fraction of the epochs in the first stage (TTC's LayerNorm stage, Pear's warm-up).
    public var stageOneFraction: Float = 0.3
    /// TTC / Pear: batches used to score channels or adapters.
    public var scoringBatches = 8
    /// TTC: channels selected per layer (nil: width / 8).
    public var ttcChannels: Int?
    /// TTC: select the global top channels instead of per layer.
    public var ttcGlobal = false
    /// TTC: start the K x K maps at zero instead of N(0, 0.02^2).
    public var ttcZeroInit = false
    /// TTC: keep training the LayerNorms in stage 2.
    public var ttcTrainNorms = true
    /// Pear: fraction of adapters pruned.
    public var pruneFraction: Float = 0.5
    /// Pear: importance score (taylor, l1, frobenius).
    public var pearScore = "taylor"
    /// Pear: which kept adapter a pruned position shares (best-same-type, nearest).
    public var pearSharing = "best-same-type"
    /// Pear: a learnable scalar gate per pruned position.
    public var pearGates = true
    /// Pear: keep the pruned adapters' learned updates as a frozen knowledge checkpoint.
    public var knowledgeCheckpoint = true

    public init() {}
}

extension Classifier {
    /// Freezes everything but the head.
    public func freezeBackbone() {
        setRequiresGrad(false)
        head.setRequiresGrad(true)
    }

    /// The trainable parameters by path.
    public var trainableParameters: [(String, Tensor)] { namedParameters().filter { $0.1.requiresGrad } }

    /// "trainable params: X || all params: Y || trainable%: Z", as Hugging Face peft prints it.
    public var trainableSummary: String {
        let trainable = trainableParameterCount, all = parameterCount
        return "trainable params: \(trainable) || all params: \(all) || trainable%: \(String(format: "%.4f", 100 * Double(trainable) / Double(max(all, 1))))"
    }
}

import Foundation

extension MethodOptions {
    /// Decodes leniently, as Hugging Face peft does for configs: missing keys keep their defaults, unknown keys
    /// are ignored, so files written by older or newer versions still load.
    public init(from decoder: Decoder) throws {
        self.init()
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let value = try container.decodeIfPresent(type(of: rank), forKey: .rank) { rank = value }
        if let value = try container.decodeIfPresent(type(of: alpha), forKey: .alpha) { alpha = value }
        if let value = try container.decodeIfPresent(type(of: dropout), forKey: .dropout) { dropout = value }
        if let value = try container.decodeIfPresent(type(of: useRSLoRA), forKey: .useRSLoRA) { useRSLoRA = value }
        if let value = try container.decodeIfPresent(type(of: useDoRA), forKey: .useDoRA) { useDoRA = value }
        if let value = try container.decodeIfPresent(type(of: targetModules), forKey: .targetModules) { targetModules = value }
        if let value = try container.decodeIfPresent(type(of: adapterWidth), forKey: .adapterWidth) { adapterWidth = value }
        if let value = try container.decodeIfPresent(type(of: adapterScale), forKey: .adapterScale) { adapterScale = value }
        if let value = try container.decodeIfPresent(type(of: prompts), forKey: .prompts) { prompts = value }
        if let value = try container.decodeIfPresent(type(of: seed), forKey: .seed) { seed = value }
        if let value = try container.decodeIfPresent(type(of: density), forKey: .density) { density = value }
        shiraRank = try container.decodeIfPresent(Int.self, forKey: .shiraRank)
        if let value = try container.decodeIfPresent(type(of: shiraMask), forKey: .shiraMask) { shiraMask = value }
        if let value = try container.decodeIfPresent(type(of: shiraTargets), forKey: .shiraTargets) { shiraTargets = value }
        if let value = try container.decodeIfPresent(type(of: shiraMaskPart), forKey: .shiraMaskPart) { shiraMaskPart = value }
        if let value = try container.decodeIfPresent(type(of: neatPairs), forKey: .neatPairs) { neatPairs = value }
        if let value = try container.decodeIfPresent(type(of: neatScale), forKey: .neatScale) { neatScale = value }
        if let value = try container.decodeIfPresent(type(of: identityStart), forKey: .identityStart) { identityStart = value }
        if let value = try container.decodeIfPresent(type(of: stageOneFraction), forKey: .stageOneFraction) { stageOneFraction = value }
        if let value = try container.decodeIfPresent(type(of: scoringBatches), forKey: .scoringBatches) { scoringBatches = value }
        ttcChannels = try container.decodeIfPresent(Int.self, forKey: .ttcChannels)
        if let value = try container.decodeIfPresent(type(of: ttcGlobal), forKey: .ttcGlobal) { ttcGlobal = value }
        if let value = try container.decodeIfPresent(type(of: ttcZeroInit), forKey: .ttcZeroInit) { ttcZeroInit = value }
        if let value = try container.decodeIfPresent(type(of: ttcTrainNorms), forKey: .ttcTrainNorms) { ttcTrainNorms = value }
        if let value = try container.decodeIfPresent(type(of: pruneFraction), forKey: .pruneFraction) { pruneFraction = value }
        if let value = try container.decodeIfPresent(type(of: pearScore), forKey: .pearScore) { pearScore = value }
        if let value = try container.decodeIfPresent(type(of: pearSharing), forKey: .pearSharing) { pearSharing = value }
        if let value = try container.decodeIfPresent(type(of: pearGates), forKey: .pearGates) { pearGates = value }
        if let value = try container.decodeIfPresent(type(of: knowledgeCheckpoint), forKey: .knowledgeCheckpoint) { knowledgeCheckpoint = value }
    }
}
