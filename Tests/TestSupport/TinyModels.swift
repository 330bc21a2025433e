import Models

/// The tiny ViT the method and trainer tests share: 16 x 16 images in 4 x 4 patches, width 16, 2 blocks, 2 heads.
public let tinyVision = VisionTransformerConfiguration(imageSize: 16, patchSize: 4, width: 16, depth: 2, heads: 2,
                                                       mlpDimension: 32, layerNormEps: 1e-6, layerScale: true)
