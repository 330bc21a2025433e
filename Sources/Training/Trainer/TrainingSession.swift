import BLASBinding
import Engine
import Foundation
import Methods
import Models

/// Builds everything a run needs from its configuration: the task's splits, the pretrained backbone with a new
/// head, the PEFT method applied to it, and the batch sources.
public enum TrainingSession {
    /// The default backbone for a task ("minilm-l6" for text tasks, "dinov2-s14" for image tasks).
    public static func defaultModel(forTask task: String) throws -> String {
        try TaskRegistry.kind(of: task) == .text ? "minilm-l6" : "dinov2-s14"
    }

    /// A classifier for `configuration` with its method applied, and the train/validation/test sources.
    public static func prepare(_ configuration: TrainingConfiguration, progress: (String) -> Void = { _ in })
        throws -> (model: any Classifier, train: BatchSource, validation: BatchSource, test: BatchSource) {
        let prepared = try prepareNamed(configuration, progress: progress)
        return (prepared.model, prepared.train, prepared.validation, prepared.test)
    }

    /// `prepare`, with the class names of the task or data.
    static func prepareNamed(_ configuration: TrainingConfiguration, progress: (String) -> Void)
        throws -> (model: any Classifier, train: BatchSource, validation: BatchSource, test: BatchSource, classNames: [String]) {
        try OpenBLAS.load()
        try Trainer.validate(configuration)
        let method = try configuration.makeMethod()
        if let data = configuration.data, TextDataset.isText(URL(fileURLWithPath: data)) {
            guard PretrainedModels.isText(configuration.model) else {
                throw TrainingError("--data \(data) holds texts; choose a text model: \(PretrainedModels.choices(PretrainedModels.textNames))")
            }
            let dataset = try TextDataset.load(URL(fileURLWithPath: data), seed: configuration.seed,
                                              skipBad: configuration.skipBadExamples, progress: progress)
            let (encoder, tokenizer) = try PretrainedModels.textEncoder(named: configuration.model)
            let classifier = TextClassifier(encoder: encoder, classes: dataset.classNames.count, seed: configuration.seed)
            let train = TextBatchSource(split: dataset.train, tokenizer: tokenizer)
            try apply(method, to: classifier, train: train, configuration: configuration, progress: progress)
            return (classifier, train, TextBatchSource(split: dataset.validation, tokenizer: tokenizer),
                    TextBatchSource(split: dataset.test, tokenizer: tokenizer), dataset.classNames)
        }
        if let data = configuration.data {
            guard PretrainedModels.isVision(configuration.model) else {
                throw TrainingError("--data \(data) is an image folder; choose a vision model: \(PretrainedModels.choices(PretrainedModels.visionNames))")
            }
            let vision = try PretrainedModels.vision(named: configuration.model, progress: progress)
            let resolution = configuration.resolution ?? vision.configuration.defaultResolution
            try vision.configuration.checkResolution(resolution)
            let folder = try ImageFolderDataset.load(URL(fileURLWithPath: data), side: resolution, seed: configuration.seed,
                                                     skipBad: configuration.skipBadExamples, progress: progress)
            let classifier = ImageClassifier(vision: vision, classes: folder.classNames.count,
                                             pooling: PretrainedModels.isDINOv2(configuration.model) ? .classAndPatchMean : .classToken,
                                             backboneName: PretrainedModels.isDINOv2(configuration.model) ? "dinov2" : "vit",
                                             seed: configuration.seed)
            let preprocessor = ImagePreprocessor(configuration: vision.configuration, resolution: resolution)
            let train = PictureBatchSource(split: folder.train, preprocessor: preprocessor, flip: configuration.horizontalFlip)
            try apply(method, to: classifier, train: train, configuration: configuration, progress: progress)
            return (classifier, train, PictureBatchSource(split: folder.validation, preprocessor: preprocessor, flip: false),
                    PictureBatchSource(split: folder.test, preprocessor: preprocessor, flip: false), folder.classNames)
        }
        switch try TaskRegistry.kind(of: configuration.task) {
        case .image:
            guard PretrainedModels.isVision(configuration.model) else {
                throw TrainingError("task '\(configuration.task)' is an image task; choose a vision model: \(PretrainedModels.choices(PretrainedModels.visionNames))")
            }
            let task = try TaskRegistry.image(named: configuration.task)
            let vision = try PretrainedModels.vision(named: configuration.model, progress: progress)
            let classifier = ImageClassifier(vision: vision, classes: task.classNames.count,
                                             pooling: PretrainedModels.isDINOv2(configuration.model) ? .classAndPatchMean : .classToken,
                                             backboneName: PretrainedModels.isDINOv2(configuration.model) ? "dinov2" : "vit",
                                             seed: configuration.seed)
            let resolution = configuration.resolution ?? vision.configuration.defaultResolution
            try vision.configuration.checkResolution(resolution)
            let preprocessor = ImagePreprocessor(configuration: vision.configuration, resolution: resolution)
            func source(_ split: ImageSplit, flip: Bool) -> BatchSource {
                ImageBatchSource(split: split, rows: task.rows, columns: task.columns, preprocessor: preprocessor, flip: flip)
            }
            if configuration.horizontalFlip && !task.horizontalFlipPreservesLabel {
                progress("horizontal flips are off for \(task.name): mirroring changes its labels")
            }
            let train = source(task.train, flip: configuration.horizontalFlip && task.horizontalFlipPreservesLabel)
            try apply(method, to: classifier, train: train, configuration: configuration, progress: progress)
            return (classifier, train, source(task.validation, flip: false), source(task.test, flip: false), task.classNames)
        case .text:
            guard PretrainedModels.isText(configuration.model) else {
                throw TrainingError("task '\(configuration.task)' is a text task; choose a text model: \(PretrainedModels.choices(PretrainedModels.textNames))")
            }
            let task = try TaskRegistry.text(named: configuration.task)
            let (encoder, tokenizer) = try PretrainedModels.textEncoder(named: configuration.model)
            let classifier = TextClassifier(encoder: encoder, classes: task.classNames.count, seed: configuration.seed)
            let train = TextBatchSource(split: task.train, tokenizer: tokenizer)
            try apply(method, to: classifier, train: train, configuration: configuration, progress: progress)
            return (classifier, train,
                    TextBatchSource(split: task.validation, tokenizer: tokenizer),
                    TextBatchSource(split: task.test, tokenizer: tokenizer), task.classNames)
        }
    }

