import XCTest
import Methods
import Training

/// Checkpoints and results written with the flat method options read into the method's typed configuration.
final class LegacyConfigurationTests: XCTestCase {
    func testFlatOptionsOfAnOldCheckpointBecomeTheMethodsConfig() throws {
        let old = #"""
        {"model": "dinov2-s14", "task": "fmnist-1k", "method": "lora", "epochs": 3, "seed": 2,
         "options": {"rank": 4, "alpha": 16, "dropout": 0.05, "useRSLoRA": true, "useDoRA": false, "seed": 2,
                     "targetModules": {"names": {"_0": ["query", "key"]}}, "density": 0.5, "prompts": 3}}
        """#
        let configuration = try JSONDecoder().decode(TrainingConfiguration.self, from: Data(old.utf8))
        let lora = try LoRA.Config.decoded(from: configuration.methodConfig)
        XCTAssertEqual(lora.r, 4)
        XCTAssertEqual(lora.loraAlpha, 16)
        XCTAssertEqual(lora.loraDropout, 0.05)
        XCTAssertTrue(lora.useRSLoRA)
        XCTAssertEqual(lora.targetModules, .names(["query", "key"]))
        XCTAssertEqual(lora.seed, 2)
        XCTAssertNil(configuration.methodConfig["density"], "other methods' flat options are dropped")
        // Written again, the configuration carries the typed config and no flat options, and reads back equal.
        let data = try JSONEncoder().encode(configuration)
        XCTAssertFalse(String(decoding: data, as: UTF8.self).contains("\"options\""))
        XCTAssertEqual(try JSONDecoder().decode(TrainingConfiguration.self, from: data), configuration)
    }

    func testUseSetsTheMethodAndItsConfig() throws {
        var configuration = TrainingConfiguration()
        configuration.use(SHiRA(config: .init { $0.density = 0.02; $0.maskType = .structured }))
        XCTAssertEqual(configuration.method, "shira")
        let method = try XCTUnwrap(try configuration.makeMethod() as? SHiRA)
        XCTAssertEqual(method.config.density, 0.02)
        XCTAssertEqual(method.config.maskType, .structured)
    }
}
