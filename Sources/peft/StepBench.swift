import ArgumentParser
import Engine
import Foundation
import Layers
import Methods
import Models
import Training

/// Times one full training step (forward, backward, AdamW update) of a method on a vision backbone.
struct StepBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step", abstract: "Seconds per training step (forward + backward + update) per method.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Model name.") var model = "dinov2-s14"
    @Option(parsing: .upToNextOption, help: "Methods to time.") var methods: [String] = ["linear", "full", "lora"]
    @Option(help: "Batch size.") var batch = 32
    @Option(help: "Resolution in pixels.") var resolution = 112
    @Option(help: "Timed steps (median reported).") var repeats = 5
    @OptionGroup var methodFlags: MethodFlags

    func run() throws {
        try global.announce()
        print("| method | trainable params | s/step | images/s | GFLOP/s (fwd+bwd model FLOPs) |")
        print("|---|---|---|---|---|")
        var generator = RandomGenerator(seed: 11)
        let pixels = Tensor.randomNormal([batch, 3, resolution, resolution], generator: &generator)
        let labels = (0..<batch).map { $0 % 10 }
        for name in methods {
            let vision = try PretrainedModels.vision(named: model, progress: printError)
            let classifier = ImageClassifier(vision: vision, classes: 10)
            try MethodRegistry.method(named: name, config: methodFlags.config(for: name, seed: 0, strict: false)).apply(to: classifier)
            let optimizer = AdamW(parameters: classifier.trainableParameters)
            let seconds = medianSeconds(repeats: repeats) {
                let loss = ModelMode.training(stepSeed: 0) {
                    crossEntropy(classifier.logits(.images(pixels)), labels: labels, smoothing: 0.1)
                }
                loss.backward()
                optimizer.update(learningRate: 1e-5, clipNorm: 1)
            }
            // Forward FLOPs, plus the backward's input gradients (about 1x forward) and, for full fine-tuning,
            // the weight gradients (another 1x).
            let forward = vision.configuration.forwardFLOPs(resolution: resolution) * Double(batch)
            let total = forward * (name == "linear" ? 1 : name == "full" ? 3 : 2)
            print("| \(name) | \(classifier.trainableParameterCount) | \(String(format: "%.3f", seconds)) | \(String(format: "%.1f", Double(batch) / seconds)) | \(String(format: "%.0f", total / seconds / 1e9)) |")
        }
    }
}
