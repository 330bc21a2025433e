/// The sizes of a DINOv2 ViT backbone, enough to list every tensor of its Hugging Face `Dinov2Model` state dict.
public struct DINOv2Architecture: Sendable, Equatable {
    /// Number of transformer blocks.
    public var depth: Int
    /// Token width (384 for ViT-S).
    public var hiddenSize: Int
    /// Hidden width of the MLP (4 x hiddenSize).
    public var mlpSize: Int
    /// Side of a square patch in pixels.
    public var patchSize: Int
    /// Image channels.
    public var channels: Int
    /// Side of the square grid the position embeddings were trained for (37 for 518-pixel inputs at patch 14).
    public var gridSize: Int

    /// An architecture with the given sizes.
    public init(depth: Int, hiddenSize: Int, mlpSize: Int, patchSize: Int, channels: Int = 3, gridSize: Int) {
        self.depth = depth
        self.hiddenSize = hiddenSize
        self.mlpSize = mlpSize
        self.patchSize = patchSize
        self.channels = channels
        self.gridSize = gridSize
    }

    /// DINOv2 ViT-S/14: 12 blocks, width 384, MLP 1536, 37 x 37 position grid; 22,056,192 parameters.
    public static let small14 = DINOv2Architecture(depth: 12, hiddenSize: 384, mlpSize: 1536, patchSize: 14,
        gridSize: 37)

    /// The published parameter count of ViT-S/14 (without the unused `embeddings.mask_token`).
    public static let small14ParameterCount = 22_056_192

    /// Every tensor of the state dict (names without any `backbone.` prefix) with its shape; linear weights are
    /// [out, in]. `embeddings.mask_token` is not listed: it is unused at inference and absent from exports.
    public var expectedTensors: [(name: String, shape: [Int])] {
        let h = hiddenSize, m = mlpSize
        var list: [(String, [Int])] = [
            ("embeddings.cls_token", [1, 1, h]),
            ("embeddings.position_embeddings", [1, gridSize * gridSize + 1, h]),
            ("embeddings.patch_embeddings.projection.weight", [h, channels, patchSize, patchSize]),
            ("embeddings.patch_embeddings.projection.bias", [h]),
        ]
        for i in 0..<depth {
            let p = "encoder.layer.\(i)."
            list += [
                (p + "norm1.weight", [h]), (p + "norm1.bias", [h]),
            ]
            for projection in ["query", "key", "value"] {
                list += [
                    (p + "attention.attention.\(projection).weight", [h, h]),
                    (p + "attention.attention.\(projection).bias", [h]),
                ]
            }
            list += [
                (p + "attention.output.dense.weight", [h, h]), (p + "attention.output.dense.bias", [h]),
                (p + "layer_scale1.lambda1", [h]),
                (p + "norm2.weight", [h]), (p + "norm2.bias", [h]),
                (p + "mlp.fc1.weight", [m, h]), (p + "mlp.fc1.bias", [m]),
                (p + "mlp.fc2.weight", [h, m]), (p + "mlp.fc2.bias", [h]),
                (p + "layer_scale2.lambda1", [h]),
            ]
        }
        list += [("layernorm.weight", [h]), ("layernorm.bias", [h])]
        return list
    }

    /// Total number of parameters in `expectedTensors`.
    public var parameterCount: Int { expectedTensors.reduce(0) { $0 + $1.shape.reduce(1, *) } }
}
