import Engine
import Foundation
import Layers
import Methods
import Models
import Training

/// The one base model every adapter runs on, the exact copy of its weights that every switch restores, and the
/// adapter attached now. Not thread-safe: only the inference worker's thread touches it.
///
/// Invariant: with no adapter active, every base parameter is bit-identical to `pristine`. Loading an adapter
/// attaches it (through `AdapterFiles.load`), takes what it attached off again into a `ResidentAdapter`, and puts
/// back the pristine values of any base parameter it trained, so the invariant holds after every load.
final class SharedBase {
    enum Backbone {
        case vision(VisionTransformer)
        case text(BertEncoder, WordPieceTokenizer)
    }

    let modelName: String
    let backbone: Backbone
    let module: any Module
    /// Base parameters in order, with the pristine copy of each (bit-identical to the loaded checkpoint).
    private let parameters: [(name: String, tensor: Tensor, pristine: [Float])]
    private let pristineByTensor: [ObjectIdentifier: Int]
    private let linearLayers: [Linear]
    private let outputHosts: [any OutputAdaptable]
    private(set) var active: ResidentAdapter?
    private(set) var activeMode: SwitchMode?
    /// The longest text accepted (WordPiece tokens, including [CLS] and [SEP]).
    let maximumTextTokens = 256

    init(modelName: String, backbone: Backbone) {
        self.modelName = modelName
        self.backbone = backbone
        switch backbone {
        case .vision(let vision): module = vision
        case .text(let encoder, _): module = encoder
        }
        let named = module.namedParameters()
        parameters = named.map { ($0.0, $0.1, Array(UnsafeBufferPointer(start: $0.1.data, count: $0.1.count))) }
        pristineByTensor = Dictionary(uniqueKeysWithValues: named.enumerated().map { (ObjectIdentifier($0.element.1), $0.offset) })
        let modules = module.namedModules().map(\.1)
        linearLayers = modules.compactMap { $0 as? Linear }
        outputHosts = modules.compactMap { $0 as? any OutputAdaptable }
    }

    /// Loads the named base model from the assets.
    static func load(model name: String, progress: (String) -> Void) throws -> SharedBase {
        if PretrainedModels.isText(name) {
            let (encoder, tokenizer) = try PretrainedModels.textEncoder(named: name)
            return SharedBase(modelName: name, backbone: .text(encoder, tokenizer))
        }
        guard PretrainedModels.isVision(name) else {
            let known = (PretrainedModels.visionNames + PretrainedModels.textNames).joined(separator: ", ")
            throw ServingError(.badRequest, "--model '\(name)': not a classifier base this server can load (known: \(known))")
        }
        return SharedBase(modelName: name, backbone: .vision(try PretrainedModels.vision(named: name, progress: progress)))
    }

    /// Bytes of the base weights and of their pristine copy.
    var baseBytes: Int { 2 * parameters.reduce(0) { $0 + $1.tensor.count } * MemoryLayout<Float>.size }

    /// Whether every base parameter equals its pristine copy bit for bit (a check for tests and `/health`).
    var isPristine: Bool {
        guard active == nil else { return false }
        return parameters.allSatisfy { entry in
            let data = entry.tensor.data
            return entry.pristine.withUnsafeBufferPointer { copy in
                (0..<copy.count).allSatisfy { data[$0].bitPattern == copy[$0].bitPattern }
            }
        }
    }

    // MARK: Loading

