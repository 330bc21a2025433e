import XCTest
import Engine
import Layers
import Methods
import Models
import Checkpoints

/// Saving and loading adapters in the Hugging Face peft layout.
final class AdapterFilesTests: XCTestCase {
    func directory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("peft-adapter-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func trained(_ method: String, options: ConfigObject = [:]) throws -> ImageClassifier {
        let model = tinyClassifier()
        try MethodRegistry.method(named: method, config: options).apply(to: model)
        for seed in 0..<2 { trainOneStep(model, images: tinyImages(seed: UInt64(seed)), labels: [0, 2], rate: 0.05) }
        return model
    }

    func testRoundTripGivesIdenticalOutputsForEveryMethod() throws {
        var shiraOptions: ConfigObject = [:]
        shiraOptions["mask_type"] = "wm"
        shiraOptions["density"] = 0.1
        for (method, options) in [("lora", [:] as ConfigObject), ("shira", shiraOptions), ("neat", [:] as ConfigObject),
                                  ("rlrr", [:] as ConfigObject), ("bitfit", [:] as ConfigObject), ("layernorm", [:] as ConfigObject),
                                  ("adapter", [:] as ConfigObject), ("vpt", [:] as ConfigObject), ("linear", [:] as ConfigObject)] {
            let model = try trained(method, options: options)
            let folder = directory()
            try AdapterFiles.save(model, method: MethodRegistry.method(named: method, config: options), baseModel: "tiny", to: folder)
            let restored = tinyClassifier()
            try AdapterFiles.load(from: folder, into: restored)
            let images = tinyImages(seed: 9)
            XCTAssertEqual(logits(restored, images), logits(model, images), "\(method): loaded adapter differs")
            XCTAssertEqual(restored.trainableParameterCount, model.trainableParameterCount, method)
        }
    }

    func testStagedMethodsRoundTripAfterTheirSwitch() throws {
        for name in ["ttc", "pear"] {
            var options: ConfigObject = [:]
            options["channels"] = 4
            options["r"] = 2
            let model = tinyClassifier()
            let method = try MethodRegistry.method(named: name, config: options) as! any StagedMethod
            try method.apply(to: model)
            trainOneStep(model, images: tinyImages(), labels: [0, 1], rate: 0.05)
            try method.advance(model, calibration: [(.images(tinyImages(seed: 3)), [1, 2])])
            trainOneStep(model, images: tinyImages(seed: 4), labels: [2, 1], rate: 0.05)
            let folder = directory()
            try AdapterFiles.save(model, method: MethodRegistry.method(named: name, config: options), baseModel: "tiny", to: folder)
            let restored = tinyClassifier()
            try AdapterFiles.load(from: folder, into: restored)
            let images = tinyImages(seed: 9)
            XCTAssertEqual(logits(restored, images), logits(model, images), "\(name): loaded adapter differs")
        }
    }

