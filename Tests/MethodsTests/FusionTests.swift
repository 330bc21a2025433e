import XCTest
import Checkpoints
import Engine
import Layers
import Methods
import Models

/// Weighted fusion of LoRA and SHiRA adapters (`Fusion`).
final class FusionTests: XCTestCase {
    func directory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("peft-fusion-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// A tiny classifier with `method` applied, its adapter values set to random numbers, saved to a directory.
    func savedAdapter(_ method: String, options: ConfigObject, valueSeed: UInt64) throws -> (ImageClassifier, URL) {
        let model = tinyClassifier()
        try MethodRegistry.method(named: method, config: options).apply(to: model)
        var generator = RandomGenerator(seed: valueSeed)
        for (_, parameter) in model.trainableParameters {
            for i in 0..<parameter.count { parameter.data[i] = 0.1 * generator.nextNormal() }
        }
        let folder = directory()
        try AdapterFiles.save(model, method: MethodRegistry.method(named: method, config: options), baseModel: "tiny", to: folder)
        return (model, folder)
    }

    /// Dense updates of every adapted Linear layer, by path.
    func deltas(_ model: any Classifier) -> [String: [Float]] {
        var result: [String: [Float]] = [:]
        for (path, module) in model.namedModules() {
            guard let layer = module as? Linear else { continue }
            if let lora = layer.adapter as? LoRAAdapter { result[path] = Autograd.withoutGrad { lora.deltaWeight().values } }
            if let shira = layer.adapter as? ShiraAdapter {
                result[path] = shira.deltaWeight(outFeatures: layer.outFeatures, inFeatures: layer.inFeatures).values
            }
        }
        return result
    }

    func loaded(_ folder: URL, headFrom: URL? = nil) throws -> ImageClassifier {
        let model = tinyClassifier()
        try AdapterFiles.load(from: folder, into: model, headFrom: headFrom)
        return model
    }

    func loraOptions(rank: Int, alpha: Float, seed: UInt64) -> ConfigObject {
        var options: ConfigObject = [:]
        options["r"] = ConfigValue(rank)
        options["lora_alpha"] = ConfigValue(alpha)
        options["seed"] = ConfigValue(seed)
        options["target_modules"] = TargetModules.allLinear.configValue
        return options
    }

    func testFusedLoRADeltaIsTheWeightedSumOfTheUpdates() throws {
        // Different ranks and alphas: each adapter keeps its own scale alpha_i / r_i.
        let (first, a) = try savedAdapter("lora", options: loraOptions(rank: 2, alpha: 4, seed: 1), valueSeed: 10)
        let (second, b) = try savedAdapter("lora", options: loraOptions(rank: 3, alpha: 3, seed: 2), valueSeed: 11)
        let out = directory()
        let weights: [Float] = [0.7, -0.4]
        let result = try Fusion.fuse([a, b], weights: weights, to: out)
        XCTAssertEqual(result.configuration.swiftpeft.config["r"], 5)
        XCTAssertEqual(result.configuration.swiftpeft.config["lora_alpha"], 5)
        XCTAssertEqual(result.configuration.peftFields["r"], 5, "the top-level peft field says the same")
        let fused = try loaded(out)
        let (d1, d2, d) = (deltas(first), deltas(second), deltas(fused))
        XCTAssertEqual(Set(d.keys), Set(d1.keys))
        XCTAssertFalse(d.isEmpty)
        for (path, delta) in d {
            let expected = zip(d1[path]!, d2[path]!).map { weights[0] * $0 + weights[1] * $1 }
            assertAllClose(delta, expected, tolerance: 1e-5, path)
        }
        // The head is the first adapter's, unchanged.
        XCTAssertEqual(fused.head.weight.values, first.head.weight.values)
        XCTAssertEqual(result.configuration.swiftpeft.fusion?.weights, weights)
    }

    func testWeightsOneAndZeroReproduceTheFirstAdapter() throws {
        for method in ["lora", "shira"] {
            var options = loraOptions(rank: 2, alpha: 2, seed: 1)
            options["density"] = 0.2
            var other = options
            other["seed"] = 7
            other["random_seed"] = 7
            let (first, a) = try savedAdapter(method, options: options, valueSeed: 3)
            let (_, b) = try savedAdapter(method, options: other, valueSeed: 4)
            let out = directory()
            try Fusion.fuse([a, b], weights: [1, 0], to: out)
            let fused = try loaded(out)
            let images = tinyImages(seed: 9)
            assertAllClose(logits(fused, images), logits(first, images), tolerance: 1e-5, method)
        }
    }

    func testFusedSHiRAValuesAddOnSharedPositionsAndKeepTheOthers() throws {
        var options: ConfigObject = [:]
        options["density"] = 0.3
        options["random_seed"] = 4
        var disjoint = options
        disjoint["mask_part"] = 1
        let (first, a) = try savedAdapter("shira", options: options, valueSeed: 1)
        let (same, b) = try savedAdapter("shira", options: options, valueSeed: 2)      // the same mask
        let (apart, c) = try savedAdapter("shira", options: disjoint, valueSeed: 3)    // a disjoint mask
        let adapters = try [a, b, c].map { try Fusion.Adapter(directory: $0) }
        let overlap = SHiRA.maskOverlap(adapters)
        XCTAssertEqual(overlap.shared[0][1], overlap.counts[0], "same seed and part: identical masks")
        XCTAssertEqual(overlap.shared[0][2], 0, "different parts: disjoint masks")
        XCTAssertEqual(overlap.counts[2], overlap.counts[0])

        let weights: [Float] = [0.5, 2, -1.5]
        let out = directory()
        let result = try Fusion.fuse([a, b, c], weights: weights, to: out)
        XCTAssertEqual(result.integers.values.reduce(0) { $0 + $1.shape[1] }, 2 * overlap.counts[0], "the union")
        XCTAssertEqual(result.summary, "\(2 * overlap.counts[0]) positions (\(3 * overlap.counts[0]) in the sources, \(overlap.counts[0]) shared)")
        let fused = try loaded(out)
        let (d1, d2, d3, d) = (deltas(first), deltas(same), deltas(apart), deltas(fused))
        for (path, delta) in d {
            let expected = (0..<delta.count).map { weights[0] * d1[path]![$0] + weights[1] * d2[path]![$0] + weights[2] * d3[path]![$0] }
            assertAllClose(delta, expected, tolerance: 1e-6, path)
            // A position only in the third mask holds exactly w_3 v_3; a shared one w_1 v_1 + w_2 v_2.
            for i in 0..<delta.count where d3[path]![i] != 0 { XCTAssertEqual(delta[i], weights[2] * d3[path]![i]) }
            for i in 0..<delta.count where d1[path]![i] != 0 {
                XCTAssertEqual(delta[i], weights[0] * d1[path]![i] + weights[1] * d2[path]![i], accuracy: 1e-7)
            }
        }
    }

    func testFusedAdapterRoundTripsAndTakesAnotherTasksHead() throws {
        var options: ConfigObject = [:]
        options["density"] = 0.25
        let (_, a) = try savedAdapter("shira", options: options, valueSeed: 1)
        options["mask_part"] = 1
        let (second, b) = try savedAdapter("shira", options: options, valueSeed: 2)
        let out = directory()
        try Fusion.fuse([a, b], weights: [1, 1], headFrom: 1, to: out)
        let fused = try loaded(out)
        XCTAssertEqual(fused.head.weight.values, second.head.weight.values, "head of the second adapter stored")
        // Save the loaded fused model again and load it: same outputs.
        let again = directory()
        try AdapterFiles.save(fused, method: MethodRegistry.method(named: "shira", config: options), baseModel: "tiny", to: again)
        let reloaded = try loaded(again)
        let images = tinyImages(seed: 2)
        XCTAssertEqual(logits(reloaded, images), logits(fused, images))
        // The first task's head on the fused body.
        let withFirstHead = try loaded(out, headFrom: a)
        let firstHead = try loaded(a)
        XCTAssertEqual(withFirstHead.head.weight.values, firstHead.head.weight.values)
        XCTAssertNotEqual(logits(withFirstHead, images), logits(fused, images))
    }

    func testMismatchedAdaptersAreRefusedNamingTheFile() throws {
        let (_, lora) = try savedAdapter("lora", options: loraOptions(rank: 2, alpha: 2, seed: 1), valueSeed: 1)
        let (_, lora2) = try savedAdapter("lora", options: loraOptions(rank: 2, alpha: 2, seed: 2), valueSeed: 2)
        var shiraOptions: ConfigObject = [:]
        shiraOptions["density"] = 0.2
        let (_, shira) = try savedAdapter("shira", options: shiraOptions, valueSeed: 3)
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        // Different methods.
        XCTAssertTrue(message { try Fusion.fuse([lora, shira], weights: [1, 1], to: self.directory()) }
            .contains(shira.path), "method mismatch names the file")
        // Wrong number of weights.
        XCTAssertTrue(message { try Fusion.fuse([lora, lora2], weights: [1], to: self.directory()) }.contains("1 fusion weights for 2 adapters"))
        // Another base model: rewrite the fingerprint in the config.
        let configURL = lora2.appendingPathComponent("adapter_config.json")
        let text = try String(contentsOf: configURL, encoding: .utf8)
        let fingerprint = try AdapterFiles.configuration(in: lora2).swiftpeft.baseFingerprint
        try text.replacingOccurrences(of: fingerprint, with: "0badf00d").write(to: configURL, atomically: true, encoding: .utf8)
        let baseMessage = message { try Fusion.fuse([lora, lora2], weights: [1, 1], to: self.directory()) }
        XCTAssertTrue(baseMessage.contains(lora2.path) && baseMessage.contains("fingerprint"), baseMessage)
        // Mismatched shapes (other target layers): query/value only against all-linear.
        var narrow = loraOptions(rank: 2, alpha: 2, seed: 3)
        narrow["target_modules"] = ["query", "value"]
        let (_, lora3) = try savedAdapter("lora", options: narrow, valueSeed: 4)
        XCTAssertTrue(message { try Fusion.fuse([lora, lora3], weights: [1, 1], to: self.directory()) }.contains(lora3.path))
        // A method that is not linear in its parameters.
        let (_, neat) = try savedAdapter("neat", options: [:] as ConfigObject, valueSeed: 5)
        let (_, neat2) = try savedAdapter("neat", options: [:] as ConfigObject, valueSeed: 6)
        XCTAssertTrue(message { try Fusion.fuse([neat, neat2], weights: [1, 1], to: self.directory()) }.contains("cannot be fused"))
        // A corrupt weights file.
        let broken = lora.appendingPathComponent("adapter_model.safetensors")
        let bytes = try Data(contentsOf: broken)
        try bytes.prefix(bytes.count / 2).write(to: broken)
        let corrupt = message { try Fusion.fuse([lora, lora3], weights: [1, 1], to: self.directory()) }
        XCTAssertTrue(corrupt.contains(broken.path), corrupt)
        // A missing directory.
        XCTAssertTrue(message { _ = try Fusion.Adapter(directory: URL(fileURLWithPath: "/nonexistent/adapter")) }.contains("/nonexistent/adapter"))
    }
}
