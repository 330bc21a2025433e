import XCTest
import Engine
import Layers
import Methods
import Models

/// Defining properties of the baseline methods.
final class BaselineMethodTests: XCTestCase {
    func testLinearProbeTrainsOnlyTheHead() throws {
        let model = tinyClassifier()
        try LinearProbe().apply(to: model)
        XCTAssertEqual(Set(model.trainableParameters.map(\.0)), ["classifier.weight", "classifier.bias"])
        XCTAssertEqual(model.trainableParameterCount, 3 * 32 + 3)
    }

    func testFullFineTuningTrainsEverything() throws {
        let model = tinyClassifier()
        try FullFineTuning().apply(to: model)
        XCTAssertEqual(model.trainableParameterCount, model.parameterCount)
    }

    func testBitFitTrainsBiasesAndHead() throws {
        let model = tinyClassifier()
        try BitFit().apply(to: model)
        let expected = model.namedParameters().filter { $0.0.hasSuffix(".bias") || $0.0.hasPrefix("classifier.") }
        XCTAssertEqual(model.trainableParameterCount, expected.reduce(0) { $0 + $1.1.count })
        XCTAssertTrue(model.trainableParameters.allSatisfy { $0.0.hasSuffix("bias") || $0.0 == "classifier.weight" })
    }

    func testLayerNormTuningTrainsNormsAndHead() throws {
        let model = tinyClassifier()
        try LayerNormTuning().apply(to: model)
        // 2 blocks x 2 norms + final norm, each weight + bias of 16; plus the head.
        XCTAssertEqual(model.trainableParameterCount, 5 * 2 * 16 + 3 * 32 + 3)
        let frozenBefore = model.vision.blocks[0].mlp.fc1.weight.values
        let images = tinyImages()
        trainOneStep(model, images: images, labels: [0, 2])
        XCTAssertEqual(model.vision.blocks[0].mlp.fc1.weight.values, frozenBefore, "frozen weights must not move")
    }

    func testBottleneckAdapterStartsAsIdentityAndCountsParameters() throws {
        let model = tinyClassifier()
        let images = tinyImages()
        let before = logits(model, images)
        try BottleneckAdapterMethod(config: .init { $0.adapterWidth = 4 }).apply(to: model)
        assertAllClose(logits(model, images), before, tolerance: 0, "zero-initialised up projection")
        // Per block: down 4x16 + 4, up 16x4 + 16.
        XCTAssertEqual(model.trainableParameterCount, 2 * (4 * 16 + 4 + 16 * 4 + 16) + 3 * 32 + 3)
        XCTAssertTrue(model.trainableParameters.contains { $0.0 == "dinov2.encoder.layer.1.adapter.up_proj.weight" })
        trainOneStep(model, images: images, labels: [1, 2])
        XCTAssertNotEqual(logits(model, images), before, "the adapter must learn")
    }

    func testVPTDeepCountsPromptsAndKeepsOutputShape() throws {
        let model = tinyClassifier()
        var options: ConfigObject = [:]
        options["num_virtual_tokens"] = 3
        try VisualPromptTuning(config: try .decoded(from: options)).apply(to: model)
        XCTAssertEqual(model.trainableParameterCount, 2 * 3 * 16 + 3 * 32 + 3)
        let images = tinyImages()
        let features = Autograd.withoutGrad { model.vision.features(images) }
        XCTAssertEqual(features.shape, [2, 1 + 16, 16], "prompt tokens are removed from the output")
        let before = logits(model, images)
        trainOneStep(model, images: images, labels: [0, 1])
        XCTAssertNotEqual(logits(model, images), before)
        XCTAssertTrue(model.vision.tokenInserter is DeepPrompts)
    }

    func testVPTPromptGradientsMatchFiniteDifferences() throws {
        let model = tinyClassifier()
        var options: ConfigObject = [:]
        options["num_virtual_tokens"] = 2
        try VisualPromptTuning(config: try .decoded(from: options)).apply(to: model)
        let images = tinyImages()
        let prompt = try XCTUnwrap(model.vision.tokenInserter as? DeepPrompts).prompts[1]
        // Through the whole model the prompt gradients are small (about 1e-3), so the check allows an absolute
        // error for float32 cancellation instead of checkGradients' relative norm.
        let loss = crossEntropy(model.logits(.images(images)), labels: [0, 2])
        loss.backward()
        let analytic = prompt.grad!.values
        for index in [0, 5, 17, 31] {
            let saved = prompt.data[index]
            prompt.data[index] = saved + 1e-2
            let plus = Autograd.withoutGrad { crossEntropy(model.logits(.images(images)), labels: [0, 2]).item }
            prompt.data[index] = saved - 1e-2
            let minus = Autograd.withoutGrad { crossEntropy(model.logits(.images(images)), labels: [0, 2]).item }
            prompt.data[index] = saved
            XCTAssertEqual(analytic[index], (plus - minus) / 2e-2, accuracy: 2e-3 + 2e-2 * abs(analytic[index]))
        }
    }

    func testUnknownMethodListsValidNames() {
        XCTAssertThrowsError(try MethodRegistry.method(named: "lorax")) { error in
            XCTAssertTrue("\(error)".contains("lora, adapter, vpt") || "\(error)".contains("lora"), "\(error)")
            XCTAssertTrue("\(error)".contains("bitfit"))
        }
    }
}
