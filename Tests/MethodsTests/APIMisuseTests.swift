import XCTest
import Checkpoints
import Engine
import Layers
import Methods
import Models

/// Wrong arguments at the public boundaries give a thrown error that says what is wrong, never a crash.
final class APIMisuseTests: XCTestCase {
    /// Applying `method` with `options` to a fresh tiny classifier throws an error mentioning every `text`.
    func assertRefused(_ method: String, _ options: ConfigObject, mentions texts: String...,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try MethodRegistry.method(named: method, config: options).apply(to: tinyClassifier()),
                             file: file, line: line) { error in
            for text in texts {
                XCTAssertTrue("\(error)".contains(text), "'\(error)' does not mention '\(text)'", file: file, line: line)
            }
        }
    }

    func testUnknownOrInvalidTargetModules() {
        assertRefused("lora", ["target_modules": TargetModules.names(["qkv_proj"]).configValue], mentions: "matched no Linear layer", "query")
        assertRefused("lora", ["target_modules": TargetModules.pattern("(unclosed").configValue], mentions: "not a valid regular expression")
        assertRefused("neat", ["target_modules": TargetModules.pattern("nothing\\.matches").configValue], mentions: "matched no Linear layer")
        assertRefused("shira", ["target_modules": TargetModules.names(["classifier"]).configValue], mentions: "matched no Linear layer")
    }

    func testRankOutOfRange() {
        // The tiny model's Linear layers are 16 wide at most on one side.
        assertRefused("lora", ["r": 17], mentions: "rank 17 is larger than layer")
        assertRefused("lora", ["r": 0], mentions: "rank must be positive")
        assertRefused("lora", ["r": -3], mentions: "rank must be positive")
        assertRefused("neat", ["r": 1000], mentions: "larger than layer")
        assertRefused("pear", ["r": 0], mentions: "rank")
    }

    func testFractionsAndCountsOutOfRange() {
        for density in [0, -0.1, 1.5, Double.nan, Double.infinity] {
            assertRefused("shira", ["density": ConfigValue(density)], mentions: density.isFinite ? "density must be in (0, 1]" : "'density' is \(density); it takes a float")
        }
        assertRefused("lora", ["lora_dropout": 1], mentions: "dropout must be in [0, 1)")
        assertRefused("lora", ["lora_dropout": -0.5], mentions: "dropout must be in [0, 1)")
        assertRefused("neat", ["depth": -1], mentions: "NEAT depth (encoder/decoder pairs) must be in 0...32")
        assertRefused("adapter", ["adapter_width": 0], mentions: "adapter width must be positive")
        assertRefused("vpt", ["num_virtual_tokens": 0], mentions: "prompt")
        // Sizes that would allocate without bound if an adapter config asked for them.
        assertRefused("vpt", ["num_virtual_tokens": ConfigValue(1 << 40)], mentions: "at most 1024 prompt tokens")
        assertRefused("adapter", ["adapter_width": ConfigValue(1 << 40)], mentions: "more than 4 x the model width")
        assertRefused("neat", ["depth": ConfigValue(1 << 40)], mentions: "NEAT depth (encoder/decoder pairs) must be in 0...32")
        assertRefused("ttc", ["channels": 0], mentions: "channels per layer must be in 1...16")
        assertRefused("ttc", ["channels": 17], mentions: "channels per layer must be in 1...16")
        assertRefused("ttc", ["stage_fraction": .real(.nan)], mentions: "'stage_fraction' is nan; it takes a float")
        assertRefused("ttc", ["stage_fraction": -0.5], mentions: "stage-one fraction")
        assertRefused("pear", ["stage_fraction": 1.5], mentions: "stage-one fraction")
        assertRefused("pear", ["scoring_batches": 0], mentions: "at least 1 batch")
        assertRefused("pear", ["prune_fraction": 1], mentions: "prune fraction")
        assertRefused("pear", ["score": "magic"], mentions: "Pear score 'magic'")
        assertRefused("shira", ["mask_type": "grad"], mentions: "calibration")
        XCTAssertThrowsError(try MethodRegistry.method(named: "lora-xl")) { error in
            XCTAssertTrue("\(error)".contains("unknown method 'lora-xl'"), "\(error)")
        }
    }

    func directory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("peft-misuse-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Rewrites the JSON object in `adapter_config.json` through `change`.
    func editConfig(_ folder: URL, _ change: (inout [String: Any]) -> Void) throws {
        let url = folder.appendingPathComponent("adapter_config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        change(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: url)
    }

    /// Rewrites the config's "swiftpeft" section (method, options, ...) in place.
    func editDetails(_ folder: URL, _ change: (inout [String: Any]) -> Void) throws {
        try editConfig(folder) { json in
            var details = json["swiftpeft"] as! [String: Any]
            change(&details)
            json["swiftpeft"] = details
        }
    }

    func savedAdapter(_ method: String, _ options: ConfigObject) throws -> URL {
        let model = tinyClassifier()
        try MethodRegistry.method(named: method, config: options).apply(to: model)
        let folder = directory()
        try AdapterFiles.save(model, method: MethodRegistry.method(named: method, config: options), baseModel: "tiny", to: folder)
        return folder
    }

    func testAdapterWhoseConfigDisagreesWithItsTensors() throws {
        let folder = try savedAdapter("lora", ["r": 2])
        try editConfig(folder) { $0["r"] = 4 }   // peft's field, which is the truth on load
        XCTAssertThrowsError(try AdapterFiles.load(from: folder, into: tinyClassifier())) { error in
            XCTAssertTrue("\(error)".contains("has shape [2, 16], the model expects [4, 16]"), "\(error)")
        }
    }

    func testAdapterForAnUnknownMethodOrWithBadOptions() throws {
        let folder = try savedAdapter("lora", ["r": 2])
        try editDetails(folder) { $0["method"] = "qlora" }
        XCTAssertThrowsError(try AdapterFiles.load(from: folder, into: tinyClassifier())) { error in
            XCTAssertTrue("\(error)".contains("unknown method 'qlora'"), "\(error)")
        }
        try editDetails(folder) { $0["method"] = "lora" }
        try editConfig(folder) { $0["r"] = 99 }
        XCTAssertThrowsError(try AdapterFiles.load(from: folder, into: tinyClassifier())) { error in
            XCTAssertTrue("\(error)".contains("rank 99 is larger than layer"), "\(error)")
        }
    }

    func testSHiRAIndicesOutsideTheWeightAreRefused() throws {
        let folder = try savedAdapter("shira", ["density": 0.1])
        let url = folder.appendingPathComponent("adapter_model.safetensors")
        let file = try SafeTensorsFile(url: url)
        var tensors: [String: Tensor] = [:]
        var integers: [String: Int32Tensor] = [:]
        for name in file.names {
            if name.hasSuffix(".shira_indices") {
                var values = try file.int32Values(name)
                values[0] = 10_000
                integers[name] = Int32Tensor(shape: file.info(name)!.shape, values: values)
            } else {
                tensors[name] = try file.tensor(name).copy()
            }
        }
        try SafeTensors.write(tensors, int32: integers, to: url)
        XCTAssertThrowsError(try AdapterFiles.load(from: folder, into: tinyClassifier())) { error in
            XCTAssertTrue("\(error)".contains("holds positions outside"), "\(error)")
        }
    }

    func testMissingAdapterDirectory() {
        XCTAssertThrowsError(try AdapterFiles.load(from: directory(), into: tinyClassifier())) { error in
            XCTAssertTrue("\(error)".contains("adapter_config.json: missing"), "\(error)")
        }
    }
}
