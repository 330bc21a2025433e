import XCTest
import Checkpoints
import Engine
import Layers
import Methods
import Models
import TestSupport

/// DoRA (LoRA with `useDoRA`) and rsLoRA scaling.
final class DoRATests: XCTestCase {
    func options(rank: Int = 2, alpha: Float = 4, dora: Bool = true, rslora: Bool = false) -> LoRA.Config {
        LoRA.Config { $0.r = rank; $0.loraAlpha = alpha; $0.useDoRA = dora; $0.useRSLoRA = rslora }
    }

    func testStartsAsThePretrainedModelAndTrainsMagnitudeAndFactors() throws {
        let model = tinyClassifier(), images = tinyImages()
        let before = logits(model, images)
        try LoRA(config: options()).apply(to: model)
        assertAllClose(logits(model, images), before, tolerance: 1e-5, "DoRA at initialisation")
        let names = model.trainableParameters.map(\.0)
        XCTAssertTrue(names.contains { $0.hasSuffix("query.lora_magnitude_vector") }, "\(names)")
        XCTAssertTrue(names.contains { $0.hasSuffix("value.lora_B.weight") })
        // Each magnitude starts as the row norms of its frozen weight.
        let layer = try XCTUnwrap(model.namedModules().first { $0.0.hasSuffix("layer.0.attention.attention.query") }?.1 as? Linear)
        let dora = try XCTUnwrap(layer.adapter as? DoRAAdapter)
        for r in 0..<layer.outFeatures {
            let norm = (0..<layer.inFeatures).map { Double(layer.weight.data[r * layer.inFeatures + $0]) }.map { $0 * $0 }.reduce(0, +).squareRoot()
            XCTAssertEqual(Double(dora.magnitude.data[r]), norm, accuracy: 1e-5)
        }
    }

    /// Gradients of the DoRA layer against finite differences: for x and m exactly; for A and B against the same
    /// function with the row norm held at its current value (DoRA treats the norm as a constant in the backward).
    func testGradientsAgainstFiniteDifferences() {
        var generator = RandomGenerator(seed: 3)
        let layer = Linear(inFeatures: 7, outFeatures: 5, generator: &generator)
        for i in 0..<layer.bias!.count { layer.bias!.data[i] = 0.1 * Float(i) }
        let dora = DoRAAdapter(base: layer, rank: 2, scale: 1.5, generator: &generator)
        for i in 0..<dora.b.count { dora.b.data[i] = 0.3 * Float(i % 3) - 0.2 }
        for i in 0..<dora.magnitude.count { dora.magnitude.data[i] += 0.05 * Float(i) }
        let x = random([3, 7], seed: 4)
        checkGradients("DoRA x, m", inputs: [x, dora.magnitude], epsilon: 1e-3) { inputs in
            dora.forward(inputs[0], base: layer)
        }
        // The norm at this point, as a constant.
        let combined = Autograd.withoutGrad { layer.weight + matmul(dora.b, dora.a).scaled(by: 1.5) }
        let norms = Tensor(shape: [5], values: (0..<5).map { r in
            Float((0..<7).map { Double(combined.data[r * 7 + $0]) }.map { $0 * $0 }.reduce(0, +).squareRoot())
        })
        func fixedNorm(_ a: Tensor, _ b: Tensor) -> Tensor {
            lowRankLinear(x, weight: layer.weight, bias: nil, lowRankInput: x, a: a, b: b, scale: 1.5)
                * (dora.magnitude / norms) + layer.bias!
        }
        assertClose(Autograd.withoutGrad { dora.forward(x, base: layer).values },
                    Autograd.withoutGrad { fixedNorm(dora.a, dora.b).values }, tolerance: 1e-5, "DoRA = the fixed-norm function")
        let probe = random([3, 5], seed: 5)
        for t in [dora.a, dora.b] { t.grad = nil }
        dora.forward(x, base: layer).backward(gradient: probe)
        let analytic = [dora.a.grad!.values, dora.b.grad!.values]
        let a = dora.a.copy(), b = dora.b.copy()
        // The fixed-norm function's backward is right (finite differences), and DoRA's backward equals it.
        checkGradients("DoRA A, B (norm fixed)", inputs: [a, b], epsilon: 1e-3) { inputs in fixedNorm(inputs[0], inputs[1]) }
        for t in [a, b] { t.grad = nil }
        fixedNorm(a, b).backward(gradient: probe)
        assertClose(analytic[0], a.grad!.values, tolerance: 1e-5, "dA")
        assertClose(analytic[1], b.grad!.values, tolerance: 1e-5, "dB")
    }