    /// Applies `method`, first giving it the calibration batches it asks for (drawn from the training split with
    /// the run's seed, as `Trainer.calibrationBatches` draws them).
    static func apply(_ method: any PEFTMethod, to model: any Classifier, train: BatchSource,
                      configuration: TrainingConfiguration, progress: (String) -> Void) throws {
        let wanted = method.calibrationBatches
        guard wanted > 0 else { return try method.apply(to: model) }
        progress("\(method.name): scoring weights on \(wanted) calibration batches")
        try method.apply(to: model, calibration: calibrationBatches(wanted, from: train, configuration: configuration))
    }

    /// `count` batches drawn from `train` by a fixed shuffle of the run's seed.
    static func calibrationBatches(_ count: Int, from train: BatchSource,
                                   configuration: TrainingConfiguration) -> [(ClassifierInput, [Int])] {
        var generator = RandomGenerator(seed: configuration.seed &+ 0xCA1)
        var order = Array(0..<train.count)
        order.shuffle(using: &generator)
        let size = configuration.batchSize
        return (0..<min(count, train.count / size)).map { b in
            let indices = Array(order[(b * size)..<((b + 1) * size)])
            return (train.batch(indices, augment: false, generator: &generator), indices.map { train.labels[$0] })
        }
    }

    /// A trainer for `configuration`, writing into `outputDirectory` when given.
    public static func trainer(_ configuration: TrainingConfiguration, outputDirectory: URL?,
                               progress: @escaping (String) -> Void) throws -> Trainer {
        let prepared = try prepareNamed(configuration, progress: progress)
        let trainer = try Trainer(configuration: configuration, model: prepared.model, train: prepared.train,
                                  validation: prepared.validation, test: prepared.test, outputDirectory: outputDirectory)
        trainer.log = progress
        trainer.classNames = prepared.classNames
        return trainer
    }
}
