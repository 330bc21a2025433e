import XCTest
import Checkpoints
import Engine
import Models

/// Forward outputs and gradients of tiny random models against PyTorch (transformers / timm) fixtures.
final class TinyModelParityTests: XCTestCase {
    static let tinyDINOv2 = VisionTransformerConfiguration(
        imageSize: 56, patchSize: 14, width: 32, depth: 2, heads: 4, mlpDimension: 128,
        layerNormEps: 1e-6, layerScale: true)

    func testDINOv2ForwardAndGradientsMatchTransformers() throws {
        let model = VisionTransformer(Self.tinyDINOv2)
        let weights = try fixture("dinov2_tiny_weights.safetensors")
        try model.load(try weights.loadAll(), source: "dinov2_tiny_weights")
        let io = try fixture("dinov2_tiny_io.safetensors")
        model.setRequiresGrad(true)

        let pixels = try io.tensor("pixels_56")
        pixels.requiresGrad = true
        let hidden = model.features(pixels)
        assertMatches(hidden, try io.tensor("hidden_56"), "hidden_56")
        hidden.backward(gradient: try io.tensor("probe_56"))
        assertMatches(pixels.grad!, try io.tensor("grad_pixels_56"), "grad pixels 56")
        for (name, parameter) in model.namedParameters() {
            guard let grad = parameter.grad else { XCTFail("no gradient for \(name)"); continue }
            assertMatches(grad, try io.tensor("grad.\(name)"), "grad \(name)")
        }
    }

    func testDINOv2PositionResamplingMatchesTransformers() throws {
        let model = VisionTransformer(Self.tinyDINOv2)
        try model.load(try fixture("dinov2_tiny_weights.safetensors").loadAll())
        let io = try fixture("dinov2_tiny_io.safetensors")
        model.embeddings.positionEmbeddings.requiresGrad = true
        let pixels = try io.tensor("pixels_28")
        pixels.requiresGrad = true
        let hidden = model.features(pixels)
        assertMatches(hidden, try io.tensor("hidden_28"), "hidden_28 (2x2 grid resampled from 4x4)")
        hidden.backward(gradient: try io.tensor("probe_28"))
        assertMatches(pixels.grad!, try io.tensor("grad_pixels_28"), "grad pixels 28")
        assertMatches(model.embeddings.positionEmbeddings.grad!,
                      try io.tensor("grad28.embeddings.position_embeddings"), "grad position embeddings 28")
    }

    func testTimmViTLogitsLossAndGradientsMatchTimm() throws {
        let configuration = VisionTransformerConfiguration(
            imageSize: 32, patchSize: 8, width: 32, depth: 2, heads: 4, mlpDimension: 128,
            layerNormEps: 1e-6, layerScale: false)
        let model = VisionTransformer(configuration)
        var state = try convertTimmViTNames(try fixture("vit_tiny_weights.safetensors").loadAll())
        let head = Linear(weight: state.removeValue(forKey: "classifier.weight")!,
                          bias: state.removeValue(forKey: "classifier.bias")!)
        try model.load(state)
        model.setRequiresGrad(true)
        head.weight.requiresGrad = true
        head.bias?.requiresGrad = true
        let io = try fixture("vit_tiny_io.safetensors")
        let pixels = try io.tensor("pixels")
        pixels.requiresGrad = true
        let features = model.features(pixels)
        assertMatches(features, try io.tensor("features"), "features")
        let logits = head(features.slice(axis: 1, 0..<1).reshaped([2, 32]))
        assertMatches(logits, try io.tensor("logits"), "logits")
        let labels = integers(try io.tensor("labels")).map(Int.init)
        let loss = crossEntropy(logits, labels: labels, smoothing: 0.1)
        XCTAssertEqual(loss.item, try io.tensor("loss").item, accuracy: 1e-5)
        loss.backward()
        assertMatches(pixels.grad!, try io.tensor("grad_pixels"), "grad pixels")
        assertMatches(head.weight.grad!, try io.tensor("grad.head.weight"), "grad head.weight")
        assertMatches(head.bias!.grad!, try io.tensor("grad.head.bias"), "grad head.bias")
        // Every backbone gradient under its timm name; query/key/value gradients re-joined into qkv.
        let gradients = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.0, $0.1.grad!) })
        let timmWeights = try fixture("vit_tiny_weights.safetensors")
        for timmName in timmWeights.names where !timmName.hasPrefix("head.") {
            let ours: Tensor
            if timmName.contains("attn.qkv") {
                let layer = timmName.split(separator: ".")[1], kind = timmName.hasSuffix("weight") ? "weight" : "bias"
                ours = concat(["query", "key", "value"].map {
                    gradients["encoder.layer.\(layer).attention.attention.\($0).\(kind)"]!
                }, axis: 0)
            } else {
                let ourName = try convertTimmViTNames([timmName: Tensor(zeros: [1])]).keys.first!
                ours = gradients[ourName]!
            }
            assertMatches(ours, try io.tensor("grad.\(timmName)"), "grad \(timmName)")
        }
    }

    func testBertHiddenStatesPoolingAndGradientsMatchTransformers() throws {
        let configuration = BertConfiguration(vocabularySize: 120, hiddenSize: 32, layers: 2, heads: 4,
                                              intermediateSize: 64, maxPositions: 64)
        let model = BertEncoder(configuration)
        try model.load(try fixture("bert_tiny_weights.safetensors").loadAll())
        model.setRequiresGrad(true)
        let io = try fixture("bert_tiny_io.safetensors")
        let ids = integers(try io.tensor("input_ids")), mask = integers(try io.tensor("attention_mask"))
        let types = integers(try io.tensor("token_type_ids"))
        let batch = TokenBatch(ids: [Array(ids[0..<10]), Array(ids[10..<20])],
                               mask: [Array(mask[0..<10]), Array(mask[10..<20])],
                               typeIds: [Array(types[0..<10]), Array(types[10..<20])])
        let hidden = Autograd.withoutGrad { model.hiddenStates(batch) }
        assertMatches(hidden, try io.tensor("hidden"), "hidden")
        let pooled = model.meanPooled(batch)
        assertMatches(pooled, try io.tensor("pooled"), "pooled")
        pooled.backward(gradient: try io.tensor("probe"))
        for (name, parameter) in model.namedParameters() {
            guard let grad = parameter.grad else { XCTFail("no gradient for \(name)"); continue }
            assertMatches(grad, try io.tensor("grad.\(name)"), "grad \(name)")
        }
    }
}