    /// Reads the adapter in `entry.directory` and returns it detached (the base is left pristine, nothing active).
    func load(_ entry: AdapterEntry) throws -> ResidentAdapter {
        deactivate()
        let configuration: AdapterConfiguration
        do { configuration = try AdapterFiles.configuration(in: entry.directory) } catch {
            throw ServingError(.unprocessable, "adapter '\(entry.name)': \(error)")
        }
        let details = configuration.swiftpeft
        guard details.classes >= 1 else {
            throw ServingError(.unprocessable, "adapter '\(entry.name)' (\(entry.directory.path)) has no classification head; this server classifies")
        }
        if !details.savedByPeft && configuration.baseModelNameOrPath != modelName {
            throw ServingError(.unprocessable, "adapter '\(entry.name)' (\(entry.directory.path)) was trained on '\(configuration.baseModelNameOrPath)'; this server serves '\(modelName)'")
        }
        let classifier: any Classifier
        var resolution: Int?
        switch backbone {
        case .vision(let vision):
            classifier = ImageClassifier(vision: vision, classes: details.classes,
                                         pooling: details.backbone == "dinov2" ? .classAndPatchMean : .classToken,
                                         backboneName: details.backbone)
            let run = RunSettings(ofAdapter: entry.directory)
            let side = details.resolution ?? run.resolution ?? vision.configuration.defaultResolution
            do { try vision.configuration.checkResolution(side) } catch {
                throw ServingError(.unprocessable, "adapter '\(entry.name)': \(error)")
            }
            resolution = side
        case .text(let encoder, _):
            classifier = TextClassifier(encoder: encoder, classes: details.classes)
        }
        do {
            try AdapterFiles.load(from: entry.directory, into: classifier)
        } catch {
            detachAll(into: nil)
            restorePristine(all: true)
            throw ServingError(.unprocessable, "adapter '\(entry.name)': \(error)")
        }
        let names = details.classNames ?? RunSettings(ofAdapter: entry.directory).classNames(count: details.classes)
            ?? (0..<details.classes).map { "class \($0)" }
        let resident = ResidentAdapter(entry: entry, method: details.method, classifier: classifier, classNames: names,
                                       resolution: resolution)
        detachAll(into: resident)
        var bytes = classifier.head.namedParameters().reduce(0) { $0 + $1.1.count }
        bytes += resident.linear.reduce(0) { $0 + $1.adapter.namedParameters().reduce(0) { $0 + $1.1.count } }
        bytes += resident.output.reduce(0) { $0 + $1.adapter.namedParameters().reduce(0) { $0 + $1.1.count } }
        bytes += resident.tokenInserter?.namedParameters().reduce(0) { $0 + $1.1.count } ?? 0
        bytes += resident.branches.reduce(0) { $0 + $1.module.namedParameters().reduce(0) { $0 + $1.1.count } }
        bytes += resident.overrides.reduce(0) { $0 + $1.values.count }
        resident.bytes = bytes * MemoryLayout<Float>.size
        return resident
    }

    /// Takes everything attached to the backbone off it (into `resident` when given), keeps the values of trained
    /// base parameters as the adapter's overrides and restores their pristine values.
    func detachAll(into resident: ResidentAdapter?) {
        for layer in linearLayers {
            if let adapter = layer.adapter { resident?.linear.append((layer, adapter)) }
            layer.adapter = nil
        }
        for host in outputHosts {
            if let adapter = host.outputAdapter { resident?.output.append((host, adapter)) }
            host.outputAdapter = nil
        }
        if let transformer = module as? any TransformerBackbone {
            resident?.tokenInserter = transformer.tokenInserter
            transformer.tokenInserter = nil
            for (block, hooks) in transformer.blockHooks.enumerated() {
                for point in BlockHooks.Point.allCases {
                    for (name, branch) in hooks.modules(at: point) {
                        resident?.branches.append((block, point, name, branch))
                        hooks.set(nil, named: name, at: point)
                    }
                }
            }
        }
        for entry in parameters where entry.tensor.requiresGrad {
            resident?.overrides.append((entry.tensor, Array(UnsafeBufferPointer(start: entry.tensor.data, count: entry.tensor.count))))
        }
        restorePristine(all: false)
        module.setRequiresGrad(false)
    }

    /// Copies the pristine values back into trained base parameters (`all`: into every base parameter).
    func restorePristine(all: Bool) {
        for entry in parameters where all || entry.tensor.requiresGrad {
            copy(entry.pristine, into: entry.tensor)
        }
    }

    private func copy(_ values: [Float], into tensor: Tensor) {
        values.withUnsafeBufferPointer { source in
            tensor.data.update(from: source.baseAddress!, count: min(source.count, tensor.count))
        }
    }

    private func restorePristine(_ tensor: Tensor) {
        guard let index = pristineByTensor[ObjectIdentifier(tensor)] else { return }
        copy(parameters[index].pristine, into: tensor)
    }

    // MARK: Switching

