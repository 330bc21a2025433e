import Engine
import Layers

/// The shape of a BERT encoder (Hugging Face `BertConfig` fields we use).
public struct BertConfiguration: Codable, Sendable, Equatable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var typeVocabularySize: Int
    public var layerNormEps: Float

    enum CodingKeys: String, CodingKey {
        case vocabularySize = "vocab_size", hiddenSize = "hidden_size", layers = "num_hidden_layers"
        case heads = "num_attention_heads", intermediateSize = "intermediate_size"
        case maxPositions = "max_position_embeddings", typeVocabularySize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps"
    }

    public init(vocabularySize: Int, hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int,
                maxPositions: Int, typeVocabularySize: Int = 2, layerNormEps: Float = 1e-12) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.heads = heads
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.typeVocabularySize = typeVocabularySize
        self.layerNormEps = layerNormEps
    }

    /// all-MiniLM-L6-v2.
    public static let miniLM = BertConfiguration(vocabularySize: 30_522, hiddenSize: 384, layers: 6, heads: 12,
                                                 intermediateSize: 1536, maxPositions: 512)
}

/// Word + position + token-type embeddings, then LayerNorm.
public final class BertEmbeddings: Module {
    public let word, position, tokenType: Embedding
    public let norm: LayerNorm

    init(_ c: BertConfiguration, generator: inout RandomGenerator) {
        word = Embedding(count: c.vocabularySize, dimension: c.hiddenSize, generator: &generator)
        position = Embedding(count: c.maxPositions, dimension: c.hiddenSize, generator: &generator)
        tokenType = Embedding(count: c.typeVocabularySize, dimension: c.hiddenSize, generator: &generator)
        norm = LayerNorm(dimension: c.hiddenSize, eps: c.layerNormEps)
    }

    public var children: [(String, any Module)] {
        [("word_embeddings", word), ("position_embeddings", position), ("token_type_embeddings", tokenType),
         ("LayerNorm", norm)]
    }
}

/// A dense layer followed by a residual add and LayerNorm (`attention.output`, `output`).
public final class BertResidualOutput: Module {
    public let dense: Linear
    public let norm: LayerNorm
    init(inFeatures: Int, width: Int, eps: Float, generator: inout RandomGenerator) {
        dense = Linear(inFeatures: inFeatures, outFeatures: width, generator: &generator)
        norm = LayerNorm(dimension: width, eps: eps)
    }
    public var children: [(String, any Module)] { [("dense", dense), ("LayerNorm", norm)] }
    func callAsFunction(_ x: Tensor, residual: Tensor) -> Tensor { norm(residualAdd(residual, dense(x))) }
    /// LayerNorm(residual + dense(x) + extra(residual)): the sub-layer with branches added inside the norm.
    func callAsFunction(_ x: Tensor, residual: Tensor, hooks: BlockHooks) -> Tensor {
        hooks.besideFeedForward.isEmpty ? self(x, residual: residual)
            : norm(residual + hooks.addBranches(to: dense(x), input: residual))
    }
}

/// A post-norm BERT layer: a = LN(x + attn(x)), then LN(a + ffn(a)). `hooks` lie after the attention LayerNorm
/// (`afterAttention`), beside the feed-forward, fed a and added inside its LayerNorm (`besideFeedForward`), and after
/// the layer's output LayerNorm (`afterFeedForward`).
public final class BertLayer: Module {
    public let selfAttention: SelfAttention
    public let attentionOutput: BertResidualOutput
    public let intermediate: DenseContainer
    public let output: BertResidualOutput
    /// Generic extension points for methods (see `BlockHooks`).
    public let hooks = BlockHooks()

    init(_ c: BertConfiguration, generator: inout RandomGenerator) {
        selfAttention = SelfAttention(width: c.hiddenSize, heads: c.heads, generator: &generator)
        attentionOutput = BertResidualOutput(inFeatures: c.hiddenSize, width: c.hiddenSize, eps: c.layerNormEps,
                                             generator: &generator)
        intermediate = DenseContainer(Linear(inFeatures: c.hiddenSize, outFeatures: c.intermediateSize,
                                             generator: &generator))
        output = BertResidualOutput(inFeatures: c.intermediateSize, width: c.hiddenSize, eps: c.layerNormEps,
                                    generator: &generator)
    }

    public var children: [(String, any Module)] {
        [("attention", BertAttentionContainer(self)), ("intermediate", intermediate), ("output", output)] + hooks.children
    }