    /// The defining property: after merging, every row of the weight has norm m (magnitude), pointing along
    /// W0 + s B A; outputs are unchanged by the merge and unmerge restores W0 bit for bit.
    func testMergeGivesRowsOfNormMagnitudeAndUnmergeRestores() throws {
        let model = tinyClassifier()
        try LoRA(config: options(rank: 2)).apply(to: model)
        trainOneStep(model, images: tinyImages(seed: 1), labels: [0, 2], rate: 0.05)
        trainOneStep(model, images: tinyImages(seed: 2), labels: [1, 0], rate: 0.05)
        let images = tinyImages(seed: 9)
        let adapted = logits(model, images)
        let layers = model.namedModules().compactMap { $0.1 as? Linear }.filter { $0.adapter is DoRAAdapter }
        XCTAssertFalse(layers.isEmpty)
        let originals = layers.map { $0.weight.values }
        let magnitudes = layers.map { ($0.adapter as! DoRAAdapter).magnitude.values }
        try Merging.merge(model)
        assertAllClose(logits(model, images), adapted, tolerance: 1e-4, "merged DoRA")
        for (layer, magnitude) in zip(layers, magnitudes) {
            for r in 0..<layer.outFeatures {
                let norm = (0..<layer.inFeatures).map { Double(layer.weight.data[r * layer.inFeatures + $0]) }.map { $0 * $0 }.reduce(0, +).squareRoot()
                XCTAssertEqual(norm, Double(magnitude[r]), accuracy: 1e-4 * max(1, Double(magnitude[r])))
            }
        }
        Merging.unmerge(model)
        XCTAssertEqual(layers.map { $0.weight.values }, originals)
        assertAllClose(logits(model, images), adapted, tolerance: 1e-6, "unmerged DoRA")
    }

    func testRSLoRAScalesByTheSquareRootOfTheRank() throws {
        XCTAssertEqual(options(rank: 4, alpha: 8, dora: false, rslora: true).scale, 4)
        XCTAssertEqual(options(rank: 4, alpha: 8, dora: false, rslora: false).scale, 2)
        let model = tinyClassifier()
        try LoRA(config: options(rank: 4, alpha: 8, dora: false, rslora: true)).apply(to: model)
        let adapter = try XCTUnwrap(model.namedModules().compactMap { ($0.1 as? Linear)?.adapter as? LoRAAdapter }.first)
        XCTAssertEqual(adapter.scale, 4)
    }

    func testSavedInPeftsLayoutAndRoundTrips() throws {
        let model = tinyClassifier()
        let chosen = LoRA(config: options(rank: 2, rslora: true))
        try chosen.apply(to: model)
        trainOneStep(model, images: tinyImages(seed: 1), labels: [0, 2], rate: 0.05)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dora-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        try AdapterFiles.save(model, method: chosen, baseModel: "tiny", to: folder)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(config["peft_type"] as? String, "LORA")
        XCTAssertEqual(config["use_dora"] as? Bool, true)
        XCTAssertEqual(config["use_rslora"] as? Bool, true)
        let file = try SafeTensorsFile(path: folder.appendingPathComponent("adapter_model.safetensors").path)
        XCTAssertTrue(file.names.contains("base_model.model.dinov2.encoder.layer.0.attention.q_proj.lora_magnitude_vector"), "\(file.names)")
        let restored = tinyClassifier()
        try AdapterFiles.load(from: folder, into: restored)
        let images = tinyImages(seed: 4)
        XCTAssertEqual(logits(restored, images), logits(model, images))
        // Fusion refuses DoRA adapters instead of summing them as if they were plain LoRA.
        let adapter = try Fusion.Adapter(directory: folder)
        XCTAssertThrowsError(try Fusion.fuse([adapter, adapter], weights: [0.5, 0.5])) { error in
            XCTAssertTrue("\(error)".contains("DoRA adapter cannot be fused"), "\(error)")
        }
    }
}
