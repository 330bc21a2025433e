import XCTest
import Engine
import Layers
import Methods
import Models

/// Finite-difference gradients of a layer's parameters through sum(layer(x) * probe).
func checkLayerGradients(_ layer: Linear, parameters: [Tensor], seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
    var generator = RandomGenerator(seed: seed)
    let x = Tensor.randomNormal([3, layer.inFeatures], generator: &generator)
    let probe = Tensor.randomNormal([3, layer.outFeatures], generator: &generator)
    checkGradients("layer parameters", inputs: parameters, file: file, line: line) { _ in (layer(x) * probe).sum() }
}

final class NEATTests: XCTestCase {
    func testStartsAsIdentityAndCountsParameters() throws {
        let model = tinyClassifier()
        let images = tinyImages()
        let before = logits(model, images)
        var options: ConfigObject = [:]
        options["r"] = 3
        options["depth"] = 1
        try NEAT(config: try .decoded(from: options)).apply(to: model)
        assertAllClose(logits(model, images), before, tolerance: 0, "Q = 0 at start")
        // query and value of 2 blocks: P r x out + Q out x r + one encoder and one decoder r x r; plus the head.
        XCTAssertEqual(model.trainableParameterCount, 4 * (3 * 16 + 16 * 3 + 2 * 9) + 3 * 32 + 3)
        trainOneStep(model, images: images, labels: [0, 1])
        XCTAssertNotEqual(logits(model, images), before)
    }

    func testGradientsMatchFiniteDifferences() {
        for pairs in [0, 1] {
            var generator = RandomGenerator(seed: 21)
            let layer = Linear(inFeatures: 7, outFeatures: 6, generator: &generator)
            let adapter = NEATAdapter(inFeatures: 7, outFeatures: 6, rank: 3, pairs: pairs, scale: 0.5, generator: &generator)
            for i in 0..<adapter.q.count { adapter.q.data[i] = generator.nextNormal() }
            layer.adapter = adapter
            checkLayerGradients(layer, parameters: [adapter.p, adapter.q] + adapter.encoders + adapter.decoders, seed: 22)
        }
    }

    func testMergedWeightFromTheOriginalEqualsTheAdaptedLayer() {
        var generator = RandomGenerator(seed: 23)
        let layer = Linear(inFeatures: 8, outFeatures: 5, generator: &generator)
        let adapter = NEATAdapter(inFeatures: 8, outFeatures: 5, rank: 2, pairs: 1, generator: &generator)
        for i in 0..<adapter.q.count { adapter.q.data[i] = generator.nextNormal() }
        layer.adapter = adapter
        let x = Tensor.randomNormal([4, 8], generator: &generator)
        let merged = Autograd.withoutGrad { linear(x, layer.weight + adapter.deltaWeight(original: layer.weight), layer.bias) }
        assertAllClose(Autograd.withoutGrad { layer(x) }.values, merged.values, tolerance: 1e-5, "merge equals unmerged")
    }
}

final class RLRRTests: XCTestCase {
    func testParameterCountMatchesFormula() throws {
        let model = tinyClassifier()
        try RLRR().apply(to: model)
        // Per block: q, k, v, output (16 -> 16): 16 + 16 + 16 each; fc1 16 -> 32: 32 + 16 + 32; fc2 32 -> 16: 16 + 32 + 16.
        // Scale-shift: 2 x 16 after norm1 and norm2 of each block, the final norm and the patch embedding.
        let perBlock = 4 * 48 + 80 + 64 + 2 * 32
        XCTAssertEqual(model.trainableParameterCount, 2 * perBlock + 2 * 32 + 3 * 32 + 3)
    }

    func testIdentityStartKeepsThePretrainedFunction() throws {
        let model = tinyClassifier()
        let images = tinyImages()
        let before = logits(model, images)
        var options: ConfigObject = [:]
        options["identity_start"] = true
        try RLRR(config: try .decoded(from: options)).apply(to: model)
        assertAllClose(logits(model, images), before, tolerance: 1e-6, "identity start")
    }

    func testMergeReproducesTheUnmergedForward() throws {
        let model = tinyClassifier()
        try RLRR().apply(to: model)
        let images = tinyImages()
        trainOneStep(model, images: images, labels: [1, 2])
        let adapted = logits(model, images)
        // Fold everything into the base weights, remove the adapters, and compare.
        Autograd.withoutGrad {
            for (_, module) in model.vision.namedModules() {
                if let layer = module as? Linear, let adapter = layer.adapter as? RLRRAdapter {
                    layer.weight.assign(adapter.mergedWeight(layer.weight))
                    layer.bias!.assign(layer.bias! + adapter.shift)
                    layer.adapter = nil
                }
                if let host = module as? any OutputAdaptable, let ssf = host.outputAdapter as? ScaleShift {
                    let width = host.bias.count
                    host.weight.assign(host.weight.reshaped([width, -1]) * ssf.scale.reshaped([width, 1]))
                    host.bias.assign(host.bias * ssf.scale + ssf.shift)
                    host.outputAdapter = nil
                }
            }
        }
        assertAllClose(logits(model, images), adapted, tolerance: 1e-5, "merged equals unmerged")
    }

    func testGradientsMatchFiniteDifferences() {
        var generator = RandomGenerator(seed: 31)
        let layer = Linear(inFeatures: 6, outFeatures: 5, generator: &generator)
        let adapter = RLRRAdapter(inFeatures: 6, outFeatures: 5, identityStart: false, generator: &generator)
        layer.adapter = adapter
        checkLayerGradients(layer, parameters: [adapter.u, adapter.v, adapter.shift], seed: 32)
        let ssf = ScaleShift(width: 4, identityStart: false, generator: &generator)
        let x = Tensor.randomNormal([3, 4], generator: &generator)
        let probe = Tensor.randomNormal([3, 4], generator: &generator)
        (ssf(x) * probe).sum().backward()
        for i in 0..<4 {
            var expectedScale: Float = 0, expectedShift: Float = 0
            for r in 0..<3 { expectedScale += x[r, i] * probe[r, i]; expectedShift += probe[r, i] }
            XCTAssertEqual(ssf.scale.grad!.values[i], expectedScale, accuracy: 1e-5)
            XCTAssertEqual(ssf.shift.grad!.values[i], expectedShift, accuracy: 1e-5)
        }
    }
}
