import XCTest
import Engine
import Layers
import Methods
import Models

/// Each method's typed `Config`: its option list describes exactly the keys it encodes, decoding is lenient for
/// missing and unknown keys and strict about kinds, and the adapter config's top level carries peft's fields.
final class MethodConfigTests: XCTestCase {
    func testEveryOptionIsAKeyOfItsConfigAndEveryKeyAnOption() throws {
        for descriptor in MethodRegistry.all where descriptor.name != "head-last-biases" {
            let keys = Set(descriptor.options.map(\.key))
            XCTAssertEqual(keys.count, descriptor.options.count, "\(descriptor.name): duplicate option keys")
            // Optional options (SHiRA's r, TTC's channels) are absent from the defaults; every other key is there.
            let encoded = Set(descriptor.defaultConfig.keys)
            if descriptor.options.isEmpty {
                XCTAssertEqual(encoded, ["seed"], descriptor.name)
                continue
            }
            // A method without randomness may leave its seed out of its options.
            XCTAssertEqual(encoded.subtracting(keys).subtracting(["seed"]), [], "\(descriptor.name): encoded keys without an option")
            for spec in descriptor.options where !encoded.contains(spec.key) {
                XCTAssertTrue(["r", "channels"].contains(spec.key), "\(descriptor.name).\(spec.key) has no default")
            }
            // Each option's value decodes as its kind and changes the configuration.
            for spec in descriptor.options {
                let value: ConfigValue
                switch spec.kind {
                case .integer: value = 3
                case .real: value = 0.25
                case .boolean: value = descriptor.defaultConfig[spec.key] == true ? false : true
                case .text: value = spec.key == "mask_type" ? "wm" : spec.key == "score" ? "l1" : "nearest"
                case .targets: value = ["query"]
                }
                XCTAssertEqual(try descriptor.validated([spec.key: value])[spec.key], value, "\(descriptor.name).\(spec.key)")
            }
        }
    }

    func testDecodingKeepsDefaultsIgnoresUnknownKeysAndNamesAWrongKind() throws {
        let config = try LoRA.Config.decoded(from: ["r": 4, "bias": "none", "task_type": "SEQ_CLS"])
        XCTAssertEqual(config.r, 4)
        XCTAssertEqual(config.loraAlpha, 8, "missing keys keep their defaults")
        XCTAssertEqual(config.targetModules, .names(["query", "value"]))
        for (key, value) in [("r", ConfigValue.real(4.5)), ("use_dora", "yes"), ("target_modules", 3), ("lora_alpha", .real(.infinity))] {
            XCTAssertThrowsError(try LoRA.Config.decoded(from: [key: value])) { error in
                XCTAssertTrue("\(error)".contains("'\(key)'"), "\(error)")
            }
        }
        XCTAssertThrowsError(try SHiRA.Config.decoded(from: ["mask_type": "diagonal"])) { error in
            XCTAssertTrue("\(error)".contains("unknown SHiRA mask 'diagonal'"), "\(error)")
        }
        // A seed above Int64.max survives the JSON round trip exactly.
        let seeded = try SHiRA.Config.decoded(from: SHiRA.Config { $0.seed = .max }.values)
        XCTAssertEqual(seeded.seed, .max)
        XCTAssertEqual(SHiRA.Config { $0.seed = .max }.values["random_seed"], .unsigned(.max))
    }

    func testTheTypedConfigIsWhatTheMethodUsesAndWhatAdapterFilesStore() throws {
        let lora = LoRA(config: .init { $0.r = 3; $0.loraAlpha = 12; $0.targetModules = .names(["query"]); $0.seed = 5 })
        let model = tinyClassifier()
        try lora.apply(to: model)
        let adapters = model.namedModules().compactMap { ($0.1 as? Linear)?.adapter as? LoRAAdapter }
        XCTAssertEqual(adapters.count, 2)
        XCTAssertTrue(adapters.allSatisfy { $0.a.shape[0] == 3 && $0.scale == 4 })
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("typed-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        try AdapterFiles.save(model, method: lora, baseModel: "tiny", to: folder)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(json["r"] as? Int, 3)
        XCTAssertEqual(json["lora_alpha"] as? Double, 12)
        XCTAssertEqual(json["target_modules"] as? [String], ["q_proj"], "transformers 5's name of the same layers")
        XCTAssertEqual(json["use_dora"] as? Bool, false)
        XCTAssertNil(json["seed"], "not a peft field: only in the swiftpeft section")
        let details = try XCTUnwrap(json["swiftpeft"] as? [String: Any])
        XCTAssertEqual((details["config"] as? [String: Any])?["seed"] as? Int, 5)
        let stored = try AdapterFiles.configuration(in: folder).swiftpeft.config
        XCTAssertEqual(try LoRA.Config.decoded(from: stored), lora.config)
        // The same configuration built from option assignments, as the command line does.
        let assigned = try LoRA.descriptor.applying(["r=3", "lora_alpha=12", "target_modules=query", "seed=5"])
        XCTAssertEqual(try LoRA.Config.decoded(from: assigned), lora.config)
    }

    func testTargetModulesReadPeftsFormsAndTheFlatOptionsForm() throws {
        let decoder = JSONDecoder()
        func decode(_ text: String) throws -> TargetModules { try decoder.decode(TargetModules.self, from: Data(text.utf8)) }
        XCTAssertEqual(try decode(#"["q_proj", "v_proj"]"#), .names(["q_proj", "v_proj"]))
        XCTAssertEqual(try decode(#"".*\\.q_proj""#), .pattern(".*\\.q_proj"))
        XCTAssertEqual(try decode(#""all-linear""#), .allLinear)
        XCTAssertEqual(try decode(#"{"names": {"_0": ["query"]}}"#), .names(["query"]))
        XCTAssertEqual(try decode(#"{"pattern": {"_0": "x"}}"#), .pattern("x"))
        XCTAssertEqual(try decode(#"{"allLinear": {}}"#), .allLinear)
        XCTAssertThrowsError(try decode("[1, 2]"))
        XCTAssertEqual(String(decoding: try JSONEncoder().encode(TargetModules.names(["a"])), as: UTF8.self), #"["a"]"#)
    }
}
