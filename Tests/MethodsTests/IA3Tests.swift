import XCTest
import Checkpoints
import Engine
import Layers
import Methods
import Models

/// (IA)^3: the vectors rescale a layer's output (or a feed-forward layer's input), start at 1, fold into the weights,
/// and are saved in peft's layout.
final class IA3Tests: XCTestCase {
    func testStartsAsThePretrainedModelAndRescalesOutputsOrInputs() throws {
        let model = tinyClassifier(), images = tinyImages()
        let before = logits(model, images)
        try IA3().apply(to: model)
        assertAllClose(logits(model, images), before, tolerance: 0, "vectors start at 1")
        // Per block: key and value 16 outputs each, fc2 scales its 64 inputs; plus the head.
        let fc2 = model.vision.blocks[0].mlp.fc2
        XCTAssertEqual(model.trainableParameterCount, 2 * (16 + 16 + fc2.inFeatures) + 3 * 32 + 3)
        XCTAssertNil(model.vision.blocks[0].attention.query.adapter, "query is not a default target")

        var generator = RandomGenerator(seed: 4)
        let key = model.vision.blocks[0].attention.key
        let keyAdapter = try XCTUnwrap(key.adapter as? IA3Adapter)
        XCTAssertFalse(keyAdapter.scalesInput)
        XCTAssertEqual(keyAdapter.vector.shape, [16, 1])
        keyAdapter.vector.assign(Tensor.randomNormal([16, 1], generator: &generator))
        let x = Tensor.randomNormal([3, 16], generator: &generator)
        let plain = Autograd.withoutGrad { linear(x, key.weight, key.bias).values }
        let scaled = Autograd.withoutGrad { key(x).values }
        for r in 0..<3 { for c in 0..<16 { XCTAssertEqual(scaled[r * 16 + c], plain[r * 16 + c] * keyAdapter.vector.values[c], accuracy: 1e-5) } }

        let fc2Adapter = try XCTUnwrap(fc2.adapter as? IA3Adapter)
        XCTAssertTrue(fc2Adapter.scalesInput)
        XCTAssertEqual(fc2Adapter.vector.shape, [1, fc2.inFeatures])
        fc2Adapter.vector.assign(Tensor.randomNormal([1, fc2.inFeatures], generator: &generator))
        let h = Tensor.randomNormal([3, fc2.inFeatures], generator: &generator)
        let expected = Autograd.withoutGrad { linear(h * fc2Adapter.vector, fc2.weight, fc2.bias).values }
        assertAllClose(Autograd.withoutGrad { fc2(h).values }, expected, tolerance: 1e-5, "input scaling")
    }

    func testGradientsMatchFiniteDifferences() {
        for scalesInput in [false, true] {
            var generator = RandomGenerator(seed: 12)
            let layer = Linear(inFeatures: 6, outFeatures: 5, generator: &generator)
            layer.bias?.assign(Tensor.randomNormal([5], generator: &generator))
            let adapter = IA3Adapter(inFeatures: 6, outFeatures: 5, scalesInput: scalesInput)
            adapter.vector.assign(Tensor.randomNormal(adapter.vector.shape, generator: &generator))
            layer.adapter = adapter
            let x = Tensor.randomNormal([3, 6], generator: &generator)
            checkGradients("ia3 \(scalesInput ? "input" : "output")", inputs: [adapter.vector, x]) { _ in layer(x) }
        }
    }

    func testMergeEqualsTheAdaptedForwardAndUnmergeRestoresTheBase() throws {
        let model = tinyClassifier(), images = tinyImages()
        let base = model.namedParameters().map { ($0.0, $0.1.values) }
        try IA3(config: .init { $0.targetModules = .allLinear; $0.feedforwardModules = .names(["fc1", "fc2"]) }).apply(to: model)
        trainOneStep(model, images: images, labels: [0, 2], rate: 0.2)
        trainOneStep(model, images: tinyImages(seed: 3), labels: [1, 0], rate: 0.2)
        let adapted = logits(model, images)
        XCTAssertNotEqual(adapted, logits(tinyClassifier(), images), "training changed the vectors")
        try Merging.mergeAdapters(in: model)
        assertAllClose(logits(model, images), adapted, tolerance: 1e-4, "merged")
        Merging.unmergeAdapters(in: model)
        let restored = Dictionary(model.namedParameters().map { ($0.0, $0.1.values) }, uniquingKeysWith: { a, _ in a })
        for (name, values) in base where !name.hasPrefix("classifier.") {
            XCTAssertEqual(restored[name], values, "\(name) restored bit for bit")
        }
        assertAllClose(logits(model, images), adapted, tolerance: 1e-5, "adapters back after unmerge")
    }

    func testSavedInPeftsLayoutAndRoundTrips() throws {
        let model = tinyClassifier(), images = tinyImages()
        let ia3 = IA3()
        try ia3.apply(to: model)
        trainOneStep(model, images: images, labels: [0, 2], rate: 0.2)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ia3-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        try AdapterFiles.save(model, method: ia3, baseModel: "tiny", to: folder)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(json["peft_type"] as? String, "IA3")
        XCTAssertEqual(json["target_modules"] as? [String], ["k_proj", "v_proj", "fc2"])
        XCTAssertEqual(json["feedforward_modules"] as? [String], ["fc2"])
        let file = try SafeTensorsFile(path: folder.appendingPathComponent("adapter_model.safetensors").path)
        XCTAssertEqual(file.info("base_model.model.dinov2.encoder.layer.0.attention.v_proj.ia3_l")?.shape, [16, 1])
        XCTAssertEqual(file.info("base_model.model.dinov2.encoder.layer.1.mlp.fc2.ia3_l")?.shape, [1, model.vision.blocks[1].mlp.fc2.inFeatures])
        let restored = tinyClassifier()
        try AdapterFiles.load(from: folder, into: restored)
        XCTAssertEqual(logits(restored, images), logits(model, images))
    }
}
