import XCTest
import Engine
import Methods
import Models
import Training

/// The tiny model and synthetic two-class task that the trainer tests share.
enum TinyTrainerFixture {
    static let vision = tinyVision

    /// Two classes: bright top half vs bright bottom half, with noise.
    static func split(_ count: Int, seed: UInt64) -> ImageSplit {
        var generator = RandomGenerator(seed: seed)
        var images: [[Float]] = [], labels: [Int] = []
        for i in 0..<count {
            let label = i % 2
            images.append((0..<64).map { p in
                let top = p < 32
                return (top == (label == 0) ? 0.8 : 0.2) + 0.1 * generator.nextNormal()
            })
            labels.append(label)
        }
        return ImageSplit(images: images, labels: labels)
    }

    /// A trainer on the tiny model: 64 training images (8 steps per epoch), 32 validation, 32 test; LoRA rank 2.
    /// With `horizontalFlip`, training batches are flipped at random.
    static func makeTrainer(method: String, epochs: Int, learningRate: Float, horizontalFlip: Bool,
                            configure: (inout TrainingConfiguration) -> Void = { _ in },
                            out: URL?) throws -> Trainer {
        var configuration = TrainingConfiguration()
        configuration.method = method
        configuration.epochs = epochs
        configuration.batchSize = 8
        configuration.learningRate = learningRate
        configuration.warmupEpochs = 0.5
        configuration.methodConfig["r"] = 2
        configuration.horizontalFlip = horizontalFlip
        configure(&configuration)
        let model = ImageClassifier(vision: VisionTransformer(vision, seed: 3), classes: 2)
        try configuration.makeMethod().apply(to: model)
        let preprocessor = ImagePreprocessor(resolution: 16, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])
        func source(_ s: ImageSplit, _ flip: Bool) -> BatchSource {
            ImageBatchSource(split: s, rows: 8, columns: 8, preprocessor: preprocessor, flip: flip)
        }
        let trainer = try Trainer(configuration: configuration, model: model,
                                  train: source(split(64, seed: 1), horizontalFlip),
                                  validation: source(split(32, seed: 2), false), test: source(split(32, seed: 3), false),
                                  outputDirectory: out)
        trainer.log = { _ in }
        return trainer
    }

    /// A fresh directory under the temporary folder, removed when `testCase` ends.
    static func temporaryDirectory(_ prefix: String, for testCase: XCTestCase) -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}
