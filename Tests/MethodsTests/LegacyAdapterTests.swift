import XCTest
import Engine
import Layers
import Methods
import Models

/// Adapters saved in the flat-options format (before typed configs; committed in Fixtures/legacy-adapters with the
/// logits each gave when saved) still load, give the same logits, read into their method's typed config, and
/// round-trip through the current format.
final class LegacyAdapterTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/legacy-adapters")

    func expectedLogits() throws -> [String: [Float]] {
        try JSONDecoder().decode([String: [Float]].self,
                                 from: Data(contentsOf: Self.fixtures.appendingPathComponent("expected_logits.json")))
    }

    func testEveryLegacyAdapterLoadsAndGivesTheLogitsItWasSavedWith() throws {
        let expected = try expectedLogits()
        XCTAssertEqual(expected.count, 10)
        let images = tinyImages(seed: 21)
        for (name, logitsWhenSaved) in expected.sorted(by: { $0.key < $1.key }) {
            let folder = Self.fixtures.appendingPathComponent(name)
            let model = tinyClassifier(seed: 4)
            try AdapterFiles.load(from: folder, into: model)
            assertAllClose(logits(model, images), logitsWhenSaved, tolerance: 1e-6, name)
            // Saved again, now in the current format (typed config under swiftpeft.config), it loads the same.
            let again = FileManager.default.temporaryDirectory.appendingPathComponent("legacy-\(name)-\(UUID().uuidString)")
            addTeardownBlock { try? FileManager.default.removeItem(at: again) }
            let configuration = try AdapterFiles.configuration(in: folder)
            let method = try MethodRegistry.method(named: configuration.swiftpeft.method, config: configuration.swiftpeft.config)
            try AdapterFiles.save(model, method: method, baseModel: "tiny-vit-seed-4", to: again)
            let text = try String(contentsOf: again.appendingPathComponent("adapter_config.json"), encoding: .utf8)
            XCTAssertFalse(text.contains("\"options\""), "\(name): the flat options are not written any more")
            XCTAssertEqual(try AdapterFiles.configuration(in: again).swiftpeft.config, configuration.swiftpeft.config, name)
            let reloaded = tinyClassifier(seed: 4)
            try AdapterFiles.load(from: again, into: reloaded)
            assertAllClose(logits(reloaded, images), logitsWhenSaved, tolerance: 1e-6, "\(name) saved again")
        }
    }

    func testLegacyOptionsMapOntoTheTypedConfigs() throws {
        func config(_ name: String) throws -> ConfigObject {
            try AdapterFiles.configuration(in: Self.fixtures.appendingPathComponent(name)).swiftpeft.config
        }
        let lora = try LoRA.Config.decoded(from: config("lora-rslora"))
        XCTAssertEqual(lora.r, 2)
        XCTAssertEqual(lora.loraAlpha, 6)
        XCTAssertEqual(lora.loraDropout, 0.1)
        XCTAssertTrue(lora.useRSLoRA)
        XCTAssertFalse(lora.useDoRA)
        XCTAssertEqual(lora.targetModules, .names(["query", "value", "dense"]))
        XCTAssertEqual(lora.seed, 7)
        let dora = try LoRA.Config.decoded(from: config("dora"))
        XCTAssertTrue(dora.useDoRA)
        XCTAssertEqual(dora.targetModules, .pattern(".*attention\\.(query|key)"))
        let shira = try SHiRA.Config.decoded(from: config("shira"))
        XCTAssertEqual(shira.density, 0.05)
        XCTAssertEqual(shira.maskPart, 1)
        XCTAssertEqual(shira.maskType, .random)
        XCTAssertEqual(shira.targetModules, .names(["query", "fc1"]))
        XCTAssertEqual(shira.seed, 7)
        XCTAssertNil(shira.r)
        let neat = try NEAT.Config.decoded(from: config("neat"))
        XCTAssertEqual([neat.r, neat.depth], [3, 1])
        XCTAssertEqual(neat.scaling, 0.5)
        XCTAssertTrue(try RLRR.Config.decoded(from: config("rlrr")).identityStart)
        XCTAssertEqual(try VisualPromptTuning.Config.decoded(from: config("vpt")).numVirtualTokens, 3)
        XCTAssertEqual(try BottleneckAdapterMethod.Config.decoded(from: config("adapter")).adapterWidth, 4)
        let ttc = try TTC.Config.decoded(from: config("ttc"))
        XCTAssertEqual(ttc.channels, 3)
        XCTAssertEqual(ttc.scoringBatches, 1)
        let pear = try Pear.Config.decoded(from: config("pear"))
        XCTAssertEqual(pear.r, 2)
        XCTAssertEqual(pear.loraAlpha, 8)
        XCTAssertEqual(pear.sharing, "nearest")
    }
}