    func testLayoutFollowsHuggingFacePeft() throws {
        let model = try trained("lora")
        let folder = directory()
        try AdapterFiles.save(model, method: MethodRegistry.method(named: "lora"), baseModel: "tiny", to: folder)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(config["peft_type"] as? String, "LORA")
        XCTAssertEqual(config["r"] as? Int, 8)
        XCTAssertEqual(config["target_modules"] as? [String], ["q_proj", "v_proj"], "transformers 5's module names")
        XCTAssertEqual(config["modules_to_save"] as? [String], ["classifier"])
        // A registry base is written as its hub id (what transformers and peft load) and read back by its name.
        let named = directory()
        try AdapterFiles.save(model, method: MethodRegistry.method(named: "lora"), baseModel: "dinov2-s14", to: named)
        let namedConfig = try JSONSerialization.jsonObject(with: Data(contentsOf: named.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(namedConfig["base_model_name_or_path"] as? String, "facebook/dinov2-small")
        XCTAssertEqual(try AdapterFiles.configuration(in: named).baseModelNameOrPath, "dinov2-s14")
        XCTAssertEqual(namedConfig["auto_mapping"] as? [String: String],
                       ["base_model_class": "Dinov2ForImageClassification", "parent_library": "transformers.models.dinov2.modeling_dinov2"])
        let text = try String(contentsOf: folder.appendingPathComponent("adapter_model.safetensors"), encoding: .isoLatin1)
        XCTAssertTrue(text.contains("base_model.model.dinov2.encoder.layer.0.attention.q_proj.lora_A.weight"))
        XCTAssertTrue(text.contains("base_model.model.classifier.weight"))
        // transformers 4's names when asked; both load back to the same logits.
        let four = directory()
        try AdapterFiles.save(model, method: MethodRegistry.method(named: "lora"), baseModel: "tiny", naming: .transformers4, to: four)
        let fourConfig = try JSONSerialization.jsonObject(with: Data(contentsOf: four.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(fourConfig["target_modules"] as? [String], ["query", "value"])
        let fourText = try String(contentsOf: four.appendingPathComponent("adapter_model.safetensors"), encoding: .isoLatin1)
        XCTAssertTrue(fourText.contains("base_model.model.dinov2.encoder.layer.0.attention.attention.query.lora_A.weight"))
        let images = tinyImages(seed: 9)
        for saved in [folder, four] {
            let restored = tinyClassifier()
            try AdapterFiles.load(from: saved, into: restored)
            XCTAssertEqual(logits(restored, images), logits(model, images))
        }

        let shira = tinyClassifier()
        try SHiRA().apply(to: shira)
        let shiraFolder = directory()
        try AdapterFiles.save(shira, method: MethodRegistry.method(named: "shira"), baseModel: "tiny", to: shiraFolder)
        let shiraText = try String(contentsOf: shiraFolder.appendingPathComponent("adapter_model.safetensors"), encoding: .isoLatin1)
        XCTAssertTrue(shiraText.contains("q_proj.shira_indices\":{\"dtype\":\"I32\""), "SHiRA indices are int32")
        XCTAssertTrue(shiraText.contains("q_proj.shira_weight"))
    }

    func testRefusesAnotherBaseModelOrHead() throws {
        let model = try trained("lora")
        let folder = directory()
        try AdapterFiles.save(model, method: MethodRegistry.method(named: "lora"), baseModel: "tiny", to: folder)
        XCTAssertThrowsError(try AdapterFiles.load(from: folder, into: tinyClassifier(seed: 77))) { error in
            XCTAssertTrue("\(error)".contains("fingerprint") && "\(error)".contains("adapter_config.json"), "\(error)")
        }
        let otherHead = ImageClassifier(vision: VisionTransformer(tinyVision, seed: 1), classes: 5)
        XCTAssertThrowsError(try AdapterFiles.load(from: folder, into: otherHead)) { error in
            XCTAssertTrue("\(error)".contains("classes"), "\(error)")
        }
    }

    func testRefusesCorruptOrIncompleteFiles() throws {
        let model = try trained("lora")
        let folder = directory()
        try AdapterFiles.save(model, method: MethodRegistry.method(named: "lora"), baseModel: "tiny", to: folder)
        let weights = folder.appendingPathComponent("adapter_model.safetensors")
        let original = try Data(contentsOf: weights)
        try original.prefix(original.count / 2).write(to: weights)
        XCTAssertThrowsError(try AdapterFiles.load(from: folder, into: tinyClassifier())) { error in
            XCTAssertTrue("\(error)".contains("adapter_model.safetensors"), "\(error)")
        }
        // A file missing one tensor.
        let partial = model.trainableParameters.filter { !$0.0.hasSuffix("lora_B.weight") || !$0.0.contains("layer.1.") }
        let folder2 = directory()
        try AdapterFiles.save(model, method: MethodRegistry.method(named: "lora"), baseModel: "tiny", to: folder2)
        var tensors: [String: Tensor] = [:]
        for (name, tensor) in partial { tensors["base_model.model." + name] = tensor }
        try SafeTensors.write(tensors, to: folder2.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertThrowsError(try AdapterFiles.load(from: folder2, into: tinyClassifier())) { error in
            XCTAssertTrue("\(error)".contains("is missing"), "\(error)")
        }
        try "{not json".write(to: folder2.appendingPathComponent("adapter_config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try AdapterFiles.load(from: folder2, into: tinyClassifier())) { error in
            XCTAssertTrue("\(error)".contains("adapter_config.json"), "\(error)")
        }
    }
}
