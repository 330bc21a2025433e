import Checkpoints
import Engine
import Layers
import Models

/// A parameter-efficient fine-tuning method: it decides which parameters of a classifier train, and may attach
/// new modules (adapters, prompts) to the backbone. The classification head always trains.
public protocol PEFTMethod {
    /// The method's typed configuration (`EmptyConfig` for a method without options).
    associatedtype Config: MethodConfig = EmptyConfig
    /// The name used on the command line and in adapter configs.
    var name: String { get }
    /// How this instance is configured (what adapter files store to rebuild it).
    var config: Config { get }
    /// Freezes the classifier, then makes trainable (and attaches) what this method trains.
    func apply(to model: any Classifier) throws
    /// How many training batches the method wants to score weights on before it is applied (0: none).
    var calibrationBatches: Int { get }
    /// `apply(to:)` given calibration batches (inputs with labels).
    func apply(to model: any Classifier, calibration: [(ClassifierInput, [Int])]) throws
    /// Rebuilds adapters whose structure is stored in an adapter file (SHiRA's masks) on `module`, freezing its own
    /// weights; false (the default) when the method builds its adapters from its options, as `apply` does.
    func attachStored(from file: SafeTensorsFile, to module: any Module) throws -> Bool
    /// Integer tensors that record the structure of this method's adapters on `module` (SHiRA's masks), by path
    /// below `module`; saved next to the weights and read back by `attachStored` (default: none).
    func structureTensors(in module: any Module) -> [String: Int32Tensor]
    /// Checks the stored integer tensor `name` of `file` as this method's structure tensor (shape, ranges), so
    /// tools that read adapter files without a model (fusion) refuse what `attachStored` would (default: no check).
    func validateStructureTensor(_ name: String, in file: SafeTensorsFile) throws
    /// The name peft's layout gives the trainable parameter at `path` of `module` (default: `path`; LayerNorm
    /// tuning's live in `<norm>.ln_tuning_layers`). Loading maps peft's names back.
    func peftTensorName(_ path: String, in module: any Module) -> String
    /// Top-level adapter config fields peft expects that this method computes from `module` rather than from its
    /// options, under `naming`'s module names (default: none; LayerNorm tuning's `target_modules`).
    func peftFields(in module: any Module, naming: TransformersNaming) -> ConfigObject
}

extension PEFTMethod where Config == EmptyConfig {
    public var config: EmptyConfig { EmptyConfig() }
}

extension PEFTMethod {
    public var calibrationBatches: Int { 0 }
    public func apply(to model: any Classifier, calibration: [(ClassifierInput, [Int])]) throws {
        try apply(to: model)
    }
    public func attachStored(from file: SafeTensorsFile, to module: any Module) throws -> Bool { false }
    public func structureTensors(in module: any Module) -> [String: Int32Tensor] { [:] }
    public func validateStructureTensor(_ name: String, in file: SafeTensorsFile) throws {}
    public func peftTensorName(_ path: String, in module: any Module) -> String { path }
    public func peftFields(in module: any Module, naming: TransformersNaming) -> ConfigObject { [:] }
}

extension Classifier {
    /// Freezes everything but the head.
    public func freezeBackbone() {
        setRequiresGrad(false)
        head.setRequiresGrad(true)
    }

    /// The trainable parameters by path.
    public var trainableParameters: [(String, Tensor)] { namedParameters().filter { $0.1.requiresGrad } }

    /// "trainable params: X || all params: Y || trainable%: Z", as Hugging Face peft prints it.
    public var trainableSummary: String {
        let trainable = trainableParameterCount, all = parameterCount
        return "trainable params: \(trainable) || all params: \(all) || trainable%: \(String(format: "%.4f", 100 * Double(trainable) / Double(max(all, 1))))"
    }
}