    func callAsFunction(_ x: Tensor, keyMask: [Float]?) -> Tensor {
        let attended = hooks.applyAfterAttention(attentionOutput(selfAttention(x, keyMask: keyMask), residual: x))
        return hooks.applyAfterFeedForward(output(gelu(intermediate.dense(attended)), residual: attended, hooks: hooks))
    }
}

/// Gives BERT's attention modules their paths `attention.self.*` and `attention.output.*`.
final class BertAttentionContainer: Module {
    unowned let layer: BertLayer
    init(_ layer: BertLayer) { self.layer = layer }
    var children: [(String, any Module)] { [("self", layer.selfAttention), ("output", layer.attentionOutput)] }
}

/// Token ids, attention mask and token types for a batch of sequences padded to one length.
public struct TokenBatch: Sendable {
    public var ids: [Int32]
    public var mask: [Int32]
    public var typeIds: [Int32]
    public var batchSize: Int
    public var length: Int

    public init(ids: [[Int32]], mask: [[Int32]], typeIds: [[Int32]]? = nil) {
        let length = ids.first?.count ?? 0
        batchSize = ids.count
        self.length = length
        precondition(ids.allSatisfy { $0.count == length } && mask.map(\.count) == ids.map(\.count),
                     "TokenBatch: sequences must be padded to one length")
        self.ids = ids.flatMap { $0 }
        self.mask = mask.flatMap { $0 }
        self.typeIds = typeIds?.flatMap { $0 } ?? [Int32](repeating: 0, count: ids.count * length)
    }
}

/// A BERT encoder (Hugging Face `BertModel` names, without the pooler) with masked mean pooling.
public final class BertEncoder: TransformerBackbone {
    public let configuration: BertConfiguration
    public let embeddings: BertEmbeddings
    public let layers: ModuleList<BertLayer>

    public init(_ configuration: BertConfiguration, seed: UInt64 = 0) {
        self.configuration = configuration
        var generator = RandomGenerator(seed: seed)
        embeddings = BertEmbeddings(configuration, generator: &generator)
        layers = ModuleList((0..<configuration.layers).map { _ in BertLayer(configuration, generator: &generator) })
    }

    public var tokenInserter: (any TokenInserter)?
    public var width: Int { configuration.hiddenSize }
    public var blockHooks: [BlockHooks] { layers.items.map(\.hooks) }
    public var tokenFanIn: Int { configuration.hiddenSize }

    public var children: [(String, any Module)] {
        (tokenInserter.map { [("prompt_embeddings", $0 as any Module)] } ?? [])
            + [("embeddings", embeddings), ("encoder", BertLayerStack(layers))]
    }

    /// Last hidden states [B, T, H].
    public func hiddenStates(_ batch: TokenBatch) -> Tensor {
        let shape = [batch.batchSize, batch.length]
        precondition(batch.length <= configuration.maxPositions,
                     "BertEncoder: sequence length \(batch.length) exceeds \(configuration.maxPositions) positions")
        let positions = (0..<batch.batchSize).flatMap { _ in (0..<batch.length).map { Int32($0) } }
        let summed = embeddings.word(batch.ids, shape: shape) + embeddings.position(positions, shape: shape)
            + embeddings.tokenType(batch.typeIds, shape: shape)
        let keyMask = batch.mask.map { $0 != 0 ? Float(0) : -Float.infinity }
        let layers = layers.items
        return runBlocks(layers.count, tokens: embeddings.norm(summed), keyMask: keyMask) { index, tokens, mask in
            layers[index](tokens, keyMask: mask)
        }
    }

    /// Mean of the hidden states over the tokens the mask keeps: [B, H].
    public func meanPooled(_ batch: TokenBatch) -> Tensor {
        let hidden = hiddenStates(batch)
        let mask = Tensor(shape: [batch.batchSize, batch.length, 1], values: batch.mask.map(Float.init))
        let counts = Tensor(shape: [batch.batchSize, 1],
                            values: (0..<batch.batchSize).map { b in
                                max(1, Float(batch.mask[(b * batch.length)..<((b + 1) * batch.length)].reduce(0, +)))
                            })
        return (hidden * mask).sum(axis: 1) / counts
    }
}

/// Gives BERT's layers their path `encoder.layer.N`.
final class BertLayerStack: Module {
    let layers: ModuleList<BertLayer>
    init(_ layers: ModuleList<BertLayer>) { self.layers = layers }
    var children: [(String, any Module)] { [("layer", layers)] }
}
