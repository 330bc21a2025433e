import Checkpoints
import Engine
import Foundation

/// A Hugging Face model folder (`save_pretrained` output): `config.json` and `model.safetensors`, or shards listed in
/// `model.safetensors.index.json`; for text, `tokenizer.json` (WordPiece, cased or not) or `vocab.txt` with the casing of
/// `tokenizer_config.json`. Vision:
/// `model_type` "dinov2" or "vit" of any size the config gives; text: "bert" (BERT-family encoders). Tensor names are
/// read in both spellings: the files' (`encoder.layer.N.attention.attention.query`, as transformers writes them) and
/// transformers 5's module names (`layers.N.attention.q_proj`, `o_proj`), with or without a `dinov2.`/`vit.`/`bert.`
/// prefix; poolers, mask tokens and classification heads are dropped.
public struct HuggingFaceFolder: Sendable {
    public enum Kind: String, Sendable { case dinov2, vit, bert }

    public let directory: URL
    public let kind: Kind
    /// The parsed `config.json`.
    let config: [String: any Sendable]

    /// Whether `path` is a folder with a `config.json` (so `--model` means a folder, not a registry name).
    public static func isFolder(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
            && FileManager.default.fileExists(atPath: URL(fileURLWithPath: path).appendingPathComponent("config.json").path)
    }

    public init(path: String) throws {
        directory = URL(fileURLWithPath: path)
        let configURL = directory.appendingPathComponent("config.json")
        let data: Data
        do { data = try RegularFile.read(configURL, limit: 1 << 24) } catch {
            throw ModuleError("\(configURL.path): cannot be read (\(error)); a model folder needs the config.json that save_pretrained writes")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModuleError("\(configURL.path): not a JSON object")
        }
        var sendable: [String: any Sendable] = [:]
        for (key, value) in object {
            if let number = value as? Double { sendable[key] = number } else if let text = value as? String { sendable[key] = text }
            else if let flag = value as? Bool { sendable[key] = flag }
        }
        config = sendable
        guard let type = object["model_type"] as? String else {
            throw ModuleError("\(configURL.path): no 'model_type' (dinov2, vit or bert)")
        }
        guard let kind = Kind(rawValue: type) else {
            throw ModuleError("\(configURL.path): model_type '\(type)' is not supported; SwiftPEFT reads dinov2, vit and bert folders")
        }
        self.kind = kind
    }

    var configPath: String { directory.appendingPathComponent("config.json").path }

    func integer(_ key: String, default fallback: Int? = nil) throws -> Int {
        if let value = config[key] as? Double, value == value.rounded(), value >= 1, value <= 1_000_000 { return Int(value) }
        if config[key] == nil, let fallback { return fallback }
        throw ModuleError("\(configPath): '\(key)' is \(config[key].map { "\($0)" } ?? "missing"), not a positive integer")
    }

    func number(_ key: String, default fallback: Double) throws -> Double {
        guard let value = config[key] else { return fallback }
        guard let number = value as? Double, number.isFinite else { throw ModuleError("\(configPath): '\(key)' is not a number") }
        return number
    }

    func requireGELU() throws {
        let act = (config["hidden_act"] as? String) ?? "gelu"
        guard act == "gelu" else {
            throw ModuleError("\(configPath): hidden_act '\(act)' is not supported (only the exact 'gelu')")
        }
    }

