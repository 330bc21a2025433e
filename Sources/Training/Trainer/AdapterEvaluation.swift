import Foundation
import Methods
import Models

/// Evaluating an adapter directory (trained or fused) on a task, optionally with the head of another adapter.
public enum AdapterEvaluation {
    /// Accuracy of the adapter in `adapter` on `split` of `task` at `resolution` pixels. With `head`, the
    /// classification head comes from that adapter directory (a fused body used for one of its source tasks).
    public static func accuracy(adapter: URL, head: URL? = nil, task: String, split: String = "test",
                                resolution: Int? = 112, limit: Int? = nil,
                                progress: @escaping (String) -> Void = { _ in }) throws -> Double {
        let adapterConfiguration = try AdapterFiles.configuration(in: adapter)
        var configuration = TrainingConfiguration()
        configuration.model = adapterConfiguration.baseModelNameOrPath
        configuration.task = task
        configuration.method = "linear"  // freezes the backbone; the adapter's own method is applied on load
        configuration.resolution = resolution
        let trainer = try TrainingSession.trainer(configuration, outputDirectory: nil, progress: progress)
        try AdapterFiles.load(from: adapter, into: trainer.model, headFrom: head)
        switch split {
        case "test": return trainer.evaluate(trainer.test, limit: limit)
        case "validation", "val": return trainer.evaluate(trainer.validation, limit: limit)
        case "train": return trainer.evaluate(trainer.train, limit: limit)
        default: throw TrainingError("unknown split '\(split)'; choose test, validation or train")
        }
    }

    /// A classifier built on the adapter's base model with the adapter (and its head) loaded.
    public static func model(from adapter: URL, progress: (String) -> Void = { _ in }) throws -> any Classifier {
        let configuration = try AdapterFiles.configuration(in: adapter)
        let details = configuration.swiftpeft
        let model: any Classifier
        if PretrainedModels.isText(configuration.baseModelNameOrPath) {
            model = TextClassifier(encoder: try PretrainedModels.textEncoder(named: configuration.baseModelNameOrPath).encoder,
                                   classes: details.classes)
        } else {
            let vision = try PretrainedModels.vision(named: configuration.baseModelNameOrPath, progress: progress)
            model = ImageClassifier(vision: vision, classes: details.classes,
                                    pooling: details.backbone == "dinov2" ? .classAndPatchMean : .classToken,
                                    backboneName: details.backbone)
        }
        try AdapterFiles.load(from: adapter, into: model)
        return model
    }
}
