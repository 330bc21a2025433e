import Engine
import Layers

/// The stride-p convolution that turns an image into patch embeddings: weight [D, C, p, p], bias [D].
public final class PatchProjection: OutputAdaptable {
    public let weight: Tensor
    public let bias: Tensor
    public let patchSize: Int
    public var outputAdapter: (any OutputAdapter)?
    public var mergedOutputAdapters: [any OutputAdapter] = []

    init(channels: Int, width: Int, patchSize: Int, generator: inout RandomGenerator) {
        weight = Tensor.randomNormal([width, channels, patchSize, patchSize], std: 0.02, generator: &generator)
        bias = Tensor(zeros: [width])
        self.patchSize = patchSize
    }

    public var ownParameters: [(String, Tensor)] {
        [("weight", weight), ("bias", bias)] + (outputAdapter?.namedParameters() ?? [])
    }

    /// [B, C, H, W] -> [B, (H/p)(W/p), D]: the convolution as patch extraction plus one GEMM.
    public func callAsFunction(_ images: Tensor) -> Tensor {
        let width = weight.shape[0]
        let patches = linear(patchify(images, patchSize: patchSize), weight.reshaped([width, -1]), bias)
        return adaptedOutput(patches)
    }
}

/// Patch embeddings, class token and (resampled) position embeddings, with Hugging Face Dinov2 names.
public final class VisionEmbeddings: Module {
    public let classToken: Tensor            // cls_token [1, 1, D]
    public let positionEmbeddings: Tensor    // position_embeddings [1, 1 + G*G, D]
    public let projection: PatchProjection   // patch_embeddings.projection
    let configuration: VisionTransformerConfiguration
    private var resamplingCache: [Int: (rows: Tensor, columns: Tensor)] = [:]

    init(_ configuration: VisionTransformerConfiguration, generator: inout RandomGenerator) {
        self.configuration = configuration
        let d = configuration.width, grid = configuration.gridSize
        classToken = Tensor.randomNormal([1, 1, d], std: 0.02, generator: &generator)
        positionEmbeddings = Tensor.randomNormal([1, 1 + grid * grid, d], std: 0.02, generator: &generator)
        projection = PatchProjection(channels: configuration.channels, width: d,
                                     patchSize: configuration.patchSize, generator: &generator)
    }

    public var ownParameters: [(String, Tensor)] {
        [("cls_token", classToken), ("position_embeddings", positionEmbeddings)]
    }

    public var children: [(String, any Module)] { [("patch_embeddings", PatchEmbeddingsContainer(projection))] }

    /// Position embeddings for a grid of `gridHeight` x `gridWidth` patches: the stored grid resampled
    /// bicubically (a = -0.75, half-pixel centres, no antialias), class row unchanged.
    public func positions(gridHeight: Int, gridWidth: Int) -> Tensor {
        let stored = configuration.gridSize, d = configuration.width
        if gridHeight == stored && gridWidth == stored { return positionEmbeddings }
        let classRow = positionEmbeddings.slice(axis: 1, 0..<1)
        let grid = positionEmbeddings.slice(axis: 1, 1..<(1 + stored * stored)).reshaped([stored, stored, d])
        let key = gridHeight * 10_000 + gridWidth
        let weights = resamplingCache[key] ?? (bicubicWeights(inSize: stored, outSize: gridHeight),
                                               bicubicWeights(inSize: stored, outSize: gridWidth))
        resamplingCache[key] = weights
        let resampled = resampleGrid(grid, rowWeights: weights.rows, columnWeights: weights.columns)
        return concat([classRow, resampled.reshaped([1, gridHeight * gridWidth, d])], axis: 1)
    }