    /// The vision configuration the folder describes (mean and std from `preprocessor_config.json` when present).
    public func visionConfiguration() throws -> VisionTransformerConfiguration {
        guard kind != .bert else { throw ModuleError("\(configPath): a \(kind.rawValue) model is a text encoder, not a vision model") }
        try requireGELU()
        if config["use_swiglu_ffn"] as? Bool == true {
            throw ModuleError("\(configPath): use_swiglu_ffn (DINOv2 giant) is not supported")
        }
        if config["qkv_bias"] as? Bool == false { throw ModuleError("\(configPath): qkv_bias false is not supported") }
        let width = try integer("hidden_size"), heads = try integer("num_attention_heads")
        guard width % heads == 0 else { throw ModuleError("\(configPath): hidden_size \(width) is not a multiple of num_attention_heads \(heads)") }
        let hidden = kind == .dinov2 ? Int((try number("mlp_ratio", default: 4) * Double(width)).rounded()) : try integer("intermediate_size")
        let imageSize = try integer("image_size"), patch = try integer("patch_size")
        guard imageSize % patch == 0, imageSize <= VisionTransformerConfiguration.maximumResolution else {
            throw ModuleError("\(configPath): image_size \(imageSize) is not a multiple of patch_size \(patch) up to \(VisionTransformerConfiguration.maximumResolution)")
        }
        guard try integer("num_channels", default: 3) == 3 else { throw ModuleError("\(configPath): only 3-channel images are supported") }
        var configuration = VisionTransformerConfiguration(
            imageSize: imageSize, patchSize: patch, width: width, depth: try integer("num_hidden_layers"), heads: heads,
            mlpDimension: hidden, layerNormEps: Float(try number("layer_norm_eps", default: kind == .dinov2 ? 1e-6 : 1e-12)),
            layerScale: kind == .dinov2, defaultResolution: kind == .dinov2 ? min(224 / patch * patch, imageSize) : imageSize)
        if kind == .vit { configuration.mean = [0.5, 0.5, 0.5]; configuration.std = [0.5, 0.5, 0.5] }
        let preprocessor = directory.appendingPathComponent("preprocessor_config.json")
        if let data = try? RegularFile.read(preprocessor, limit: 1 << 20),
           let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
            if let mean = object["image_mean"] as? [Double], mean.count == 3 { configuration.mean = mean.map(Float.init) }
            if let std = object["image_std"] as? [Double], std.count == 3, std.allSatisfy({ $0 > 0 }) { configuration.std = std.map(Float.init) }
        }
        return configuration
    }

    /// The BERT configuration the folder describes.
    public func bertConfiguration() throws -> BertConfiguration {
        guard kind == .bert else { throw ModuleError("\(configPath): a \(kind.rawValue) model is a vision model, not a text encoder") }
        try requireGELU()
        let width = try integer("hidden_size"), heads = try integer("num_attention_heads")
        guard width % heads == 0 else { throw ModuleError("\(configPath): hidden_size \(width) is not a multiple of num_attention_heads \(heads)") }
        return BertConfiguration(vocabularySize: try integer("vocab_size"), hiddenSize: width, layers: try integer("num_hidden_layers"),
                                 heads: heads, intermediateSize: try integer("intermediate_size"),
                                 maxPositions: try integer("max_position_embeddings"),
                                 typeVocabularySize: try integer("type_vocab_size", default: 2),
                                 layerNormEps: Float(try number("layer_norm_eps", default: 1e-12)))
    }

    /// The weight files: `model.safetensors`, or every shard `model.safetensors.index.json` lists.
    public func weightFiles() throws -> [URL] {
        let single = directory.appendingPathComponent("model.safetensors")
        if FileManager.default.fileExists(atPath: single.path) { return [single] }
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        guard FileManager.default.fileExists(atPath: index.path) else {
            throw ModuleError("\(directory.path): no model.safetensors or model.safetensors.index.json (PyTorch .bin files are not read; save with safe_serialization)")
        }
        guard let data = try? RegularFile.read(index, limit: 1 << 26),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let map = object["weight_map"] as? [String: String] else {
            throw ModuleError("\(index.path): not a safetensors index (no 'weight_map' object)")
        }
        let shards = Set(map.values).sorted()
        for shard in shards where shard.contains("/") || shard.hasPrefix(".") {
            throw ModuleError("\(index.path): shard name '\(shard)' is not a file in the folder")
        }
        return shards.map { directory.appendingPathComponent($0) }
    }

    /// Every tensor of the weight files under the library's names.
    public func tensors() throws -> [String: Tensor] {
        var state: [String: Tensor] = [:]
        for url in try weightFiles() {
            let file = try SafeTensorsFile(path: url.path)
            for name in file.names {
                guard let mapped = Self.internalName(name, kind: kind) else { continue }
                if state[mapped] != nil {
                    throw ModuleError("\(url.path): tensor '\(name)' is the second one named \(mapped) (both name spellings at once?)")
                }
                state[mapped] = try file.tensor(name)
            }
        }
        return state
    }

    /// The library's name for a checkpoint tensor name, or nil for tensors it does not use.
    public static func internalName(_ name: String, kind: Kind) -> String? {
        var name = name
        for prefix in ["dinov2.", "vit.", "bert.", "model."] where name.hasPrefix(prefix) { name.removeFirst(prefix.count) }
        if name.hasPrefix("pooler.") || name.hasPrefix("classifier.") || name.hasPrefix("cls.") || name == "embeddings.mask_token"
            || name == "embeddings.position_ids" {
            return nil
        }
        if name.hasPrefix("layers.") { name = "encoder.layer." + name.dropFirst("layers.".count) }
        let renames: [(String, String)] = kind == .bert
            ? [(".attention.q_proj.", ".attention.self.query."), (".attention.k_proj.", ".attention.self.key."),
               (".attention.v_proj.", ".attention.self.value."), (".attention.o_proj.", ".attention.output.dense.")]
            : [(".attention.q_proj.", ".attention.attention.query."), (".attention.k_proj.", ".attention.attention.key."),
               (".attention.v_proj.", ".attention.attention.value."), (".attention.o_proj.", ".attention.output.dense."),
               (".layernorm_before.", ".norm1."), (".layernorm_after.", ".norm2."), (".intermediate.dense.", ".mlp.fc1.")]
        for (old, new) in renames { name = name.replacingOccurrences(of: old, with: new) }
        // ViT's block output (not the attention's): encoder.layer.N.output.dense -> mlp.fc2.
        if kind == .vit, name.hasPrefix("encoder.layer."), name.contains(".output.dense."), !name.contains(".attention.output.") {
            name = name.replacingOccurrences(of: ".output.dense.", with: ".mlp.fc2.")
        }
        return name
    }

    /// The vision model with the folder's weights (every tensor the model has must be there).
    public func visionModel() throws -> VisionTransformer {
        let model = VisionTransformer(try visionConfiguration())
        try model.load(try tensors(), strict: true, source: directory.path)
        return model
    }

    /// The BERT encoder with the folder's weights and its WordPiece tokenizer.
    public func textModel() throws -> (encoder: BertEncoder, tokenizer: WordPieceTokenizer) {
        let encoder = BertEncoder(try bertConfiguration())
        try encoder.load(try tensors(), strict: true, source: directory.path)
        let tokenizer: WordPieceTokenizer
        do {
            tokenizer = try WordPieceTokenizer(folder: directory)
        } catch WordPieceTokenizerError.fileNotFound {
            throw ModuleError("\(directory.path): no tokenizer.json or vocab.txt (the WordPiece vocabulary BertTokenizer saves)")
        }
        let embeddings = try bertConfiguration().vocabularySize
        guard tokenizer.vocabularySize <= embeddings else {
            throw ModuleError("\(directory.path): the tokenizer has \(tokenizer.vocabularySize) tokens, config.json's vocab_size is \(embeddings)")
        }
        return (encoder, tokenizer)
    }
}
