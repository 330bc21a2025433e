import XCTest
import Engine
import Layers
import Methods
import Models

final class LoRATests: XCTestCase {
    func testLoRAStartsAsIdentity() throws {
        let model = tinyClassifier()
        let images = tinyImages()
        let before = logits(model, images)
        try LoRA().apply(to: model)
        assertAllClose(logits(model, images), before, tolerance: 0, "B = 0 at start")
    }

    func testParameterCountMatchesFormula() throws {
        let model = tinyClassifier()
        var options: ConfigObject = [:]
        options["r"] = 4
        try LoRA(config: try .decoded(from: options)).apply(to: model)
        // query and value in 2 blocks: r (in + out) each, plus the head.
        XCTAssertEqual(model.trainableParameterCount, 2 * 2 * 4 * (16 + 16) + 3 * 32 + 3)
        XCTAssertTrue(model.trainableParameters.contains { $0.0 == "dinov2.encoder.layer.0.attention.attention.query.lora_A.weight" })
        XCTAssertTrue(model.trainableParameters.contains { $0.0 == "dinov2.encoder.layer.1.attention.attention.value.lora_B.weight" })
    }

    func testOnlyAdapterAndHeadChangeWhenTraining() throws {
        let model = tinyClassifier()
        try LoRA().apply(to: model)
        let baseBefore = model.namedParameters().filter { !$0.1.requiresGrad }.map { ($0.0, $0.1.values) }
        trainOneStep(model, images: tinyImages(), labels: [0, 1])
        trainOneStep(model, images: tinyImages(), labels: [0, 1])
        let baseAfter = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.0, $0.1.values) })
        for (name, values) in baseBefore { XCTAssertEqual(baseAfter[name], values, "\(name) changed") }
        let layer = model.vision.blocks[0].attention.query
        let adapter = try XCTUnwrap(layer.adapter as? LoRAAdapter)
        XCTAssertGreaterThan(adapter.b.values.map(abs).max()!, 0, "B must have learned")
    }

    func testAdapterGradientsMatchFiniteDifferences() throws {
        var generator = RandomGenerator(seed: 3)
        let layer = Linear(inFeatures: 6, outFeatures: 5, generator: &generator)
        let adapter = LoRAAdapter(inFeatures: 6, outFeatures: 5, rank: 2, alpha: 4, generator: &generator)
        for i in 0..<adapter.b.count { adapter.b.data[i] = generator.nextNormal() * 0.5 }
        layer.adapter = adapter
        let x = Tensor.randomNormal([3, 6], generator: &generator)
        let probe = Tensor.randomNormal([3, 5], generator: &generator)
        checkGradients("LoRA A, B", inputs: [adapter.a, adapter.b]) { _ in (layer(x) * probe).sum() }
    }

    func testDeltaWeightEqualsAdapterOutput() throws {
        var generator = RandomGenerator(seed: 4)
        let layer = Linear(inFeatures: 8, outFeatures: 8, generator: &generator)
        let adapter = LoRAAdapter(inFeatures: 8, outFeatures: 8, rank: 2, alpha: 2, generator: &generator)
        for i in 0..<adapter.b.count { adapter.b.data[i] = generator.nextNormal() }
        layer.adapter = adapter
        let x = Tensor.randomNormal([4, 8], generator: &generator)
        let merged = Autograd.withoutGrad { linear(x, layer.weight + adapter.deltaWeight(), layer.bias) }
        assertAllClose(Autograd.withoutGrad { layer(x) }.values, merged.values, tolerance: 1e-5, "merge equals unmerged")
    }

    func testTargetModuleRules() throws {
        let model = tinyClassifier()
        XCTAssertEqual(try TargetModules.names(["query"]).select(in: model.backbone).count, 2)
        XCTAssertEqual(try TargetModules(parsing: "fc1,fc2").select(in: model.backbone).count, 4)
        XCTAssertEqual(try TargetModules.pattern(#"encoder\.layer\.0\..*(query|key)"#).select(in: model.backbone).count, 2)
        // every Linear but the head: q, k, v, attention output, fc1, fc2 per block
        XCTAssertEqual(try TargetModules.allLinear.select(in: model).count, 12)
        XCTAssertThrowsError(try TargetModules.names(["qkv"]).select(in: model.backbone)) { error in
            XCTAssertTrue("\(error)".contains("query"), "error should list the layer names: \(error)")
        }
        var options: ConfigObject = [:]
        options["r"] = 32
        XCTAssertThrowsError(try LoRA(config: try .decoded(from: options)).apply(to: model)) { error in
            XCTAssertTrue("\(error)".contains("larger than layer"), "\(error)")
        }
    }

    /// A module of the test's own (not a classifier): LoRA attaches by target names, only the adapters train,
    /// and merging then unmerging gives the adapted and then the original outputs back.
    func testLoRAOnAModuleOfOurOwn() throws {
        final class TwoLayers: Module {
            let first: Linear, second: Linear
            init() {
                var generator = RandomGenerator(seed: 4)
                first = Linear(inFeatures: 12, outFeatures: 10, generator: &generator)
                second = Linear(inFeatures: 10, outFeatures: 6, generator: &generator)
            }
            var children: [(String, any Module)] { [("first", first), ("second", second)] }
            func callAsFunction(_ x: Tensor) -> Tensor { second(relu(first(x))) }
        }
        let model = TwoLayers()
        var generator = RandomGenerator(seed: 5)
        let x = Tensor.randomNormal([3, 12], generator: &generator)
        let original = Autograd.withoutGrad { model(x).values }
        var options: ConfigObject = [:]
        options["r"] = 2
        options["target_modules"] = TargetModules.names(["second"]).configValue
        XCTAssertEqual(try LoRA(config: try .decoded(from: options)).attach(to: model), ["second"])
        XCTAssertEqual(model.trainableParameterCount, 2 * 10 + 6 * 2, "only lora_A and lora_B of 'second' train")
        XCTAssertNil(model.first.adapter)
        // Give B values so the update is not zero, then check merge and unmerge.
        let b = model.namedParameters().first { $0.0 == "second.lora_B.weight" }!.1
        for i in 0..<b.count { b.data[i] = 0.1 * Float(i % 5 - 2) }
        let adapted = Autograd.withoutGrad { model(x).values }
        XCTAssertNotEqual(adapted, original)
        try Merging.mergeLinearAdapters(in: model)
        XCTAssertNil(model.second.adapter)
        let merged = Autograd.withoutGrad { model(x).values }
        for (m, a) in zip(merged, adapted) { XCTAssertEqual(m, a, accuracy: 1e-5) }
        Merging.unmergeLinearAdapters(in: model)
        XCTAssertNotNil(model.second.adapter)
        model.second.adapter = nil
        let restored = Autograd.withoutGrad { model(x).values }
        for (r, o) in zip(restored, original) { XCTAssertEqual(r, o, accuracy: 1e-6) }
        options["target_modules"] = TargetModules.names(["third"]).configValue
        XCTAssertThrowsError(try LoRA(config: try .decoded(from: options)).attach(to: model)) { error in
            XCTAssertTrue("\(error)".contains("matched no Linear layer"), "\(error)")
        }
    }
}
