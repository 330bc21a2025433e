import ArgumentParser
import Engine
import Foundation
import Layers
import Methods
import Models

/// Adapter switching in fused mode: the base weights hold one merged adapter; switching unmerges it and merges the
/// next. SHiRA restores and scatters nnz values; LoRA subtracts and adds B A products (dense GEMMs per layer).
struct SwitchBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switch", abstract: "Time switching between fused adapters: SHiRA (scatter) vs LoRA (unfuse + fuse).")
    @OptionGroup var global: GlobalOptions
    @Option(parsing: .upToNextOption, help: "Models.") var models: [String] = ["dinov2-s14", "vit-b16-random"]
    @Option(help: "Switches timed (median reported).") var repeats = 20

    /// Several adapters of one method on `model`'s layers, with random (nonzero) trained values.
    func adapterSets(_ method: String, config: ConfigObject, model: ImageClassifier, count: Int) throws -> [[(Linear, any MergeableAdapter)]] {
        var sets: [[(Linear, any MergeableAdapter)]] = []
        var generator = RandomGenerator(seed: 5)
        let descriptor = try MethodRegistry.descriptor(named: method)
        for index in 0..<count {
            try descriptor.make(descriptor.seeded(config, with: UInt64(index))).apply(to: model)
            var set: [(Linear, any MergeableAdapter)] = []
            for (_, module) in model.vision.namedModules() {
                guard let layer = module as? Linear, let adapter = layer.adapter as? any MergeableAdapter else { continue }
                for (_, parameter) in adapter.namedParameters() {
                    for i in 0..<parameter.count { parameter.data[i] = 0.01 * generator.nextNormal() }
                }
                set.append((layer, adapter))
                layer.adapter = nil
            }
            sets.append(set)
        }
        return sets
    }

    func run() throws {
        try global.announce()
        print("| model | adapter | trainable values | switch ms (median) | vs LoRA r=8 same layers |")
        print("|---|---|---|---|---|")
        for name in models {
            let vision = try PretrainedModels.vision(named: name, progress: printError)
            let model = ImageClassifier(vision: vision, classes: 10, backboneName: "dinov2")
            var loraTimes: [String: Double] = [:]
            let cases: [(String, String, TargetModules)] = [
                ("lora", "LoRA r=8 query,value", .names(["query", "value"])),
                ("shira", "SHiRA 2% query,value", .names(["query", "value"])),
                ("lora", "LoRA r=8 all-linear", .allLinear),
                ("shira", "SHiRA 2% all-linear", .allLinear),
            ]
            for (method, label, targets) in cases {
                var config: ConfigObject = ["target_modules": targets.configValue]
                if method == "shira" { config["density"] = .real(0.02) }
                let sets = try adapterSets(method, config: config, model: model, count: 3)
                let values = sets[0].reduce(0) { $0 + $1.1.namedParameters().reduce(0) { $0 + $1.1.count } }
                for (layer, adapter) in sets[0] { adapter.merge(into: layer) }
                var current = 0
                let seconds = medianSeconds(repeats: repeats) {
                    let next = (current + 1) % sets.count
                    for (layer, adapter) in sets[current] { adapter.unmerge(from: layer) }
                    for (layer, adapter) in sets[next] { adapter.merge(into: layer) }
                    current = next
                }
                for (layer, adapter) in sets[current] { adapter.unmerge(from: layer) }
                let key = targets.description
                var comparison = "-"
                if method == "lora" { loraTimes[key] = seconds } else if let lora = loraTimes[key] {
                    comparison = String(format: "%.1fx faster", lora / seconds)
                }
                print("| \(name) | \(label) | \(values) | \(String(format: "%.3f", seconds * 1000)) | \(comparison) |")
            }
        }
    }
}
