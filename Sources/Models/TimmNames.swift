import Engine
import Layers

/// Converts a timm `VisionTransformer` state dict (names like `blocks.0.attn.qkv.weight`) to this library's
/// Hugging Face Dinov2-style names, splitting the fused qkv projection into query, key and value.
/// The classification head (`head.weight`, `head.bias`) is returned as `classifier.weight` / `classifier.bias`.
/// - Throws: `ModuleError` naming the tensor when a qkv tensor cannot be split in three, or a key is not a
///   timm ViT name.
public func convertTimmViTNames(_ timm: [String: Tensor], source: String = "timm checkpoint") throws -> [String: Tensor] {
    var converted: [String: Tensor] = [:]
    let direct: [String: String] = [
        "cls_token": "embeddings.cls_token", "pos_embed": "embeddings.position_embeddings",
        "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
        "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
        "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias",
        "head.weight": "classifier.weight", "head.bias": "classifier.bias",
    ]
    let blockParts: [String: String] = [
        "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias", "norm2.weight": "norm2.weight",
        "norm2.bias": "norm2.bias", "attn.proj.weight": "attention.output.dense.weight",
        "attn.proj.bias": "attention.output.dense.bias", "mlp.fc1.weight": "mlp.fc1.weight",
        "mlp.fc1.bias": "mlp.fc1.bias", "mlp.fc2.weight": "mlp.fc2.weight", "mlp.fc2.bias": "mlp.fc2.bias",
        "ls1.gamma": "layer_scale1.lambda1", "ls2.gamma": "layer_scale2.lambda1",
    ]
    for (name, tensor) in timm {
        if let target = direct[name] { converted[target] = tensor; continue }
        let parts = name.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.count == 3, parts[0] == "blocks", let index = Int(parts[1]) else {
            throw ModuleError("\(source): '\(name)' is not a timm ViT tensor name this loader knows")
        }
        let prefix = "encoder.layer.\(index)."
        if parts[2] == "attn.qkv.weight" || parts[2] == "attn.qkv.bias" {
            let isWeight = parts[2].hasSuffix("weight")
            guard tensor.shape[0] % 3 == 0 else {
                throw ModuleError("\(source): '\(name)' has shape \(tensor.shape); its first dimension must split in 3")
            }
            let part = tensor.shape[0] / 3
            for (i, role) in ["query", "key", "value"].enumerated() {
                let piece = Autograd.withoutGrad { tensor.slice(axis: 0, (i * part)..<((i + 1) * part)) }
                converted[prefix + "attention.attention.\(role).\(isWeight ? "weight" : "bias")"] = piece
            }
        } else if let target = blockParts[parts[2]] {
            converted[prefix + target] = tensor
        } else {
            throw ModuleError("\(source): '\(name)' is not a timm ViT tensor name this loader knows")
        }
    }
    return converted
}
