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
        XCTAssertEqual((applied as? LoRA)?.config.targetModules, .names(["attention.attention.value", "attention.attention.query"]))
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
