/// The shape of a Vision Transformer and how its inputs are prepared.
public struct VisionTransformerConfiguration: Codable, Sendable, Equatable {
    /// Side of the image the stored position embeddings were made for (518 for DINOv2: a 37x37 grid).
    public var imageSize: Int
    public var patchSize: Int
    public var channels: Int = 3
    public var width: Int
    public var depth: Int
    public var heads: Int
    public var mlpDimension: Int
    public var layerNormEps: Float
    /// DINOv2's per-channel residual scaling (`layer_scale1.lambda1`, `layer_scale2.lambda1`).
    public var layerScale: Bool
    /// Per-channel input normalisation (ImageNet by default).
    public var mean: [Float] = [0.485, 0.456, 0.406]
    public var std: [Float] = [0.229, 0.224, 0.225]
    /// Side of the images the model is run on by default.
    public var defaultResolution: Int

    public init(imageSize: Int, patchSize: Int, channels: Int = 3, width: Int, depth: Int, heads: Int,
                mlpDimension: Int, layerNormEps: Float, layerScale: Bool, defaultResolution: Int? = nil) {
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.channels = channels
        self.width = width
        self.depth = depth
        self.heads = heads
        self.mlpDimension = mlpDimension
        self.layerNormEps = layerNormEps
        self.layerScale = layerScale
        self.defaultResolution = defaultResolution ?? imageSize
    }

    /// Number of patches per side of the stored position-embedding grid.
    public var gridSize: Int { imageSize / patchSize }

    /// DINOv2 ViT-S/14: width 384, depth 12, 6 heads, MLP 1536, LayerScale, eps 1e-6, 37x37 position grid.
    public static let dinov2Small = VisionTransformerConfiguration(
        imageSize: 518, patchSize: 14, width: 384, depth: 12, heads: 6, mlpDimension: 1536,
        layerNormEps: 1e-6, layerScale: true, defaultResolution: 224)

    /// ViT-B/16 shapes (timm `vit_base_patch16_224`), for benchmarks with random weights.
    public static let vitBase16 = VisionTransformerConfiguration(
        imageSize: 224, patchSize: 16, width: 768, depth: 12, heads: 12, mlpDimension: 3072,
        layerNormEps: 1e-6, layerScale: false)

    /// ViT-S/16 shapes (timm `vit_small_patch16_224`).
    public static let vitSmall16 = VisionTransformerConfiguration(
        imageSize: 224, patchSize: 16, width: 384, depth: 12, heads: 6, mlpDimension: 1536,
        layerNormEps: 1e-6, layerScale: false)
}

extension VisionTransformerConfiguration {
    /// The largest image side accepted (at patch 14 that is 73 x 73 = 5,329 tokens per image).
    public static let maximumResolution = 1024

    /// Throws unless `resolution` is a usable image side for this model: positive, a multiple of the patch size,
    /// and at most `maximumResolution`. Every path that turns images into inputs checks this first, so a bad
    /// value is an error, never an empty image, a hang or a huge allocation.
    public func checkResolution(_ resolution: Int) throws {
        guard resolution >= patchSize, resolution <= Self.maximumResolution, resolution % patchSize == 0 else {
            throw ModuleError("resolution \(resolution) is not usable: it must be a multiple of the patch size \(patchSize) in \(patchSize)...\(Self.maximumResolution / patchSize * patchSize) pixels")
        }
    }
}