    /// [B, C, H, W] -> tokens [B, 1 + N, D] (class token first), position embeddings added.
    public func callAsFunction(_ images: Tensor) -> Tensor {
        let batch = images.shape[0], p = configuration.patchSize
        let gridHeight = images.shape[2] / p, gridWidth = images.shape[3] / p
        let patches = projection(images)
        let classTokens = concat(Array(repeating: classToken, count: batch), axis: 0)
        let tokens = concat([classTokens, patches], axis: 1)
        return tokens + positions(gridHeight: gridHeight, gridWidth: gridWidth)
    }
}

/// Gives the projection its Hugging Face path `patch_embeddings.projection`.
final class PatchEmbeddingsContainer: Module {
    let projection: PatchProjection
    init(_ projection: PatchProjection) { self.projection = projection }
    var children: [(String, any Module)] { [("projection", projection)] }
}

/// Multi-head self-attention with separate query/key/value projections and an output projection.
public final class SelfAttention: Module {
    public let query, key, value: Linear
    public let heads: Int

    init(width: Int, heads: Int, generator: inout RandomGenerator) {
        query = Linear(inFeatures: width, outFeatures: width, generator: &generator)
        key = Linear(inFeatures: width, outFeatures: width, generator: &generator)
        value = Linear(inFeatures: width, outFeatures: width, generator: &generator)
        self.heads = heads
    }

    public var children: [(String, any Module)] { [("query", query), ("key", key), ("value", value)] }

    /// Attention over tokens [B, N, D]; `keyMask` holds B*N additive values (0 or -infinity).
    public func callAsFunction(_ x: Tensor, keyMask: [Float]? = nil) -> Tensor {
        scaledDotProductAttention(query: query(x), key: key(x), value: value(x), heads: heads, keyMask: keyMask)
    }
}

/// A module with a single `dense` Linear child (Hugging Face's `attention.output`, `intermediate`, `output`).
public final class DenseContainer: Module {
    public let dense: Linear
    init(_ dense: Linear) { self.dense = dense }
    public var children: [(String, any Module)] { [("dense", dense)] }
}

/// Per-channel residual scale `lambda1`.
public final class LayerScale: Module {
    public let lambda: Tensor
    init(width: Int, value: Float = 1) { lambda = Tensor(shape: [width], repeating: value) }
    public var ownParameters: [(String, Tensor)] { [("lambda1", lambda)] }
}

/// The two-layer GELU MLP (`fc1`, `fc2`).
public final class MLP: Module {
    public let fc1, fc2: Linear
    init(width: Int, hidden: Int, generator: inout RandomGenerator) {
        fc1 = Linear(inFeatures: width, outFeatures: hidden, generator: &generator)
        fc2 = Linear(inFeatures: hidden, outFeatures: width, generator: &generator)
    }
    public var children: [(String, any Module)] { [("fc1", fc1), ("fc2", fc2)] }
    public func callAsFunction(_ x: Tensor) -> Tensor { fc2(gelu(fc1(x))) }
}

/// A pre-norm transformer block: h = x + ls1 * attn(norm1(x)), then h + ls2 * mlp(norm2(h)).
/// `hooks` lie after the attention residual add (`afterAttention`), beside the MLP, fed h (`besideFeedForward`), and
/// after the MLP residual add (`afterFeedForward`).
public final class VisionBlock: Module {
    public let norm1: LayerNorm
    public let attention: SelfAttention          // attention.attention
    public let attentionOutput: DenseContainer    // attention.output.dense
    public let layerScale1: LayerScale?
    public let norm2: LayerNorm
    public let mlp: MLP
    public let layerScale2: LayerScale?
    /// Generic extension points for methods (see `BlockHooks`).
    public let hooks = BlockHooks()

    init(_ c: VisionTransformerConfiguration, generator: inout RandomGenerator) {
        norm1 = LayerNorm(dimension: c.width, eps: c.layerNormEps)
        attention = SelfAttention(width: c.width, heads: c.heads, generator: &generator)
        attentionOutput = DenseContainer(Linear(inFeatures: c.width, outFeatures: c.width, generator: &generator))
        norm2 = LayerNorm(dimension: c.width, eps: c.layerNormEps)
        mlp = MLP(width: c.width, hidden: c.mlpDimension, generator: &generator)
        layerScale1 = c.layerScale ? LayerScale(width: c.width) : nil
        layerScale2 = c.layerScale ? LayerScale(width: c.width) : nil
    }

