import Engine
import Foundation
import Methods
import Models

/// Adapters with random values instead of trained ones, in the real adapter format: for serving benchmarks and
/// tests, which need many distinct adapters of one base without training each. Not for predictions.
public enum SyntheticAdapters {
    /// Writes `count` adapters of `method` (options `config`) on the base `model` under `root` (`root/PREFIX-i`, the prefix defaulting to the method's name),
    /// each with its own seed: the method's initial values plus N(0, `scale`^2) noise on every trained value and a
    /// random head of `classes` classes named `class-0`, `class-1`, .... Returns them as catalog entries.
    public static func write(model: String, method: String, config: ConfigObject = [:], count: Int, classes: Int = 10,
                             resolution: Int? = nil, scale: Float = 0.01, seed: UInt64 = 0, namePrefix: String? = nil,
                             to root: URL, progress: (String) -> Void = { _ in }) throws -> [AdapterEntry] {
        guard count >= 1 && count <= 10_000 else { throw ServingError(.badRequest, "count must be in 1...10000, got \(count)") }
        guard classes >= 1 && classes <= AdapterFiles.maximumClasses else { throw ServingError(.badRequest, "classes must be in 1...\(AdapterFiles.maximumClasses), got \(classes)") }
        let base = try SharedBase.load(model: model, progress: progress)
        return try write(on: base, method: method, config: config, count: count, classes: classes, resolution: resolution,
                         scale: scale, seed: seed, namePrefix: namePrefix ?? method, to: root, progress: progress)
    }

    static func write(on base: SharedBase, method: String, config: ConfigObject, count: Int, classes: Int,
                      resolution: Int?, scale: Float, seed: UInt64, namePrefix: String, to root: URL,
                      progress: (String) -> Void) throws -> [AdapterEntry] {
        let descriptor = try MethodRegistry.descriptor(named: method)
        let names = (0..<classes).map { "class-\($0)" }
        var entries: [AdapterEntry] = []
        for index in 0..<count {
            let adapterSeed = seed &+ UInt64(index)
            let classifier: any Classifier
            switch base.backbone {
            case .vision(let vision): classifier = ImageClassifier(vision: vision, classes: classes, seed: adapterSeed)
            case .text(let encoder, _): classifier = TextClassifier(encoder: encoder, classes: classes, seed: adapterSeed)
            }
            let applied = try descriptor.make(descriptor.seeded(config, with: adapterSeed))
            defer {
                base.detachAll(into: nil)
                base.restorePristine(all: true)
            }
            try applied.apply(to: classifier)
            var generator = RandomGenerator(seed: adapterSeed &+ 0x5EED)
            for (name, parameter) in classifier.trainableParameters {
                let std: Float = name.hasPrefix("classifier.") ? 0.1 : scale
                for i in 0..<parameter.count { parameter.data[i] += std * generator.nextNormal() }
            }
            let name = "\(namePrefix)-\(index)"
            let directory = root.appendingPathComponent(name)
            try AdapterFiles.save(classifier, method: applied, baseModel: base.modelName, classNames: names,
                                  resolution: resolution, to: directory)
            entries.append(AdapterEntry(name: name, directory: directory))
            if (index + 1) % 25 == 0 { progress("wrote \(index + 1)/\(count) \(method) adapters") }
        }
        return entries
    }
}
