import Methods

/// Everything that determines a training run (saved in checkpoints and results). The defaults are those of the main
/// job, `peft train` with no options: SHiRA on DINOv2-S/14, fmnist-1k, 5 epochs.
public struct TrainingConfiguration: Codable, Sendable, Equatable {
    public var model = "dinov2-s14"
    public var task = "fmnist-1k"
    public var method = "shira"
    /// The method's configuration (its `Config` as JSON; missing keys keep the method's defaults). Set it from a
    /// typed method with `use(_:)`, or from `--option` assignments with the descriptor's `applying`.
    public var methodConfig: ConfigObject = [:]
    public var epochs = 5
    public var batchSize = 32
    /// Base learning rate for the backbone/adapter parameters (nil: the method's default).
    public var learningRate: Float?
    /// Learning rate of the classification head (nil: max(learning rate, 1e-3)).
    public var headLearningRate: Float?
    public var weightDecay: Float = 0.05
    public var warmupEpochs: Float = 1
    public var labelSmoothing: Float = 0.1
    /// Global gradient-norm clip (0: off).
    public var clipNorm: Float = 1
    /// Image side in pixels (nil: the model's default).
    public var resolution: Int? = 112
    public var horizontalFlip = false
    /// Which transformers release's module names the saved adapter uses (the current one by default).
    public var adapterNaming: TransformersNaming = .current
    public var seed: UInt64 = 0
    /// Evaluate on validation every N epochs (and after the last).
    public var evaluateEvery = 1
    /// Stop each epoch after this many batches (for quick checks; nil: the whole split).
    public var maxStepsPerEpoch: Int?
    /// Evaluate on at most this many validation/test examples (nil: all).
    public var maxEvaluationExamples: Int?
    /// What a NaN or infinite loss, gradient or update does: stop the run (default) or skip the step.
    public var onNonFinite: NonFiniteAction = .stop
    /// With `.skip`: the run gives up after this many consecutive skipped steps.
    public var maxConsecutiveSkips = 5
    /// A folder of the user's own images (one subfolder per class; see `ImageFolderDataset`) to train on instead
    /// of the built-in `task`.
    public var data: String?
    /// With `data`: skip images that cannot be decoded (counted and listed) instead of stopping.
    public var skipBadExamples = false

    public init() {}

    /// A sensible learning rate per method for AdamW (its descriptor's; 1e-3 for an unknown name).
    public static func defaultLearningRate(method: String) -> Float {
        (try? MethodRegistry.descriptor(named: method))?.defaultLearningRate ?? 1e-3
    }

    /// Trains with `method`: its name and configuration.
    public mutating func use(_ method: some PEFTMethod) {
        self.method = method.name
        methodConfig = method.config.values
    }

    /// The method this configuration names, configured by `methodConfig`.
    public func makeMethod() throws -> any PEFTMethod {
        try MethodRegistry.method(named: method, config: methodConfig)
    }

    public var resolvedLearningRate: Float { learningRate ?? Self.defaultLearningRate(method: method) }
    public var resolvedHeadLearningRate: Float { headLearningRate ?? max(resolvedLearningRate, 1e-3) }
}

