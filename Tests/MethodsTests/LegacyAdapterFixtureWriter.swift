import XCTest
import Engine
import Layers
import Methods
import Models

/// Writes adapters in the format of the flat `MethodOptions` era (run once, with PEFT_WRITE_LEGACY_ADAPTERS set to
/// the output folder), with the logits each gives on fixed images.
final class LegacyAdapterFixtureWriter: XCTestCase {
    func testWriteLegacyAdapters() throws {
        guard let folder = ProcessInfo.processInfo.environment["PEFT_WRITE_LEGACY_ADAPTERS"] else {
            throw XCTSkip("set PEFT_WRITE_LEGACY_ADAPTERS to write the fixtures")
        }
        let root = URL(fileURLWithPath: folder)
        var cases: [(String, String, (inout MethodOptions) -> Void)] = [
            ("lora-rslora", "lora", { $0.rank = 2; $0.alpha = 6; $0.useRSLoRA = true; $0.dropout = 0.1; $0.targetModules = .names(["query", "value", "dense"]) }),
            ("dora", "lora", { $0.rank = 3; $0.useDoRA = true; $0.targetModules = .pattern(".*attention\\.(query|key)") }),
            ("shira", "shira", { $0.density = 0.05; $0.shiraMaskPart = 1; $0.shiraTargets = .names(["query", "fc1"]) }),
            ("neat", "neat", { $0.rank = 3; $0.neatPairs = 1; $0.neatScale = 0.5; $0.targetModules = .names(["value"]) }),
            ("rlrr", "rlrr", { $0.identityStart = true }),
            ("vpt", "vpt", { $0.prompts = 3 }),
            ("adapter", "adapter", { $0.adapterWidth = 4; $0.adapterScale = 0.2 }),
            ("ttc", "ttc", { $0.ttcChannels = 3; $0.scoringBatches = 1 }),
            ("pear", "pear", { $0.rank = 2; $0.pruneFraction = 0.5; $0.pearSharing = "nearest"; $0.scoringBatches = 1 }),
            ("bitfit", "bitfit", { _ in }),
        ]
        cases.sort { $0.0 < $1.0 }
        var expected: [String: [Float]] = [:]
        let images = tinyImages(seed: 21)
        for (folderName, method, edit) in cases {
            var options = MethodOptions()
            options.seed = 7
            edit(&options)
            let model = tinyClassifier(seed: 4)
            let resolved = try MethodRegistry.method(named: method, options: options)
            try resolved.apply(to: model, calibration: [(.images(tinyImages(seed: 9)), [0, 2])])
            if let staged = resolved as? any StagedMethod {
                try staged.advance(model, calibration: [(.images(tinyImages(seed: 9)), [0, 2])])
            }
            var generator = RandomGenerator(seed: 99)
            for (_, parameter) in model.trainableParameters {
                for i in 0..<parameter.count { parameter.data[i] += 0.05 * (generator.nextUniform() - 0.5) }
            }
            try AdapterFiles.save(model, method: method, options: options, baseModel: "tiny-vit-seed-4",
                                  to: root.appendingPathComponent(folderName))
            expected[folderName] = logits(model, images)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(expected).write(to: root.appendingPathComponent("expected_logits.json"))
    }
}