    public var children: [(String, any Module)] {
        var list: [(String, any Module)] = [("norm1", norm1), ("attention", AttentionContainer(self))]
        if let layerScale1 { list.append(("layer_scale1", layerScale1)) }
        list += [("norm2", norm2), ("mlp", mlp)]
        if let layerScale2 { list.append(("layer_scale2", layerScale2)) }
        return list + hooks.children
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        // residualAdd: h = x + ls1 * branch in one pass.
        let h = hooks.applyAfterAttention(
            residualAdd(x, attentionOutput.dense(attention(norm1(x))), scale: layerScale1?.lambda))
        return hooks.applyAfterFeedForward(hooks.addBranches(to: residualAdd(h, mlp(norm2(h)), scale: layerScale2?.lambda), input: h))
    }
}

/// Gives the attention modules their Hugging Face paths `attention.attention.*` and `attention.output.dense`.
final class AttentionContainer: Module {
    unowned let block: VisionBlock
    init(_ block: VisionBlock) { self.block = block }
    var children: [(String, any Module)] { [("attention", block.attention), ("output", block.attentionOutput)] }
}

/// The block stack (`encoder.layer.N`).
public final class VisionEncoder: Module {
    public let layers: ModuleList<VisionBlock>
    init(_ layers: [VisionBlock]) { self.layers = ModuleList(layers) }
    public var children: [(String, any Module)] { [("layer", layers)] }
}

/// A Vision Transformer (DINOv2 or classic ViT) with Hugging Face `Dinov2Model` parameter names.
///
/// `features(_:)` returns the final-LayerNorm token states [B, 1 + N, D], class token first.
public final class VisionTransformer: TransformerBackbone {
    public let configuration: VisionTransformerConfiguration
    public let embeddings: VisionEmbeddings
    public let encoder: VisionEncoder
    public let layernorm: LayerNorm

    /// A model with random weights (N(0, 0.02^2) linears, unit norms, LayerScale 1).
    public init(_ configuration: VisionTransformerConfiguration, seed: UInt64 = 0) {
        self.configuration = configuration
        var generator = RandomGenerator(seed: seed)
        embeddings = VisionEmbeddings(configuration, generator: &generator)
        encoder = VisionEncoder((0..<configuration.depth).map { _ in VisionBlock(configuration, generator: &generator) })
        layernorm = LayerNorm(dimension: configuration.width, eps: configuration.layerNormEps)
    }

    public var tokenInserter: (any TokenInserter)?
    public var width: Int { configuration.width }
    public var blockHooks: [BlockHooks] { blocks.map(\.hooks) }
    public var tokenFanIn: Int { configuration.channels * configuration.patchSize * configuration.patchSize }

    public var children: [(String, any Module)] {
        // Inserted tokens first: their parameters (`prompt_embeddings.N`) keep the order of earlier versions.
        (tokenInserter.map { [("prompt_embeddings", $0 as any Module)] } ?? [])
            + [("embeddings", embeddings), ("encoder", encoder), ("layernorm", layernorm)]
    }

    /// Blocks in order.
    public var blocks: [VisionBlock] { encoder.layers.items }

    /// Final-LayerNorm token states [B, 1 + N, D] for normalised images [B, C, H, W].
    public func features(_ images: Tensor) -> Tensor {
        precondition(images.rank == 4 && images.shape[1] == configuration.channels,
                     "VisionTransformer: images must be [B, \(configuration.channels), H, W], got \(images.shape)")
        let blocks = blocks
        let x = runBlocks(blocks.count, tokens: embeddings(images), keyMask: nil) { index, tokens, _ in blocks[index](tokens) }
        return layernorm(x)
    }
}
