import XCTest
import Engine
import Layers
import Methods
import Models

/// The top-level Hugging Face peft fields of `adapter_config.json` are the truth when an adapter loads: a config
/// edited the peft way is applied as edited, and configs as peft writes them (null base, unknown keys) load.
final class PeftConfigFieldTests: XCTestCase {
    func savedLoRA(rank: Int = 4, alpha: Float = 8) throws -> (model: ImageClassifier, folder: URL) {
        let lora = LoRA(config: .init { $0.r = rank; $0.loraAlpha = alpha })
        let model = tinyClassifier()
        try lora.apply(to: model)
        for seed in 0..<2 { trainOneStep(model, images: tinyImages(seed: UInt64(seed)), labels: [0, 2], rate: 0.05) }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peft-fields-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        try AdapterFiles.save(model, method: lora, baseModel: "tiny", to: folder)
        return (model, folder)
    }

    /// Rewrites the config's JSON object with `change`.
    func editConfig(_ folder: URL, _ change: (inout [String: Any]) -> Void) throws {
        let url = folder.appendingPathComponent("adapter_config.json")
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        change(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: url)
    }

    func loraScales(_ model: any Classifier) -> [Float] {
        model.namedModules().compactMap { (($0.1 as? Linear)?.adapter as? LoRAAdapter)?.scale }
    }

    func testEditedPeftFieldsOverrideThePrivateSection() throws {
        let (model, folder) = try savedLoRA(rank: 4, alpha: 8)
        let images = tinyImages(seed: 7)
        // lora_alpha edited at the top level: scale 16 / 4 instead of 8 / 4.
        try editConfig(folder) { $0["lora_alpha"] = 16 }
        XCTAssertEqual(try AdapterFiles.configuration(in: folder).swiftpeft.config["lora_alpha"], 16)
        let restored = tinyClassifier()
        try AdapterFiles.load(from: folder, into: restored)
        XCTAssertEqual(Set(loraScales(restored)), [4])
        XCTAssertNotEqual(logits(restored, images), logits(model, images), "the edited alpha is applied")
        // use_rslora edited: scale lora_alpha / sqrt(r) = 16 / 2.
        try editConfig(folder) { $0["use_rslora"] = true }
        let rank = tinyClassifier()
        try AdapterFiles.load(from: folder, into: rank)
        XCTAssertEqual(Set(loraScales(rank)), [8])
        // Only the private section edited: the top level (alpha 16) still wins.
        try editConfig(folder) { object in
            var details = object["swiftpeft"] as! [String: Any]
            var config = details["config"] as! [String: Any]
            config["lora_alpha"] = 2
            details["config"] = config
            object["swiftpeft"] = details
            object["use_rslora"] = false
        }
        let top = tinyClassifier()
        try AdapterFiles.load(from: folder, into: top)
        XCTAssertEqual(Set(loraScales(top)), [4])
    }

    func testEditedTargetModulesAreAppliedAndCheckedAgainstTheTensors() throws {
        let (_, folder) = try savedLoRA()
        // Fewer targets than the file has tensors for: refused, naming a tensor of a layer no longer targeted.
        // Under transformers 5's names (as written) or ours; the error names the tensor as stored.
        for fewer in ["q_proj", "query"] {
            try editConfig(folder) { $0["target_modules"] = [fewer] }
            XCTAssertThrowsError(try AdapterFiles.load(from: folder, into: tinyClassifier())) { error in
                XCTAssertTrue("\(error)".contains("attention.v_proj.lora_A.weight") && "\(error)".contains("unexpected tensor"), "\(error)")
            }
        }
        // peft's regex form, matching the same two layers, under ours or transformers 5's names: loads.
        for pattern in [".*\\.(query|value)", ".*\\.(q_proj|v_proj)"] {
            try editConfig(folder) { $0["target_modules"] = pattern }
            XCTAssertEqual(try AdapterFiles.configuration(in: folder).swiftpeft.config["target_modules"], .string(pattern))
            XCTAssertNoThrow(try AdapterFiles.load(from: folder, into: tinyClassifier()))
        }
        // A pattern that selects other layers under transformers 5's names: refused.
        try editConfig(folder) { $0["target_modules"] = ".*\\.(q_proj|k_proj|v_proj)" }
        XCTAssertThrowsError(try AdapterFiles.load(from: folder, into: tinyClassifier())) { error in
            XCTAssertTrue("\(error)".contains("k_proj") || "\(error)".contains("key"), "\(error)")
        }
    }

