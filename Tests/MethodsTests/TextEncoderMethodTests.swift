import XCTest
import Engine
import Layers
import Methods
import Models

/// The methods that add to a transformer block (bottleneck adapter, VPT, RLRR, TTC) work on the BERT encoder too,
/// through the blocks' generic hooks: each keeps its defining property there.
final class TextEncoderMethodTests: XCTestCase {
    static let configuration = BertConfiguration(vocabularySize: 40, hiddenSize: 16, layers: 2, heads: 2,
                                                 intermediateSize: 32, maxPositions: 16)

    func textClassifier(seed: UInt64 = 3) -> TextClassifier {
        let encoder = BertEncoder(Self.configuration, seed: seed)
        // Non-trivial LayerNorm parameters, so the checks below cannot pass by accident.
        var generator = RandomGenerator(seed: seed &+ 1)
        for (_, module) in encoder.namedModules() {
            guard let norm = module as? LayerNorm else { continue }
            for i in 0..<norm.weight.count {
                norm.weight.data[i] = 1 + 0.1 * generator.nextNormal()
                norm.bias.data[i] = 0.1 * generator.nextNormal()
            }
        }
        return TextClassifier(encoder: encoder, classes: 3, seed: seed)
    }

    /// Two sequences, the second padded by two tokens.
    func tokens(ids: [[Int32]] = [[1, 5, 9, 4, 7, 2], [1, 8, 3, 2, 0, 0]]) -> TokenBatch {
        TokenBatch(ids: ids, mask: ids.enumerated().map { index, row in
            index == 1 ? row.indices.map { $0 < 4 ? 1 : 0 } : row.map { _ in 1 }
        })
    }

    func logits(_ model: any Classifier, _ batch: TokenBatch) -> [Float] {
        Autograd.withoutGrad { model.logits(.tokens(batch)).values }
    }

    func step(_ model: any Classifier, _ batch: TokenBatch, labels: [Int], rate: Float = 0.1) {
        crossEntropy(model.logits(.tokens(batch)), labels: labels).backward()
        for (_, parameter) in model.trainableParameters {
            guard let grad = parameter.grad else { continue }
            for i in 0..<parameter.count { parameter.data[i] -= rate * grad.data[i] }
            parameter.grad = nil
        }
    }

    let head = 3 * 16 + 3

    func testBottleneckAdapterStartsAsThePretrainedModelAndSitsInsideThePostNorm() throws {
        let model = textClassifier(), batch = tokens()
        let before = logits(model, batch)
        var options: ConfigObject = [:]
        options["adapter_width"] = 4
        try BottleneckAdapterMethod(config: try .decoded(from: options)).apply(to: model)
        assertAllClose(logits(model, batch), before, tolerance: 0, "zero-initialised up projection")
        XCTAssertEqual(model.trainableParameterCount, 2 * (4 * 16 + 4 + 16 * 4 + 16) + head)
        XCTAssertTrue(model.trainableParameters.contains { $0.0 == "bert.encoder.layer.1.adapter.up_proj.weight" })
        // A non-zero branch is added inside the output LayerNorm (post-norm): with that norm set to weight 1,
        // bias 0, every output token has mean 0 and variance 1 whatever the branch adds.
        let last = model.encoder.layers[1]
        last.output.norm.weight.assign(Tensor(shape: [16], repeating: 1))
        last.output.norm.bias.assign(Tensor(zeros: [16]))
        let adapter = try XCTUnwrap(last.hooks.module(named: "adapter") as? BottleneckAdapter)
        var generator = RandomGenerator(seed: 8)
        adapter.up.weight.assign(Tensor.randomNormal([16, 4], std: 3, generator: &generator))
        let hidden = Autograd.withoutGrad { model.encoder.hiddenStates(batch) }
        for row in 0..<(hidden.count / 16) {
            let values = (0..<16).map { hidden.data[row * 16 + $0] }
            let mean = values.reduce(0, +) / 16
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 16
            XCTAssertEqual(mean, 0, accuracy: 1e-4)
            XCTAssertEqual(variance, 1, accuracy: 1e-2)
        }
        let frozen = model.encoder.layers[0].intermediate.dense.weight.values
        step(model, batch, labels: [0, 2])
        XCTAssertNotEqual(logits(model, batch), before, "the adapter must learn")
        XCTAssertEqual(model.encoder.layers[0].intermediate.dense.weight.values, frozen, "the base stays frozen")
    }

    func testVPTPromptsTrainAndLeavePaddingWithoutEffect() throws {
        let model = textClassifier()
        var options: ConfigObject = [:]
        options["num_virtual_tokens"] = 3
        let batch = tokens()
        let before = logits(model, batch)
        try VisualPromptTuning(config: try .decoded(from: options)).apply(to: model)
        XCTAssertEqual(model.trainableParameterCount, 2 * 3 * 16 + head)
        XCTAssertTrue(model.trainableParameters.contains { $0.0 == "bert.prompt_embeddings.1" })
        let hidden = Autograd.withoutGrad { model.encoder.hiddenStates(batch) }
        XCTAssertEqual(hidden.shape, [2, 6, 16], "prompt tokens are removed from the output")
        XCTAssertNotEqual(logits(model, batch), before, "prompts change what the tokens attend to")
        // The padded sequence alone, unpadded, gives the same prediction: the prompts' key-mask entries are
        // inserted at the right place and the padding stays masked.
        let alone = TokenBatch(ids: [[1, 8, 3, 2]], mask: [[1, 1, 1, 1]])
        assertAllClose(Array(logits(model, batch)[3..<6]), logits(model, alone), tolerance: 1e-5, "padding")
        let prompt = try XCTUnwrap(model.encoder.tokenInserter as? DeepPrompts).prompts[1]
        crossEntropy(model.logits(.tokens(batch)), labels: [1, 2]).backward()
        XCTAssertGreaterThan(prompt.grad?.values.map(abs).max() ?? 0, 0, "the deep prompts get a gradient")
    }