    /// Makes `resident` the active adapter in `mode` (nothing to do when it already is).
    func activate(_ resident: ResidentAdapter, mode: SwitchMode) {
        if active === resident && activeMode == mode { return }
        deactivate()
        for (layer, adapter) in resident.linear {
            if mode == .fused, let mergeable = adapter as? any MergeableAdapter {
                mergeable.merge(into: layer)
            } else {
                layer.adapter = adapter
            }
        }
        for (host, adapter) in resident.output { host.outputAdapter = adapter }
        if let transformer = module as? any TransformerBackbone {
            transformer.tokenInserter = resident.tokenInserter
            for branch in resident.branches { transformer.blockHooks[branch.block].set(branch.module, named: branch.name, at: branch.point) }
        }
        for (tensor, values) in resident.overrides { copy(values, into: tensor) }
        active = resident
        activeMode = mode
        resident.lastMode = mode
    }

    /// Takes the active adapter off the base, leaving every base parameter bit-identical to its pristine copy:
    /// SHiRA (and DoRA) write back the values they saved before merging; other merged updates are undone by copying
    /// the layer's pristine weight and bias back, never by subtracting (which would leave float32 rounding behind).
    func deactivate() {
        guard let resident = active else { return }
        for (layer, adapter) in resident.linear {
            if activeMode == .fused, let mergeable = adapter as? any MergeableAdapter {
                if mergeable.unmergeRestoresExactly {
                    mergeable.unmerge(from: layer)
                } else {
                    restorePristine(layer.weight)
                    if let bias = layer.bias { restorePristine(bias) }
                }
            } else {
                layer.adapter = nil
            }
        }
        for (host, _) in resident.output { host.outputAdapter = nil }
        if let transformer = module as? any TransformerBackbone {
            transformer.tokenInserter = nil
            for branch in resident.branches { transformer.blockHooks[branch.block].set(nil, named: branch.name, at: branch.point) }
        }
        for (tensor, _) in resident.overrides { restorePristine(tensor) }
        active = nil
        activeMode = nil
    }

    // MARK: Inference

    /// Probabilities [example][class] of the active adapter's classifier on `inputs` (all of one kind).
    func probabilities(_ resident: ResidentAdapter, inputs: [ServingInput]) throws -> [[Float]] {
        let logits = try Autograd.withoutGrad { resident.classifier.logits(try classifierInput(resident, inputs)) }
        let classes = logits.shape[1], values = logits.values
        return (0..<inputs.count).map { row in
            let slice = values[(row * classes)..<((row + 1) * classes)]
            let top = slice.max() ?? 0
            let exps = slice.map { Foundation.exp($0 - top) }
            let total = exps.reduce(0, +)
            return exps.map { $0 / total }
        }
    }

    /// The model input for `inputs`: images resized to the adapter's resolution, or texts tokenised.
    func classifierInput(_ resident: ResidentAdapter, _ inputs: [ServingInput]) throws -> ClassifierInput {
        switch backbone {
        case .vision(let vision):
            let images: [InputImage] = try inputs.map {
                guard case .image(let image) = $0 else { throw ServingError(.badRequest, "this server's base '\(modelName)' classifies images; give \"image\", not \"text\"") }
                return image
            }
            let preprocessor = ImagePreprocessor(configuration: vision.configuration, resolution: resident.resolution ?? vision.configuration.defaultResolution)
            return .images(preprocessor.batch(images))
        case .text(_, let tokenizer):
            let texts: [String] = try inputs.map {
                guard case .text(let text) = $0 else { throw ServingError(.badRequest, "this server's base '\(modelName)' classifies texts; give \"text\", not \"image\"") }
                return text
            }
            let encoded = tokenizer.encodeBatch(texts, maxLength: maximumTextTokens)
            return .tokens(TokenBatch(ids: encoded.ids, mask: encoded.mask))
        }
    }

    /// A neutral example of this base's kind (a grey image, a short text), for measuring costs.
    var probeInput: ServingInput {
        switch backbone {
        case .vision: return .image(InputImage(name: "probe", rows: 32, columns: 32, grey: [Float](repeating: 0.5, count: 32 * 32)))
        case .text: return .text("a short sentence to time the model with")
        }
    }
}