extension TrainingConfiguration {
    /// Decodes leniently, as Hugging Face peft does for configs: missing keys keep their defaults, unknown keys
    /// are ignored, so files written by older or newer versions still load.
    public init(from decoder: Decoder) throws {
        self.init()
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let value = try container.decodeIfPresent(type(of: model), forKey: .model) { model = value }
        if let value = try container.decodeIfPresent(type(of: task), forKey: .task) { task = value }
        if let value = try container.decodeIfPresent(type(of: method), forKey: .method) { method = value }
        if let value = try container.decodeIfPresent(ConfigObject.self, forKey: .methodConfig) {
            methodConfig = value
        } else if let legacy = try container.decodeIfPresent(ConfigObject.self, forKey: .options),
                  let descriptor = try? MethodRegistry.descriptor(named: method) {
            // A checkpoint or result of the flat-options era.
            methodConfig = (try? descriptor.validated(descriptor.config(fromLegacyOptions: legacy))) ?? [:]
        }
        if let value = try container.decodeIfPresent(type(of: epochs), forKey: .epochs) { epochs = value }
        if let value = try container.decodeIfPresent(type(of: batchSize), forKey: .batchSize) { batchSize = value }
        learningRate = try container.decodeIfPresent(Float.self, forKey: .learningRate)
        headLearningRate = try container.decodeIfPresent(Float.self, forKey: .headLearningRate)
        if let value = try container.decodeIfPresent(type(of: weightDecay), forKey: .weightDecay) { weightDecay = value }
        if let value = try container.decodeIfPresent(type(of: warmupEpochs), forKey: .warmupEpochs) { warmupEpochs = value }
        if let value = try container.decodeIfPresent(type(of: labelSmoothing), forKey: .labelSmoothing) { labelSmoothing = value }
        if let value = try container.decodeIfPresent(type(of: clipNorm), forKey: .clipNorm) { clipNorm = value }
        if container.contains(.resolution) { resolution = try container.decodeIfPresent(Int.self, forKey: .resolution) }
        if let value = try container.decodeIfPresent(type(of: horizontalFlip), forKey: .horizontalFlip) { horizontalFlip = value }
        if let value = try container.decodeIfPresent(type(of: seed), forKey: .seed) { seed = value }
        if let value = try container.decodeIfPresent(type(of: evaluateEvery), forKey: .evaluateEvery) { evaluateEvery = value }
        maxStepsPerEpoch = try container.decodeIfPresent(Int.self, forKey: .maxStepsPerEpoch)
        maxEvaluationExamples = try container.decodeIfPresent(Int.self, forKey: .maxEvaluationExamples)
        if let value = try container.decodeIfPresent(type(of: onNonFinite), forKey: .onNonFinite) { onNonFinite = value }
        if let value = try container.decodeIfPresent(type(of: maxConsecutiveSkips), forKey: .maxConsecutiveSkips) { maxConsecutiveSkips = value }
        data = try container.decodeIfPresent(String.self, forKey: .data)
        if let value = try container.decodeIfPresent(Bool.self, forKey: .skipBadExamples) { skipBadExamples = value }
        if let value = try container.decodeIfPresent(TransformersNaming.self, forKey: .adapterNaming) { adapterNaming = value }
    }

    enum CodingKeys: String, CodingKey {
        case model, task, method, methodConfig, epochs, batchSize, learningRate, headLearningRate, weightDecay
        case warmupEpochs, labelSmoothing, clipNorm, resolution, horizontalFlip, seed, evaluateEvery, maxStepsPerEpoch
        case maxEvaluationExamples, onNonFinite, maxConsecutiveSkips, data, skipBadExamples, adapterNaming
        /// The flat method options of checkpoints written before typed configs (read, never written).
        case options
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(model, forKey: .model)
        try container.encode(task, forKey: .task)
        try container.encode(method, forKey: .method)
        try container.encode(methodConfig, forKey: .methodConfig)
        try container.encode(epochs, forKey: .epochs)
        try container.encode(batchSize, forKey: .batchSize)
        try container.encodeIfPresent(learningRate, forKey: .learningRate)
        try container.encodeIfPresent(headLearningRate, forKey: .headLearningRate)
        try container.encode(weightDecay, forKey: .weightDecay)
        try container.encode(warmupEpochs, forKey: .warmupEpochs)
        try container.encode(labelSmoothing, forKey: .labelSmoothing)
        try container.encode(clipNorm, forKey: .clipNorm)
        try container.encodeIfPresent(resolution, forKey: .resolution)
        try container.encode(horizontalFlip, forKey: .horizontalFlip)
        try container.encode(seed, forKey: .seed)
        try container.encode(evaluateEvery, forKey: .evaluateEvery)
        try container.encodeIfPresent(maxStepsPerEpoch, forKey: .maxStepsPerEpoch)
        try container.encodeIfPresent(maxEvaluationExamples, forKey: .maxEvaluationExamples)
        try container.encode(onNonFinite, forKey: .onNonFinite)
        try container.encode(maxConsecutiveSkips, forKey: .maxConsecutiveSkips)
        try container.encodeIfPresent(data, forKey: .data)
        if skipBadExamples { try container.encode(skipBadExamples, forKey: .skipBadExamples) }
        if adapterNaming != .current { try container.encode(adapterNaming, forKey: .adapterNaming) }
    }
}

/// What the trainer does when a step's loss, gradients or update would hold a NaN or infinity.
public enum NonFiniteAction: String, Codable, Sendable, CaseIterable {
    /// Stop the run with an error naming the first bad parameter (nothing of that step is applied or saved).
    case stop
    /// Skip the step, halve the learning-rate multiplier, log it; give up after `maxConsecutiveSkips` in a row.
    case skip
}
