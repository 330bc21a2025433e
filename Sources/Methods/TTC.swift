import Engine
import Foundation
import Layers
import Models

/// TTC-Tuning (Zhao et al., 2023), reconstructed from the paper's abstract (no code was released; the filled-in
/// details follow shared/methods/README.md and are options). Two stages:
///
/// 1. Distribution alignment: only the LayerNorm scales and shifts (and the head) train, for the first
///    `stageOneFraction` of the epochs.
/// 2. Taylor-selected channels: on the stage-1 model, channel c of the residual stream after each block's attention
///    sub-layer (the `afterAttention` hook point, on a ViT or a BERT encoder; `score_site` "mlp": the block's
///    output, `afterFeedForward`, where the maps then go too) scores I_c = sum over S batches of | mean over batch and tokens of (dL/dh[b,n,c] h[b,n,c]) |; the top K
///    channels S of each layer (K = C/8 by default; or the global top L*K) get a K x K map with bias:
///
///        h[:, :, S] += h[:, :, S] A^T + a,   A ~ N(0, 0.02^2) (or 0), a = 0,
///
///    trained for the rest of the budget with the LayerNorms (trainable by default).
/// Parameters: LayerNorm parameters + L (K^2 + K) + head.
public struct TTC: StagedMethod {
    /// The stages and the channel selection.
    public struct Config: MethodConfig {
        /// Fraction of the epochs in the LayerNorm stage.
        public var stageFraction: Float = 0.3
        /// Batches used to score channels.
        public var scoringBatches = 8
        /// Channels selected per layer (nil: width / 8).
        public var channels: Int?
        /// Select the global top channels instead of per layer.
        public var globalChannels = false
        /// Start the K x K maps at zero instead of N(0, 0.02^2).
        public var zeroInitMaps = false
        /// Keep training the LayerNorms in stage 2.
        public var trainNorms = true
        /// Where channels are scored and mapped: "attention" (the stream after the attention sub-layer) or "mlp"
        /// (the block's output, after the feed-forward sub-layer).
        public var scoreSite = "attention"
        public var seed: UInt64 = 0
        public init() {}

        enum CodingKeys: String, CodingKey {
            case stageFraction = "stage_fraction", scoringBatches = "scoring_batches", channels
            case globalChannels = "global_channels", zeroInitMaps = "zero_init_maps", trainNorms = "train_norms"
            case scoreSite = "score_site", seed
        }

        public static let options = MethodOptionSpec.stageOptions + [
            MethodOptionSpec("channels", .integer, "channels selected per layer (default width / 8)", legacyField: "ttcChannels"),
            MethodOptionSpec("global_channels", .boolean, "select the global top channels instead of per layer", legacyField: "ttcGlobal"),
            MethodOptionSpec("zero_init_maps", .boolean, "start the channel maps at zero", legacyField: "ttcZeroInit"),
            MethodOptionSpec("train_norms", .boolean, "keep training the LayerNorms in stage 2", legacyField: "ttcTrainNorms"),
            MethodOptionSpec("score_site", .text, "where channels are scored and mapped: attention (after the attention sub-layer) or mlp (the block's output)"),
            .seed(),
        ]
    }

    public let name = "ttc"
    public let config: Config
    public init(config: Config = Config()) { self.config = config }
    public var stageFraction: Float { config.stageFraction }
    public var scoringBatches: Int { config.scoringBatches }

    public func apply(to model: any Classifier) throws {
        let backbone = try model.requireTransformer(for: "TTC")
        try validateStageOptions(method: "TTC")
        _ = try site()
        if let channels = config.channels, !(1...backbone.width).contains(channels) {
            throw ModuleError("TTC: channels per layer must be in 1...\(backbone.width) (the model width), got \(channels)")
        }
        try LayerNormTuning().apply(to: model)
    }

    public func advance(_ model: any Classifier, calibration: [(ClassifierInput, [Int])]) throws {
        let backbone = try model.requireTransformer(for: "TTC")
        let width = backbone.width, hooks = backbone.blockHooks
        var scores = [[Double]](repeating: [Double](repeating: 0, count: width), count: hooks.count)
        var captured: [Tensor?] = Array(repeating: nil, count: hooks.count)
        let point = try site()
        for (index, hook) in hooks.enumerated() {
            hook.addObserver(at: point) { h in h.requiresGrad = true; captured[index] = h }
        }
        runCalibration(model, calibration) {
            for (index, h) in captured.enumerated() {
                guard let h, let grad = h.grad else { continue }
                let rows = h.count / width
                var sums = [Double](repeating: 0, count: width)
                for r in 0..<rows {
                    for c in 0..<width { sums[c] += Double(grad.data[r * width + c]) * Double(h.data[r * width + c]) }
                }
                for c in 0..<width { scores[index][c] += abs(sums[c] / Double(rows)) }
                captured[index] = nil
            }
            model.zeroGrad()
        }
        for hook in hooks { hook.removeLastObserver(at: point) }
        try attach(select(scores), to: model, backbone: backbone)
    }

