import XCTest
import Checkpoints
import Engine
import Layers
import Methods
import Models

/// Wrong arguments at the public boundaries give a thrown error that says what is wrong, never a crash.
final class APIMisuseTests: XCTestCase {
    func options(_ change: (inout MethodOptions) -> Void) -> MethodOptions {
        var options = MethodOptions()
        change(&options)
        return options
    }

    /// Applying `method` with `options` to a fresh tiny classifier throws an error mentioning every `text`.
    func assertRefused(_ method: String, _ options: MethodOptions, mentions texts: String...,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try MethodRegistry.method(named: method, options: options).apply(to: tinyClassifier()),
                             file: file, line: line) { error in
            for text in texts {
                XCTAssertTrue("\(error)".contains(text), "'\(error)' does not mention '\(text)'", file: file, line: line)
            }
        }
    }

    func testUnknownOrInvalidTargetModules() {
        assertRefused("lora", options { $0.targetModules = .names(["qkv_proj"]) }, mentions: "matched no Linear layer", "query")
        assertRefused("lora", options { $0.targetModules = .pattern("(unclosed") }, mentions: "not a valid regular expression")
        assertRefused("neat", options { $0.targetModules = .pattern("nothing\\.matches") }, mentions: "matched no Linear layer")
        assertRefused("shira", options { $0.shiraTargets = .names(["classifier"]) }, mentions: "matched no Linear layer")
    }

    func testRankOutOfRange() {
        // The tiny model's Linear layers are 16 wide at most on one side.
        assertRefused("lora", options { $0.rank = 17 }, mentions: "rank 17 is larger than layer")
        assertRefused("lora", options { $0.rank = 0 }, mentions: "rank must be positive")
        assertRefused("lora", options { $0.rank = -3 }, mentions: "rank must be positive")
        assertRefused("neat", options { $0.rank = 1000 }, mentions: "larger than layer")
        assertRefused("pear", options { $0.rank = 0 }, mentions: "rank")
    }

    func testFractionsAndCountsOutOfRange() {
        for density in [0, -0.1, 1.5, Double.nan, Double.infinity] {
            assertRefused("shira", options { $0.density = density }, mentions: "density must be in (0, 1]")
        }
        assertRefused("lora", options { $0.dropout = 1 }, mentions: "dropout must be in [0, 1)")
        assertRefused("lora", options { $0.dropout = -0.5 }, mentions: "dropout must be in [0, 1)")
        assertRefused("neat", options { $0.neatPairs = -1 }, mentions: "NEAT pairs must be in 0...32")
        assertRefused("adapter", options { $0.adapterWidth = 0 }, mentions: "adapter width must be positive")
        assertRefused("vpt", options { $0.prompts = 0 }, mentions: "prompt")
        // Sizes that would allocate without bound if an adapter config asked for them.
        assertRefused("vpt", options { $0.prompts = 1 << 40 }, mentions: "at most 1024 prompt tokens")
        assertRefused("adapter", options { $0.adapterWidth = 1 << 40 }, mentions: "more than 4 x the model width")
        assertRefused("neat", options { $0.neatPairs = 1 << 40 }, mentions: "NEAT pairs must be in 0...32")
        assertRefused("ttc", options { $0.ttcChannels = 0 }, mentions: "channels per layer must be in 1...16")
        assertRefused("ttc", options { $0.ttcChannels = 17 }, mentions: "channels per layer must be in 1...16")
        assertRefused("ttc", options { $0.stageOneFraction = .nan }, mentions: "stage-one fraction")
        assertRefused("pear", options { $0.stageOneFraction = 1.5 }, mentions: "stage-one fraction")
        assertRefused("pear", options { $0.scoringBatches = 0 }, mentions: "at least 1 batch")
        assertRefused("pear", options { $0.pruneFraction = 1 }, mentions: "prune fraction")
        assertRefused("pear", options { $0.pearScore = "magic" }, mentions: "Pear score 'magic'")
        assertRefused("shira", options { $0.shiraMask = .gradient }, mentions: "calibration")
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

    func savedAdapter(_ method: String, _ options: MethodOptions) throws -> URL {
        let model = tinyClassifier()
        try MethodRegistry.method(named: method, options: options).apply(to: model)
        let folder = directory()
        try AdapterFiles.save(model, method: method, options: options, baseModel: "tiny", to: folder)
        return folder
    }

    func testAdapterWhoseConfigDisagreesWithItsTensors() throws {
        let folder = try savedAdapter("lora", options { $0.rank = 2 })
        try editConfig(folder) { $0["r"] = 4 }   // peft's field, which is the truth on load
        XCTAssertThrowsError(try AdapterFiles.load(from: folder, into: tinyClassifier())) { error in
            XCTAssertTrue("\(error)".contains("has shape [2, 16], the model expects [4, 16]"), "\(error)")
        }
    }

    func testAdapterForAnUnknownMethodOrWithBadOptions() throws {
        let folder = try savedAdapter("lora", options { $0.rank = 2 })
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
        let folder = try savedAdapter("shira", options { $0.density = 0.1 })
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
