import ArgumentParser
import Engine
import Foundation
import Models
import Training

/// The default job until training lands: load DINOv2-S, print its size and features of a real image.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Load DINOv2-S/14, print its parameter count and the features of a real Fashion-MNIST image.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Input resolution in pixels (a multiple of 14).") var resolution = 224
    @Option(help: "Index of the Fashion-MNIST test image.") var image = 0

    func run() throws {
        try global.announce()
        let started = Date()
        let model = try PretrainedModels.dinov2Small(progress: printError)
        print("model: dinov2-s14, \(model.parameterCount) parameters, loaded in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        let test = try FashionMNIST.load(.test)
        guard image >= 0 && image < test.count else {
            throw ValidationError("--image must be in 0..<\(test.count)")
        }
        let preprocessor = ImagePreprocessor(configuration: model.configuration, resolution: resolution)
        let pixels = preprocessor.batch([test.normalisedPixels(ofImage: image)], rows: test.rows, columns: test.columns)
        let forwardStart = Date()
        let features = Autograd.withoutGrad { model.features(pixels) }
        let seconds = Date().timeIntervalSince(forwardStart)
        let classToken = features.slice(axis: 1, 0..<1).values
        let checksum = classToken.reduce(0.0) { $0 + Double($1) }
        let norm = classToken.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
        print("image: Fashion-MNIST test #\(image) (\(test.classNames[test.labels[image]])), \(resolution)x\(resolution) px")
        print("CLS feature: dimension \(classToken.count), sum \(String(format: "%.6f", checksum)), L2 norm \(String(format: "%.6f", norm))")
        print("first values: \(classToken.prefix(4).map { String(format: "%.5f", $0) }.joined(separator: " "))")
        print("forward: \(String(format: "%.1f", seconds * 1000)) ms")
    }
}