    /// Top-K channels per layer (or the global top L*K, at least one per layer), sorted.
    func select(_ scores: [[Double]]) -> [[Int]] {
        let width = scores.first?.count ?? 0
        let k = config.channels ?? max(1, width / 8)
        if config.globalChannels {
            let all = scores.enumerated().flatMap { layer, s in s.enumerated().map { (layer, $0.offset, $0.element) } }
            let top = all.sorted { $0.2 > $1.2 }.prefix(k * scores.count)
            var perLayer = [[Int]](repeating: [], count: scores.count)
            for (layer, channel, _) in top { perLayer[layer].append(channel) }
            for layer in 0..<scores.count where perLayer[layer].isEmpty {
                perLayer[layer] = [scores[layer].indices.max { scores[layer][$0] < scores[layer][$1] }!]
            }
            return perLayer.map { $0.sorted() }
        }
        return scores.map { s in Array(s.indices.sorted { s[$0] > s[$1] }.prefix(k)).sorted() }
    }

    /// The hook point of `score_site`.
    func site() throws -> BlockHooks.Point {
        switch config.scoreSite {
        case "attention": return .afterAttention
        case "mlp": return .afterFeedForward
        default: throw ModuleError("TTC: score_site must be attention or mlp, got '\(config.scoreSite)'")
        }
    }

    func attach(_ selections: [[Int]], to model: any Classifier, backbone: any TransformerBackbone) throws {
        let point = try site()
        var generator = RandomGenerator(seed: config.seed &+ 0x77C)
        for (hooks, channels) in zip(backbone.blockHooks, selections) {
            hooks.set(ChannelMap(channels: channels, width: backbone.width, zeroInit: config.zeroInitMaps,
                                 generator: &generator),
                      named: Self.mapName, at: point)
        }
        if !config.trainNorms {
            for (_, module) in model.namedModules() { (module as? LayerNorm)?.setRequiresGrad(false) }
        }
    }

    public func stageState(_ model: any Classifier) throws -> (json: String, tensors: [String: Tensor]) {
        let selections = model.transformerBackbone?.blockHooks.map {
            ($0.module(named: Self.mapName) as? ChannelMap)?.channels ?? []
        } ?? []
        return (String(decoding: try JSONEncoder().encode(selections), as: UTF8.self), [:])
    }

    public func restoreStage(_ model: any Classifier, json: String, tensors: [String: Tensor]) throws {
        let backbone = try model.requireTransformer(for: "TTC")
        guard let selections = try? JSONDecoder().decode([[Int]].self, from: Data(json.utf8)),
              selections.count == backbone.blockHooks.count,
              selections.allSatisfy({ $0.allSatisfy { (0..<backbone.width).contains($0) } }) else {
            throw ModuleError("TTC: the stored channel selection does not fit this model")
        }
        try attach(selections, to: model, backbone: backbone)
    }
}

/// TTC's stage-2 module: a K x K map with bias on selected channels of the residual stream, returning the update
/// h[:, :, S] A^T + a scattered back into the C channels (the block adds it to h), saved under `residual_map.*`.
public final class ChannelMap: StreamModule {
    public let channels: [Int]
    public let weight: Tensor   // A [K, K]
    public let bias: Tensor     // a [K]
    let selection: Tensor       // one-hot [K, C]

    public init(channels: [Int], width: Int, zeroInit: Bool, generator: inout RandomGenerator) {
        self.channels = channels
        let k = channels.count
        weight = zeroInit ? Tensor(zeros: [k, k]) : Tensor.randomNormal([k, k], std: 0.02, generator: &generator)
        bias = Tensor(zeros: [k])
        selection = Tensor(zeros: [k, width])
        for (row, channel) in channels.enumerated() { selection.data[row * width + channel] = 1 }
        weight.requiresGrad = true
        bias.requiresGrad = true
    }

    public var ownParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    public func callAsFunction(_ residual: Tensor) -> Tensor {
        let selected = matmul(residual, selection, transposeB: true)     // [B, N, K]
        return matmul(linear(selected, weight, bias), selection)         // [B, N, C]
    }
}

extension TTC {
    /// The hook name of the channel maps (their parameters' path below each block).
    static let mapName = "residual_map"

    /// Past the switch once a block carries its channel map.
    public func isPastFirstStage(_ model: any Classifier) -> Bool {
        model.transformerBackbone?.blockHooks.contains { $0.module(named: Self.mapName) != nil } ?? false
    }

    /// Default learning rate 3e-3: LayerNorm tuning and the channel maps of the authors' successor code (SCT)
    /// train at 3e-3 to 7.5e-2; 1e-3 was below every released setting.
    public static let descriptor = MethodDescriptor(
        name: "ttc", summary: "TTC (reconstructed from the abstract): LayerNorm stage, then K x K maps on Taylor-selected channels",
        defaultLearningRate: 3e-3, capabilities: [.staged],
        make: { TTC(config: $0) })
}
