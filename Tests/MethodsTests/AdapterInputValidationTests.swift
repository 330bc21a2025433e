import XCTest
import Checkpoints
import Engine
import Methods
import Models

/// Adapter files as hostile input: malformed SHiRA masks, non-finite values, impossible class counts; and the
/// adapter directory written as a whole.
final class AdapterInputValidationTests: XCTestCase {
    func directory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("peft-adapter-input-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// A saved SHiRA adapter, and its weights file.
    func savedSHiRA() throws -> (folder: URL, weights: URL, key: String) {
        let model = tinyClassifier()
        try SHiRA().apply(to: model)
        let folder = directory()
        try AdapterFiles.save(model, method: MethodRegistry.method(named: "shira"), baseModel: "tiny", to: folder)
        let weights = folder.appendingPathComponent("adapter_model.safetensors")
        let file = try SafeTensorsFile(path: weights.path)
        let key = file.names.sorted().first { $0.hasSuffix(".shira_indices") }!
        return (folder, weights, key)
    }

    /// Rewrites the adapter with `key` replaced by `indices`.
    func replaceIndices(_ weights: URL, _ key: String, with indices: Int32Tensor) throws {
        let file = try SafeTensorsFile(path: weights.path)
        var floats: [String: Tensor] = [:], integers: [String: Int32Tensor] = [:]
        for name in file.names {
            if name.hasSuffix(".shira_indices") {
                integers[name] = Int32Tensor(shape: file.info(name)!.shape, values: try file.int32Values(name))
            } else {
                floats[name] = try file.tensor(name).copy()
            }
        }
        integers[key] = indices
        try SafeTensors.write(floats, int32: integers, metadata: ["format": "pt"], to: weights)
    }

    func testMalformedShiraIndicesAreRefused() throws {
        let (folder, weights, key) = try savedSHiRA()
        let original = try SafeTensorsFile(path: weights.path)
        let values = try original.int32Values(key)
        let count = values.count / 2
        var duplicated = values
        duplicated[1] = duplicated[0]
        duplicated[count + 1] = duplicated[count]
        let cases: [(Int32Tensor, String)] = [
            (Int32Tensor(shape: [values.count], values: values), "has shape [\(values.count)]"),
            (Int32Tensor(shape: [1, values.count], values: values), "has shape [1, \(values.count)]"),
            (Int32Tensor(shape: [2, count], values: duplicated), "repeats position"),
        ]
        for (indices, message) in cases {
            try replaceIndices(weights, key, with: indices)
            XCTAssertThrowsError(try AdapterFiles.load(from: folder, into: tinyClassifier())) { error in
                XCTAssertTrue("\(error)".contains(message) && "\(error)".contains(key), "\(error)")
            }
            XCTAssertThrowsError(try Fusion.Adapter(directory: folder)) { error in
                XCTAssertTrue("\(error)".contains(message), "fusion reads masks with the same checks: \(error)")
            }
        }
    }

    func testNonFiniteAdapterValuesAreRefusedNamingTheTensor() throws {
        let model = tinyClassifier()
        try LoRA().apply(to: model)
        let name = model.trainableParameters.first { $0.0.contains("lora_B") }!.0
        Dictionary(uniqueKeysWithValues: model.trainableParameters)[name]!.data[0] = .infinity
        let folder = directory()
        try AdapterFiles.save(model, method: MethodRegistry.method(named: "lora"), baseModel: "tiny", to: folder)
        // The error names the tensor as the file stores it (transformers 5's module names), so it can be found.
        let stored = "base_model.model." + name.replacingOccurrences(of: "attention.attention.query", with: "attention.q_proj")
        XCTAssertNotEqual(stored, "base_model.model." + name)
        XCTAssertTrue(try SafeTensorsFile(path: folder.appendingPathComponent("adapter_model.safetensors").path).contains(stored))
        XCTAssertThrowsError(try AdapterFiles.load(from: folder, into: tinyClassifier())) { error in
            XCTAssertTrue("\(error)".contains(stored) && "\(error)".contains("NaN or infinity"), "\(error)")
        }
    }

    func testImpossibleClassCountsAreRefusedWhenTheConfigIsRead() throws {
        let model = tinyClassifier()
        try LoRA().apply(to: model)
        let folder = directory()
        try AdapterFiles.save(model, method: MethodRegistry.method(named: "lora"), baseModel: "tiny", to: folder)
        let url = folder.appendingPathComponent("adapter_config.json")
        let original = try Data(contentsOf: url)
        for (classes, names) in [(-1, nil), (AdapterFiles.maximumClasses + 1, nil), (3, ["a"])] as [(Int, [String]?)] {
            var config = try JSONSerialization.jsonObject(with: original) as! [String: Any]
            var details = config["swiftpeft"] as! [String: Any]
            details["classes"] = classes
            if let names { details["classNames"] = names }
            config["swiftpeft"] = details
            try JSONSerialization.data(withJSONObject: config).write(to: url)
            XCTAssertThrowsError(try AdapterFiles.configuration(in: folder)) { error in
                XCTAssertTrue("\(error)".contains("swiftpeft.class"), "\(error)")
            }
        }
    }

    func testAdapterDirectoryIsReplacedAsAWhole() throws {
        let first = tinyClassifier()
        try LoRA().apply(to: first)
        let folder = directory()
        try AdapterFiles.save(first, method: MethodRegistry.method(named: "lora"), baseModel: "tiny", to: folder)
        // Another adapter over it: both files change together and no staging directory is left.
        let second = tinyClassifier(seed: 5)
        let lora = LoRA(config: .init { $0.r = 2 })
        try lora.apply(to: second)
        try AdapterFiles.save(second, method: lora, baseModel: "tiny", to: folder)
        XCTAssertEqual(try AdapterFiles.configuration(in: folder).peftFields["r"], 2)
        let restored = tinyClassifier(seed: 5)
        try AdapterFiles.load(from: folder, into: restored)
        XCTAssertEqual(logits(restored, tinyImages(seed: 2)), logits(second, tinyImages(seed: 2)))
        let parent = folder.deletingLastPathComponent()
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: parent.path)
            .filter { $0.hasPrefix(".\(folder.lastPathComponent).tmp-") }
        XCTAssertEqual(leftovers, [])
        // A destination that is a file is refused and left as it was.
        let blocker = directory()
        try Data("x".utf8).write(to: blocker)
        XCTAssertThrowsError(try AdapterFiles.save(second, method: lora, baseModel: "tiny", to: blocker)) { error in
            XCTAssertTrue("\(error)".contains("is not a directory"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: blocker), Data("x".utf8))
    }
}