    func testConfigsAsPeftWritesThemLoad() throws {
        let (model, folder) = try savedLoRA()
        try editConfig(folder) { object in
            object["base_model_name_or_path"] = NSNull()
            object["modules_to_save"] = NSNull()
            object["task_type"] = NSNull()
            object["fan_in_fan_out"] = false
            object["layers_pattern"] = NSNull()
            object["a_field_from_a_newer_peft"] = ["nested": [1, 2]]
        }
        let restored = tinyClassifier()
        try AdapterFiles.load(from: folder, into: restored)
        XCTAssertEqual(logits(restored, tinyImages(seed: 3)), logits(model, tinyImages(seed: 3)))
    }

    func testPeftFieldsOfTheWrongKindAreRefusedNamingFileAndField() throws {
        let (_, folder) = try savedLoRA()
        for (key, value) in [("r", "eight" as Any), ("lora_alpha", true as Any), ("use_dora", 1 as Any),
                             ("target_modules", [] as [String] as Any), ("r", 2.5 as Any)] {
            try editConfig(folder) { $0[key] = value }
            XCTAssertThrowsError(try AdapterFiles.configuration(in: folder), key) { error in
                XCTAssertTrue("\(error)".contains("adapter_config.json") && "\(error)".contains(key), "\(error)")
            }
            try editConfig(folder) { object in object[key] = key == "target_modules" ? ["query", "value"] : (key == "r" ? 4 : (key == "lora_alpha" ? 8 : false)) }
        }
        XCTAssertNoThrow(try AdapterFiles.configuration(in: folder))
    }

    func testSHiRAReadsPeftsRandomMaskName() throws {
        let shira = SHiRA(config: .init { $0.density = 0.1 })
        let model = tinyClassifier()
        try shira.apply(to: model)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peft-shira-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        try AdapterFiles.save(model, method: shira, baseModel: "tiny", to: folder)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(object["mask_type"] as? String, "random", "peft's name for the random mask")
        XCTAssertEqual(try SHiRA.Config.decoded(from: AdapterFiles.configuration(in: folder).swiftpeft.config).maskType, .random)
        XCTAssertNoThrow(try AdapterFiles.load(from: folder, into: tinyClassifier()))
    }
}

/// SHiRA sized as Hugging Face peft sizes it: r (in + out) trained positions per weight.
final class SHiRAPeftSizingTests: XCTestCase {
    func testRankSizingGivesRTimesInPlusOutPositionsAndRoundTrips() throws {
        var options: ConfigObject = [:]
        options["r"] = 2
        options["target_modules"] = TargetModules.names(["query", "value", "fc1"]).configValue
        let model = tinyClassifier()
        try SHiRA(config: try .decoded(from: options)).apply(to: model)
        var adapted = 0
        for (_, module) in model.namedModules() {
            guard let layer = module as? Linear, let shira = layer.adapter as? ShiraAdapter else { continue }
            XCTAssertEqual(shira.values.count, 2 * (layer.inFeatures + layer.outFeatures), "\(layer.outFeatures) x \(layer.inFeatures)")
            adapted += 1
        }
        XCTAssertEqual(adapted, 3 * 2)
        trainOneStep(model, images: tinyImages(seed: 1), labels: [0, 1], rate: 0.05)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("shira-r-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        try AdapterFiles.save(model, method: MethodRegistry.method(named: "shira", config: options), baseModel: "tiny", to: folder)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(object["r"] as? Int, 2, "peft's r is written")
        XCTAssertEqual(object["target_modules"] as? [String], ["q_proj", "v_proj", "fc1"])
        let restored = tinyClassifier()
        try AdapterFiles.load(from: folder, into: restored)
        XCTAssertEqual(logits(restored, tinyImages(seed: 2)), logits(model, tinyImages(seed: 2)))
        // The option by key, as on the command line, and its bounds.
        let descriptor = try MethodRegistry.descriptor(named: "shira")
        XCTAssertEqual(try descriptor.applying(["r=4"])["r"], 4)
        for bad in [0, -1, (1 << 20) + 1] {
            XCTAssertThrowsError(try SHiRA(config: .init { $0.r = bad }).apply(to: tinyClassifier())) { error in
                XCTAssertTrue("\(error)".contains("SHiRA r"), "\(error)")
            }
        }
        // A rank that asks for more than the whole weight trains the whole weight.
        let full = tinyClassifier()
        try SHiRA(config: .init { $0.r = 100; $0.targetModules = .names(["query"]) }).apply(to: full)
        let query = full.vision.blocks[0].attention.query
        XCTAssertEqual((query.adapter as? ShiraAdapter)?.values.count, query.inFeatures * query.outFeatures)
    }
}
