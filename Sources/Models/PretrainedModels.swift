import Checkpoints
import Engine
import Foundation
import Layers

/// The pretrained backbones the library ships loaders for.
public enum PretrainedModels {
    /// Names accepted by `--model`.
    public static let visionNames = ["dinov2-s14", "vit-s16-random", "vit-b16-random"]
    public static let textNames = ["minilm-l6"]
    /// Causal language models (`peft generate`, `peft chat`).
    public static let languageNames = ["smollm2-135m"]

    /// What each named model is, for `peft models`.
    public static let summaries: [(String, String)] = [
        ("dinov2-s14", "vision: DINOv2 ViT-S/14, 22M parameters (assets/dinov2)"),
        ("vit-s16-random", "vision: ViT-S/16 with random weights (tests and benchmarks)"),
        ("vit-b16-random", "vision: ViT-B/16 with random weights (tests and benchmarks)"),
        ("minilm-l6", "text encoder: all-MiniLM-L6-v2, BERT, 22M parameters (assets/minilm)"),
        ("smollm2-135m", "causal LM: SmolLM2-135M-Instruct, Llama, GGUF Q4_1 (assets/smollm2), ChatML"),
    ]

    /// The Hugging Face hub ids of the registry's pretrained models (the same weights).
    public static let hubIDs = [
        "dinov2-s14": "facebook/dinov2-small", "minilm-l6": "sentence-transformers/all-MiniLM-L6-v2",
        "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    ]

    /// The Hugging Face hub id of a registry model, or `name` itself (a folder, a model without one): what
    /// adapters record as `base_model_name_or_path`, so that transformers and peft find the same base.
    public static func hubID(of name: String) -> String { hubIDs[name] ?? name }

    /// The registry name of the model a hub id (any letter case) names, or `name` itself.
    public static func registryName(of name: String) -> String {
        hubIDs.first { $0.value.lowercased() == name.lowercased() }?.key ?? name
    }

    /// The Hugging Face hub id of a named language model (see ``hubID(of:)``).
    public static func languageHubID(of name: String) -> String { hubID(of: name) }

    /// A causal language model and its tokenizer, from its GGUF file in the assets. With `quantizedWeights` the
    /// quantised projections stay quantised in memory (see `LlamaModel(gguf:quantizedWeights:)`).
    public static func languageModel(named name: String, quantizedWeights: Bool = false) throws -> (model: LlamaModel, tokenizer: BytePairTokenizer) {
        guard name == "smollm2-135m" else {
            throw ModuleError("unknown language model '\(name)'; choose one of: \(languageNames.joined(separator: ", "))")
        }
        let file = try GGUFFile(path: try Assets.file("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").path)
        return (try LlamaModel(gguf: file, quantizedWeights: quantizedWeights), try BytePairTokenizer(gguf: file))
    }

    /// DINOv2 ViT-S/14 from `assets/dinov2/dinov2-s14.safetensors`, importing it from the ONNX file the first time.
    public static func dinov2Small(progress: (String) -> Void = { _ in }) throws -> VisionTransformer {
        let model = VisionTransformer(.dinov2Small)
        let converted = Assets.root.appendingPathComponent("dinov2/dinov2-s14.safetensors")
        if !FileManager.default.fileExists(atPath: converted.path) {
            let onnx = try Assets.file("dinov2/vit_s_focus.onnx")
            progress("importing DINOv2-S/14 weights from \(onnx.path) (once)")
            try importDINOv2(onnx: onnx, to: converted)
        }
        let file = try SafeTensorsFile(path: converted.path)
        try model.load(try file.loadAll(), strict: true, source: converted.path)
        return model
    }

    /// Whether `name` (a registry name or a Hugging Face model folder) is a vision model.
    public static func isVision(_ name: String) -> Bool {
        if HuggingFaceFolder.isFolder(name) { return (try? HuggingFaceFolder(path: name).kind) != .bert }
        return visionNames.contains(name)
    }

    /// Whether `name` (a registry name or a Hugging Face model folder) is a text encoder.
    public static func isText(_ name: String) -> Bool {
        if HuggingFaceFolder.isFolder(name) { return (try? HuggingFaceFolder(path: name).kind) == .bert }
        return textNames.contains(name)
    }

    /// Whether a vision model is a DINOv2 (its classifier pools the class token with the mean patch token and its
    /// parameters are named `dinov2.*`; other ViTs use the class token and `vit.*`).
    public static func isDINOv2(_ name: String) -> Bool {
        if HuggingFaceFolder.isFolder(name) { return (try? HuggingFaceFolder(path: name).kind) == .dinov2 }
        return name == "dinov2-s14"
    }

    /// The model names for messages: the registry's, and that a folder works too.
    public static func choices(_ names: [String]) -> String {
        names.joined(separator: ", ") + ", or a Hugging Face model folder (config.json + model.safetensors)"
    }

    /// A text encoder and its tokenizer: `minilm-l6` or a BERT-family model folder.
    public static func textEncoder(named name: String) throws -> (encoder: BertEncoder, tokenizer: WordPieceTokenizer) {
        if HuggingFaceFolder.isFolder(name) { return try HuggingFaceFolder(path: name).textModel() }
        guard name == "minilm-l6" else { throw ModuleError("unknown text model '\(name)'; choose \(choices(textNames))") }
        return (try miniLM(), try miniLMTokenizer())
    }

    /// A vision model by name: `dinov2-s14` (pretrained), a randomly initialised ViT-S/16 or ViT-B/16, or a Hugging
    /// Face DINOv2 or ViT model folder.
    public static func vision(named name: String, progress: (String) -> Void = { _ in }) throws -> VisionTransformer {
        if HuggingFaceFolder.isFolder(name) {
            progress("loading the model folder \(name)")
            return try HuggingFaceFolder(path: name).visionModel()
        }
        switch name {
        case "dinov2-s14": return try dinov2Small(progress: progress)
        case "vit-s16-random": return VisionTransformer(.vitSmall16, seed: 1)
        case "vit-b16-random": return VisionTransformer(.vitBase16, seed: 1)
        default:
            throw ModuleError("unknown model '\(name)'; choose one of: \(choices(visionNames))")
        }
    }

    /// The files a named model is read from (empty for the randomly initialised ones), so that commands can
    /// refuse to write over them.
    public static func files(of name: String) -> [URL] {
        switch name {
        case "dinov2-s14": return ["dinov2/dinov2-s14.safetensors", "dinov2/vit_s_focus.onnx"].map { Assets.root.appendingPathComponent($0) }
        case "minilm-l6": return ["minilm/model.safetensors", "minilm/config.json", "minilm/vocab.txt"].map { Assets.root.appendingPathComponent($0) }
        case "smollm2-135m": return [Assets.root.appendingPathComponent("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")]
        default: return []
        }
    }

    /// all-MiniLM-L6-v2 from `assets/minilm/` (BERT weights and config).
    public static func miniLM() throws -> BertEncoder {
        let configURL = try Assets.file("minilm/config.json")
        let weightsURL = try Assets.file("minilm/model.safetensors")
        let configuration: BertConfiguration
        do {
            configuration = try JSONDecoder().decode(BertConfiguration.self, from: Data(contentsOf: configURL))
        } catch {
            throw ModuleError("\(configURL.path): not a BERT config (\(error))")
        }
        let model = BertEncoder(configuration)
        let file = try SafeTensorsFile(path: weightsURL.path)
        var state: [String: Tensor] = [:]
        for name in file.names where !name.hasPrefix("pooler.") && name != "embeddings.position_ids" {
            state[name] = try file.tensor(name)
        }
        try model.load(state, strict: true, source: weightsURL.path)
        return model
    }

    /// The WordPiece tokenizer of all-MiniLM-L6-v2.
    public static func miniLMTokenizer() throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabularyFile: try Assets.file("minilm/vocab.txt"))
    }
}
