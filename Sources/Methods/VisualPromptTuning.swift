import Engine
import Layers
import Models

/// VPT-deep (Jia et al., 2022): P learnable tokens per block, inserted after the first token (the class token)
/// before every block; the previous block's prompt outputs are dropped. Initialised U(-v, v) with
/// v = sqrt(6 / (fanIn + D)) as in the paper's code, where fanIn is the token-making layer's (3 p^2 for a ViT's
/// patch embedding, D for BERT's lookup table). The backbone is frozen. Prompt tokens are attended to by every
/// token (their key mask is 0) and removed from the backbone's output.
public struct VisualPromptTuning: PEFTMethod {
    /// peft's prompt-learning name for the prompt count.
    public struct Config: MethodConfig {
        /// Prompt tokens per layer.
        public var numVirtualTokens = 10
        public var seed: UInt64 = 0
        public init() {}

        enum CodingKeys: String, CodingKey { case numVirtualTokens = "num_virtual_tokens", seed }

        public static let options = [
            MethodOptionSpec("num_virtual_tokens", .integer, "prompt tokens per layer", legacyField: "prompts"),
            .seed(),
        ]
    }

    public let name = "vpt"
    public let config: Config
    public init(config: Config = Config()) { self.config = config }

    public func apply(to model: any Classifier) throws {
        let backbone = try model.requireTransformer(for: "VPT")
        guard config.numVirtualTokens > 0 else { throw ModuleError("VPT needs at least one prompt token") }
        // A bound, so a corrupt or hostile adapter config cannot make it allocate without limit.
        guard config.numVirtualTokens <= 1024 else { throw ModuleError("VPT: at most 1024 prompt tokens per layer, got \(config.numVirtualTokens)") }
        model.freezeBackbone()
        var generator = RandomGenerator(seed: config.seed &+ 0x0B7)
        let width = backbone.width
        let bound = (6 / Float(backbone.tokenFanIn + width)).squareRoot()
        backbone.tokenInserter = DeepPrompts((0..<backbone.blockHooks.count).map { _ in
            let prompts = Tensor.randomUniform([config.numVirtualTokens, width], low: -bound, high: bound, generator: &generator)
            prompts.requiresGrad = true
            return prompts
        })
    }
}

/// VPT-deep's token inserter: one [P, D] prompt tensor per block, named "0", "1", ...
public final class DeepPrompts: TokenInserter {
    public let prompts: [Tensor]
    public var promptCount: Int { prompts.first?.shape[0] ?? 0 }

    public init(_ prompts: [Tensor]) { self.prompts = prompts }

    public var ownParameters: [(String, Tensor)] { prompts.enumerated().map { (String($0.offset), $0.element) } }

    public func insert(into tokens: Tensor, keyMask: [Float]?, beforeBlock index: Int) -> (tokens: Tensor, keyMask: [Float]?) {
        let batch = tokens.shape[0], length = tokens.shape[1], count = promptCount
        let rows = concat(Array(repeating: prompts[index].reshaped([1, count, -1]), count: batch), axis: 0)
        // Before the first block the sequence has no prompts yet; later the previous block's prompt outputs are
        // replaced (and the key mask already has their entries).
        let skip = index == 0 ? 1 : 1 + count
        let x = concat([tokens.slice(axis: 1, 0..<1), rows, tokens.slice(axis: 1, skip..<length)], axis: 1)
        guard index == 0, let keyMask else { return (x, keyMask) }
        var mask: [Float] = []
        mask.reserveCapacity(batch * (length + count))
        for b in 0..<batch {
            let row = keyMask[(b * length)..<((b + 1) * length)]
            mask.append(row[row.startIndex])
            mask += [Float](repeating: 0, count: count)
            mask += row.dropFirst()
        }
        return (x, mask)
    }

    public func remove(from tokens: Tensor) -> Tensor {
        let length = tokens.shape[1]
        return concat([tokens.slice(axis: 1, 0..<1), tokens.slice(axis: 1, (1 + promptCount)..<length)], axis: 1)
    }
}

extension VisualPromptTuning {
    public static let descriptor = MethodDescriptor(
        name: "vpt", summary: "VPT-deep: learnable prompt tokens inserted before every block", defaultLearningRate: 1e-2,
        make: { VisualPromptTuning(config: $0) })
}
