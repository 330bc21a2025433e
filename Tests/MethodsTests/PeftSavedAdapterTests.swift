import XCTest
import Checkpoints
import Engine
import Layers
import Methods
import Models

/// An adapter saved by Hugging Face peft itself (Fixtures/peft-lora-dinov2, made by
/// scripts/reference/make_peft_fixtures.py: LoRA r 2 on q_proj and v_proj of transformers 5's
/// Dinov2ForImageClassification, the classifier in modules_to_save) loads with no `swiftpeft` section and gives
/// peft's logits.
final class PeftSavedAdapterTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let tinyDINOv2 = VisionTransformerConfiguration(
        imageSize: 56, patchSize: 14, width: 32, depth: 2, heads: 4, mlpDimension: 128, layerNormEps: 1e-6,
        layerScale: true)

    func base() throws -> ImageClassifier {
        let vision = VisionTransformer(Self.tinyDINOv2)
        let weights = Self.fixtures.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ModelsTests/Fixtures/dinov2_tiny_weights.safetensors")
        try vision.load(try SafeTensorsFile(path: weights.path).loadAll())
        return ImageClassifier(vision: vision, classes: 3, pooling: .classAndPatchMean, backboneName: "dinov2")
    }

    func testAPeftSavedLoRAGivesPeftsLogits() throws {
        struct Expected: Decodable { let pixels: [Float]; let logits: [Float] }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("peft-lora-dinov2-expected.json")))
        let folder = Self.fixtures.appendingPathComponent("peft-lora-dinov2")
        let configuration = try AdapterFiles.configuration(in: folder)
        XCTAssertTrue(configuration.swiftpeft.savedByPeft)
        XCTAssertEqual(configuration.swiftpeft.method, "lora")
        XCTAssertEqual(configuration.swiftpeft.classes, 3, "from the stored head")
        let lora = try LoRA.Config.decoded(from: configuration.swiftpeft.config)
        XCTAssertEqual([lora.r], [2])
        XCTAssertEqual(lora.loraAlpha, 4)
        XCTAssertEqual(lora.targetModules, .names(["v_proj", "q_proj"]))
        let model = try base()
        let applied = try AdapterFiles.load(from: folder, into: model)
        XCTAssertEqual((applied as? LoRA)?.config.targetModules, .names(["value", "query"]), "our names, as short as peft's")
        let adapted = model.namedModules().filter { (($0.1 as? Linear)?.adapter as? LoRAAdapter) != nil }.map(\.0)
        XCTAssertEqual(adapted.count, 4, "q and v of both blocks: \(adapted)")
        XCTAssertTrue(adapted.allSatisfy { $0.hasSuffix("attention.attention.query") || $0.hasSuffix("attention.attention.value") }, "\(adapted)")
        let pixels = Tensor(shape: [2, 3, 56, 56], values: expected.pixels)
        let logits = Autograd.withoutGrad { model.logits(.images(pixels)).values }
        for (got, want) in zip(logits, expected.logits) { XCTAssertEqual(got, want, accuracy: 1e-4) }
        // Saved again by this library it loads the same (now with its swiftpeft section).
        let again = FileManager.default.temporaryDirectory.appendingPathComponent("peft-again-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: again) }
        try AdapterFiles.save(model, method: applied, baseModel: "tiny", to: again)
        let reloaded = try base()
        try AdapterFiles.load(from: again, into: reloaded)
        XCTAssertEqual(Autograd.withoutGrad { reloaded.logits(.images(pixels)).values }, logits)
        // ... under the names peft itself wrote, so peft on transformers 5 reads ours.
        try assertSameNames(again, as: folder)
        // Under transformers 4's names by choice, loading back the same.
        let four = FileManager.default.temporaryDirectory.appendingPathComponent("peft-t4-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: four) }
        try AdapterFiles.save(model, method: applied, baseModel: "tiny", naming: .transformers4, to: four)
        let names = try SafeTensorsFile(path: four.appendingPathComponent("adapter_model.safetensors").path).names
        XCTAssertTrue(names.contains("base_model.model.dinov2.encoder.layer.0.attention.attention.query.lora_A.weight"), "\(names)")
        XCTAssertEqual(Set(try topLevelTargets(four)), ["query", "value"])
        let fromFour = try base()
        try AdapterFiles.load(from: four, into: fromFour)
        XCTAssertEqual(Autograd.withoutGrad { fromFour.logits(.images(pixels)).values }, logits)
    }

    /// The top-level `target_modules` of the adapter config in `folder`, as peft reads them.
    func topLevelTargets(_ folder: URL) throws -> [String] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("adapter_config.json"))) as? [String: Any]
        return try XCTUnwrap(json?["target_modules"] as? [String], "target_modules is a list")
    }

    /// `ours` holds the same tensor names and top-level targets as the peft-saved `theirs`.
    func assertSameNames(_ ours: URL, as theirs: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let weights = "adapter_model.safetensors"
        XCTAssertEqual(Set(try SafeTensorsFile(path: ours.appendingPathComponent(weights).path).names),
                       Set(try SafeTensorsFile(path: theirs.appendingPathComponent(weights).path).names), file: file, line: line)
        XCTAssertEqual(Set(try topLevelTargets(ours)), Set(try topLevelTargets(theirs)), file: file, line: line)
        // The same base class for AutoPeftModel.
        func mapping(_ folder: URL) throws -> [String: String]? {
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("adapter_config.json"))) as? [String: Any]
            return json?["auto_mapping"] as? [String: String]
        }
        XCTAssertNotNil(try mapping(theirs), file: file, line: line)
        XCTAssertEqual(try mapping(ours), try mapping(theirs), file: file, line: line)
    }

    /// A LoRA peft saved for transformers 5's ViTForImageClassification (blocks `vit.layers.N`, `mlp.fc1`, `fc2`;
    /// Fixtures/peft-lora-vit) gives peft's logits on our ViT built from the same folder; saved by us it has peft's
    /// names again, and under transformers 4's (`vit.encoder.layer.N`, `intermediate.dense`, `output.dense`,
    /// where `output.dense` alone would also name the attention's output, so targets become full paths) it loads back the same.
    func testAPeftSavedViTLoRAGivesPeftsLogitsAndRoundTripsUnderBothNamings() throws {
        struct Expected: Decodable { let pixels: [Float]; let logits: [Float] }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("peft-lora-vit-expected.json")))
        let folder = Self.fixtures.appendingPathComponent("peft-lora-vit")
        let hf = Self.fixtures.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("ModelsTests/Fixtures/hf/vit-tiny")
        func base() throws -> ImageClassifier {
            ImageClassifier(vision: try HuggingFaceFolder(path: hf.path).visionModel(), classes: 3, pooling: .classToken, backboneName: "vit")
        }
        let model = try base()
        let applied = try AdapterFiles.load(from: folder, into: model)
        let adapted = model.namedModules().filter { (($0.1 as? Linear)?.adapter as? LoRAAdapter) != nil }.map(\.0)
        XCTAssertEqual(adapted.count, 8, "q, v, fc1 and fc2 of both blocks: \(adapted)")
        let pixels = Tensor(shape: [2, 3, 16, 16], values: expected.pixels)
        let logits = Autograd.withoutGrad { model.logits(.images(pixels)).values }
        for (got, want) in zip(logits, expected.logits) { XCTAssertEqual(got, want, accuracy: 1e-4) }
        let again = FileManager.default.temporaryDirectory.appendingPathComponent("peft-vit-\(UUID().uuidString)")
        let four = FileManager.default.temporaryDirectory.appendingPathComponent("peft-vit4-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: again); try? FileManager.default.removeItem(at: four) }
        try AdapterFiles.save(model, method: applied, baseModel: hf.path, to: again)
        try assertSameNames(again, as: folder)
        // For the other direction with real peft: PEFT_EXPORT=DIR keeps copies for make_peft_fixtures.py check DIR.
        if let export = ProcessInfo.processInfo.environment["PEFT_EXPORT"], !export.isEmpty {
            let root = URL(fileURLWithPath: export)
            try? FileManager.default.removeItem(at: root.appendingPathComponent("vit-5"))
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: again, to: root.appendingPathComponent("vit-5"))
        }
        try AdapterFiles.save(model, method: applied, baseModel: hf.path, naming: .transformers4, to: four)
        let names = Set(try SafeTensorsFile(path: four.appendingPathComponent("adapter_model.safetensors").path).names)
        for name in ["vit.encoder.layer.1.attention.attention.query", "vit.encoder.layer.0.intermediate.dense", "vit.encoder.layer.0.output.dense"] {
            XCTAssertTrue(names.contains("base_model.model.\(name).lora_A.weight"), "\(name) in \(names.sorted())")
        }
        let targets = try topLevelTargets(four)
        XCTAssertEqual(targets.count, 8, "one full path per adapted layer: \(targets)")
        XCTAssertTrue(targets.contains("vit.encoder.layer.1.output.dense") && !targets.contains("vit.encoder.layer.1.attention.output.dense"), "\(targets)")
        for saved in [again, four] {
            let reloaded = try base()
            try AdapterFiles.load(from: saved, into: reloaded)
            XCTAssertEqual(Autograd.withoutGrad { reloaded.logits(.images(pixels)).values }, logits, saved.lastPathComponent)
        }
    }

    /// A SHiRA peft saved (Fixtures/peft-shira-dinov2: peft's sizing r 2, i.e. r*(in+out) = 128 random positions
    /// per 32x32 projection, q_proj and v_proj; `base_model_name_or_path` null) gives peft's logits with exactly
    /// peft's positions; saved by us it has peft's tensor names, shapes, dtypes and `r` again, so the adapter
    /// round-trips (`make_peft_fixtures.py check` loads it in peft).
    func testAPeftSavedSHiRAGivesPeftsLogitsAndRoundTrips() throws {
        struct Expected: Decodable { let pixels: [Float]; let logits: [Float] }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("peft-shira-dinov2-expected.json")))
        let folder = Self.fixtures.appendingPathComponent("peft-shira-dinov2")
        let configuration = try AdapterFiles.configuration(in: folder)
        XCTAssertTrue(configuration.swiftpeft.savedByPeft)
        XCTAssertEqual(configuration.swiftpeft.method, "shira")
        let model = try base()
        let applied = try AdapterFiles.load(from: folder, into: model)
        let stored = try SafeTensorsFile(path: folder.appendingPathComponent("adapter_model.safetensors").path)
        var adapted = 0
        for (path, module) in model.namedModules() {
            guard let layer = module as? Linear, let shira = layer.adapter as? ShiraAdapter else { continue }
            XCTAssertEqual(shira.values.count, 2 * (layer.inFeatures + layer.outFeatures), path)
            adapted += 1
        }
        XCTAssertEqual(adapted, 4, "q and v of both blocks")
        let pixels = Tensor(shape: [2, 3, 56, 56], values: expected.pixels)
        let logits = Autograd.withoutGrad { model.logits(.images(pixels)).values }
        for (got, want) in zip(logits, expected.logits) { XCTAssertEqual(got, want, accuracy: 1e-4) }

        let again = FileManager.default.temporaryDirectory.appendingPathComponent("peft-shira-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: again) }
        try AdapterFiles.save(model, method: applied, baseModel: "tiny", to: again)
        try assertSameNames(again, as: folder)
        let ours = try SafeTensorsFile(path: again.appendingPathComponent("adapter_model.safetensors").path)
        for name in stored.names {
            XCTAssertEqual(ours.info(name)?.shape, stored.info(name)?.shape, name)
            XCTAssertEqual(ours.info(name)?.dtype, stored.info(name)?.dtype, name)
            if name.hasSuffix(".shira_indices") { XCTAssertEqual(try ours.int32Values(name), try stored.int32Values(name), "peft's positions kept: \(name)") }
        }
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: again.appendingPathComponent("adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(json["peft_type"] as? String, "SHIRA")
        XCTAssertEqual(json["r"] as? Int, 2, "peft's r, which sizes what peft allocates")
        let reloaded = try base()
        try AdapterFiles.load(from: again, into: reloaded)
        XCTAssertEqual(Autograd.withoutGrad { reloaded.logits(.images(pixels)).values }, logits)
        if let export = ProcessInfo.processInfo.environment["PEFT_EXPORT"], !export.isEmpty {
            let root = URL(fileURLWithPath: export)
            try? FileManager.default.removeItem(at: root.appendingPathComponent("shira-5"))
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: again, to: root.appendingPathComponent("shira-5"))
        }
    }

    /// A LayerNorm tuning peft saved (Fixtures/peft-ln-dinov2: LN_TUNING of norm1, norm2 and layernorm, each norm's
    /// trained copy in `<norm>.ln_tuning_layers`) gives peft's logits as our `layernorm` method; saved by us it has
    /// peft's type, tensor names and targets, and peft loads it with equal logits (`make_peft_fixtures.py check`).
    func testAPeftSavedLayerNormTuningGivesPeftsLogitsAndRoundTrips() throws {
        struct Expected: Decodable { let pixels: [Float]; let logits: [Float] }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("peft-ln-dinov2-expected.json")))
        let folder = Self.fixtures.appendingPathComponent("peft-ln-dinov2")
        XCTAssertEqual(try AdapterFiles.configuration(in: folder).swiftpeft.method, "layernorm")
        let model = try base()
        let applied = try AdapterFiles.load(from: folder, into: model)
        let pixels = Tensor(shape: [2, 3, 56, 56], values: expected.pixels)
        let logits = Autograd.withoutGrad { model.logits(.images(pixels)).values }
        for (got, want) in zip(logits, expected.logits) { XCTAssertEqual(got, want, accuracy: 1e-4) }
        XCTAssertNotEqual(Autograd.withoutGrad { try! base().logits(.images(pixels)).values }, logits, "the norms were loaded")
        let again = FileManager.default.temporaryDirectory.appendingPathComponent("peft-ln-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: again) }
        try AdapterFiles.save(model, method: applied, baseModel: "tiny", to: again)
        try assertSameNames(again, as: folder)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: again.appendingPathComponent("adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(json["peft_type"] as? String, "LN_TUNING")
        let reloaded = try base()
        try AdapterFiles.load(from: again, into: reloaded)
        XCTAssertEqual(Autograd.withoutGrad { reloaded.logits(.images(pixels)).values }, logits)
        if let export = ProcessInfo.processInfo.environment["PEFT_EXPORT"], !export.isEmpty {
            let root = URL(fileURLWithPath: export)
            try? FileManager.default.removeItem(at: root.appendingPathComponent("ln-5"))
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: again, to: root.appendingPathComponent("ln-5"))
        }
    }

    /// A PEANuT peft saved (our NEAT: r 4, depth 1, scaling 0.5 on q_proj and v_proj), its adapter and head tensors
    /// in float16 and, in a second copy, bfloat16, gives peft's logits; saved by us it has peft's names, `depth`,
    /// `scaling` and `act_fn`, and peft loads it with equal logits (`make_peft_fixtures.py check`).
    func testAPeftSavedPEANuTInHalfPrecisionGivesPeftsLogitsAndRoundTrips() throws {
        struct Expected: Decodable { let pixels: [Float]; let logits: [Float] }
        for (name, dtype) in [("peft-peanut-dinov2", SafeTensorsDType.f16), ("peft-peanut-dinov2-bf16", .bf16)] {
            let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("\(name)-expected.json")))
            let folder = Self.fixtures.appendingPathComponent(name)
            let stored = try SafeTensorsFile(path: folder.appendingPathComponent("adapter_model.safetensors").path)
            XCTAssertTrue(stored.names.allSatisfy { stored.info($0)?.dtype == dtype }, "\(name): every tensor in \(dtype)")
            let neat = try NEAT.Config.decoded(from: try AdapterFiles.configuration(in: folder).swiftpeft.config)
            XCTAssertEqual([neat.r, neat.depth], [4, 1], name)
            XCTAssertEqual(neat.scaling, 0.5, name)
            let model = try base()
            let applied = try AdapterFiles.load(from: folder, into: model)
            XCTAssertEqual(applied.name, "neat")
            let pixels = Tensor(shape: [2, 3, 56, 56], values: expected.pixels)
            let logits = Autograd.withoutGrad { model.logits(.images(pixels)).values }
            for (got, want) in zip(logits, expected.logits) { XCTAssertEqual(got, want, accuracy: 1e-4, name) }
            let again = FileManager.default.temporaryDirectory.appendingPathComponent("peft-peanut-\(UUID().uuidString)")
            addTeardownBlock { try? FileManager.default.removeItem(at: again) }
            try AdapterFiles.save(model, method: applied, baseModel: "tiny", to: again)
            try assertSameNames(again, as: folder)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: again.appendingPathComponent("adapter_config.json"))) as? [String: Any])
            XCTAssertEqual(json["peft_type"] as? String, "PEANUT")
            XCTAssertEqual(json["depth"] as? Int, 1)
            XCTAssertEqual(json["scaling"] as? Double, 0.5)
            XCTAssertEqual(json["act_fn"] as? String, "relu")
            let reloaded = try base()
            try AdapterFiles.load(from: again, into: reloaded)
            XCTAssertEqual(Autograd.withoutGrad { reloaded.logits(.images(pixels)).values }, logits, name)
            if dtype == .f16, let export = ProcessInfo.processInfo.environment["PEFT_EXPORT"], !export.isEmpty {
                let root = URL(fileURLWithPath: export)
                try? FileManager.default.removeItem(at: root.appendingPathComponent("peanut-5"))
                try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: again, to: root.appendingPathComponent("peanut-5"))
            }
        }
    }

    func testAnUnknownPeftTypeIsRefusedNamingIt() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("peft-unknown-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        try Data(#"{"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 8}"#.utf8).write(to: folder.appendingPathComponent("adapter_config.json"))
        XCTAssertThrowsError(try AdapterFiles.configuration(in: folder)) { error in
            XCTAssertTrue("\(error)".contains("PROMPT_TUNING") && "\(error)".contains("LORA"), "\(error)")
        }
    }
}