    func testRLRRCoversEveryLinearAndLayerNormAndMergesExactly() throws {
        let batch = tokens()
        let identity = textClassifier()
        let pretrained = logits(identity, batch)
        var options: ConfigObject = [:]
        options["identity_start"] = true
        try RLRR(config: try .decoded(from: options)).apply(to: identity)
        assertAllClose(logits(identity, batch), pretrained, tolerance: 1e-6, "identity start")

        let model = textClassifier()
        try RLRR().apply(to: model)
        let modules = model.encoder.namedModules().map(\.1)
        let linears = modules.compactMap { $0 as? Linear }, norms = modules.compactMap { $0 as? LayerNorm }
        XCTAssertEqual(linears.count, 12)
        XCTAssertTrue(linears.allSatisfy { $0.adapter is RLRRAdapter })
        XCTAssertEqual(norms.count, 5, "the embedding norm and two per layer")
        XCTAssertTrue(norms.allSatisfy { $0.outputAdapter is ScaleShift })
        let expected = linears.reduce(0) { $0 + 2 * $1.outFeatures + $1.inFeatures } + norms.count * 2 * 16 + head
        XCTAssertEqual(model.trainableParameterCount, expected)
        step(model, batch, labels: [2, 1])
        let adapted = logits(model, batch)
        let baseWeights = model.encoder.parameters.map(\.values)
        try Merging.merge(model)
        XCTAssertTrue(norms.allSatisfy { $0.outputAdapter == nil } && linears.allSatisfy { $0.adapter == nil })
        assertAllClose(logits(model, batch), adapted, tolerance: 1e-5, "merged equals unmerged")
        Merging.unmerge(model)
        XCTAssertEqual(model.encoder.parameters.map(\.values), baseWeights, "unmerge restores the base bit for bit")
        assertAllClose(logits(model, batch), adapted, tolerance: 0, "and the adapters")
    }

    func testTTCSelectsChannelsOnTheEncoderAndRestoresTheSelection() throws {
        var options: ConfigObject = [:]
        options["channels"] = 3
        let method = TTC(config: try .decoded(from: options))
        let model = textClassifier()
        try method.apply(to: model)
        XCTAssertFalse(method.isPastFirstStage(model))
        XCTAssertEqual(model.trainableParameterCount, 5 * 2 * 16 + head, "stage one: the LayerNorms and the head")
        let calibration: [(ClassifierInput, [Int])] = [(.tokens(tokens()), [0, 1]),
                                                         (.tokens(tokens(ids: [[1, 4, 4, 6, 2, 3], [1, 9, 2, 2, 0, 0]])), [2, 2])]
        try method.advance(model, calibration: calibration)
        XCTAssertTrue(method.isPastFirstStage(model))
        XCTAssertEqual(model.trainableParameterCount, 5 * 2 * 16 + 2 * (9 + 3) + head)
        for layer in model.encoder.layers.items {
            let map = try XCTUnwrap(layer.hooks.module(named: "residual_map") as? ChannelMap)
            XCTAssertEqual(map.channels.count, 3)
        }
        // Give the maps an effect, then rebuild the same decision on a fresh model from the stored state.
        for case let map as ChannelMap in model.encoder.layers.items.compactMap({ $0.hooks.module(named: "residual_map") }) {
            for i in 0..<map.bias.count { map.bias.data[i] = 0.5 }
        }
        let state = try method.stageState(model)
        let restored = textClassifier()
        try method.apply(to: restored)
        try method.restoreStage(restored, json: state.json, tensors: state.tensors)
        try restored.load(model.stateDict(), source: "trained")
        assertAllClose(logits(restored, tokens()), logits(model, tokens()), tolerance: 0, "restored selection")
        XCTAssertThrowsError(try method.restoreStage(textClassifier(), json: "[[99]]", tensors: [:]))
    }

    func testAdaptersOnTheEncoderRoundTripThroughAdapterFiles() throws {
        for (name, options) in [("adapter", ["adapter_width": 4]), ("vpt", ["num_virtual_tokens": 2]),
                                ("rlrr", [:] as ConfigObject)] {
            let model = textClassifier()
            try MethodRegistry.method(named: name, config: options).apply(to: model)
            step(model, tokens(), labels: [0, 1])
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("text-\(name)-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: folder) }
            try AdapterFiles.save(model, method: MethodRegistry.method(named: name, config: options), baseModel: "tiny-bert", to: folder)
            let restored = textClassifier()
            try AdapterFiles.load(from: folder, into: restored)
            XCTAssertEqual(logits(restored, tokens()), logits(model, tokens()), name)
        }
    }

    func testMergeRefusesBlockBranchesAndPromptsOnTheEncoder() throws {
        for name in ["adapter", "vpt"] {
            let model = textClassifier()
            try MethodRegistry.method(named: name).apply(to: model)
            XCTAssertThrowsError(try Merging.merge(model), name) { error in
                XCTAssertTrue("\(error)".contains("cannot be merged"), "\(error)")
            }
        }
    }
}
