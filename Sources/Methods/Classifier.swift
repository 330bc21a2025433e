import Engine
import Layers
import Models

/// What a classifier consumes: a batch of normalised images [B, C, H, W] or of token ids.
public enum ClassifierInput {
    case images(Tensor)
    case tokens(TokenBatch)
    /// Pooled backbone features [B, F] (cached when only the head trains).
    case features(Tensor)

    /// Number of examples in the batch.
    public var batchSize: Int {
        switch self {
        case .images(let pixels): return pixels.shape[0]
        case .tokens(let batch): return batch.batchSize
        case .features(let features): return features.shape[0]
        }
    }
}

/// A pretrained backbone plus a linear head named `classifier`, with Hugging Face `...ForImageClassification`
/// style paths: the backbone's parameters live under `backboneName` (e.g. `dinov2.encoder.layer.0...`).
public protocol Classifier: Module {
    /// Path of the backbone inside the classifier ("dinov2", "vit", "bert").
    var backboneName: String { get }
    /// The backbone module.
    var backbone: any Module { get }
    /// The linear head.
    var head: Linear { get }
    /// Pooled backbone features [B, F], the head's input.
    func pooled(_ input: ClassifierInput) -> Tensor
    /// Fingerprint of the pretrained backbone weights, taken before any method changed them; adapters record it
    /// and refuse to load onto another base.
    var baseFingerprint: String { get }
}

/// A short hash of a module's parameter names, shapes and a sample of values (every 257th element). A `Linear`
/// layer's W held quantised counts as the float32 weight it stands for (expanded one layer at a time), so a model
/// has one fingerprint whether its weights are quantised or expanded.
public func weightFingerprint(_ module: any Module) -> String {
    weightFingerprint(of: fingerprintEntries(module, prefix: ""))
}

/// The hash over (path, tensor) entries, each tensor made when its turn comes.
func weightFingerprint(of entries: [(String, () -> Tensor)]) -> String {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    func mix(_ value: UInt64) { hash = (hash ^ value) &* 0x0000_0100_0000_01B3 }
    for (name, make) in entries {
        let tensor = make()
        for byte in name.utf8 { mix(UInt64(byte)) }
        for dimension in tensor.shape { mix(UInt64(dimension)) }
        var i = 0
        while i < tensor.count { mix(UInt64(tensor.data[i].bitPattern)); i += 257 }
    }
    return String(hash, radix: 16)
}

/// `namedParameters()`'s entries in its order, with each quantised `Linear` weight where the float32 one would be
/// (first of the layer's own parameters).
func fingerprintEntries(_ module: any Module, prefix: String) -> [(String, () -> Tensor)] {
    var entries: [(String, () -> Tensor)] = []
    if let layer = module as? Linear, layer.computesQuantized, let matrix = layer.quantizedWeight {
        entries.append((prefix + "weight", { matrix.dequantized() }))
    }
    for (name, tensor) in module.ownParameters { entries.append((prefix + name, { tensor })) }
    for (name, child) in module.children { entries += fingerprintEntries(child, prefix: prefix + name + ".") }
    return entries
}

extension Classifier {
    public var children: [(String, any Module)] { [(backboneName, backbone), ("classifier", head)] }
    /// The backbone as a ViT, when it is one (a convenience for callers; no method needs it).
    public var visionBackbone: VisionTransformer? { backbone as? VisionTransformer }
    /// The backbone as a stack of transformer blocks with generic hooks, when it is one.
    public var transformerBackbone: (any TransformerBackbone)? { backbone as? any TransformerBackbone }

    /// The transformer backbone, or an error naming `method` when the backbone is not one.
    public func requireTransformer(for method: String) throws -> any TransformerBackbone {
        guard let backbone = transformerBackbone else {
            throw ModuleError("\(method) needs a transformer backbone (a ViT or a BERT encoder); '\(backboneName)' is \(type(of: self.backbone))")
        }
        return backbone
    }
    public var classCount: Int { head.outFeatures }
    /// Logits [B, classes].
    public func logits(_ input: ClassifierInput) -> Tensor { head(pooled(input)) }
}

/// How token states become one feature vector.
public enum VisionPooling: String, Codable, Sendable {
    /// The class token alone (classic ViT).
    case classToken = "cls"
    /// The class token concatenated with the mean of the patch tokens (Hugging Face Dinov2ForImageClassification).
    case classAndPatchMean = "cls+mean"
}

/// A Vision Transformer with a linear head.
public final class ImageClassifier: Classifier {
    public let vision: VisionTransformer
    public let head: Linear
    public let pooling: VisionPooling
    public let backboneName: String
    public let baseFingerprint: String

    /// A head of `classes` outputs (weights N(0, 0.01^2), zero bias) on `vision`.
    public init(vision: VisionTransformer, classes: Int, pooling: VisionPooling = .classAndPatchMean,
                backboneName: String = "dinov2", seed: UInt64 = 0) {
        self.vision = vision
        self.pooling = pooling
        self.backboneName = backboneName
        baseFingerprint = weightFingerprint(vision)
        var generator = RandomGenerator(seed: seed &+ 0x4EAD)
        let width = vision.configuration.width * (pooling == .classAndPatchMean ? 2 : 1)
        head = Linear(weight: Tensor.randomNormal([classes, width], std: 0.01, generator: &generator),
                      bias: Tensor(zeros: [classes]))
    }

    public var backbone: any Module { vision }

    /// Pooled features [B, width or 2 * width].
    public func pooledFeatures(_ images: Tensor) -> Tensor {
        let states = vision.features(images)
        let batch = states.shape[0], tokens = states.shape[1], width = states.shape[2]
        let classToken = states.slice(axis: 1, 0..<1).reshaped([batch, width])
        switch pooling {
        case .classToken: return classToken
        case .classAndPatchMean:
            return concat([classToken, states.slice(axis: 1, 1..<tokens).mean(axis: 1)], axis: 1)
        }
    }

    public func pooled(_ input: ClassifierInput) -> Tensor {
        guard case .images(let pixels) = input else { preconditionFailure("ImageClassifier needs images") }
        return pooledFeatures(pixels)
    }
}

/// A BERT encoder with mean pooling and a linear head.
public final class TextClassifier: Classifier {
    public let encoder: BertEncoder
    public let head: Linear
    public let backboneName = "bert"
    public let baseFingerprint: String

    public init(encoder: BertEncoder, classes: Int, seed: UInt64 = 0) {
        self.encoder = encoder
        baseFingerprint = weightFingerprint(encoder)
        var generator = RandomGenerator(seed: seed &+ 0x4EAD)
        head = Linear(weight: Tensor.randomNormal([classes, encoder.configuration.hiddenSize], std: 0.01,
                                                  generator: &generator),
                      bias: Tensor(zeros: [classes]))
    }

    public var backbone: any Module { encoder }

    public func pooled(_ input: ClassifierInput) -> Tensor {
        guard case .tokens(let batch) = input else { preconditionFailure("TextClassifier needs tokens") }
        return encoder.meanPooled(batch)
    }
}
