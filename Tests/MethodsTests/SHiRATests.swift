import XCTest
import Engine
import Layers
import Methods
import Models

/// SHiRA's defining properties: only masked entries change, exactly density * size of them, sparse gradients
/// equal the dense gradient at the mask, every mask kind is valid.
final class SHiRATests: XCTestCase {
    func options(_ mask: ShiraMask, density: Double = 0.05) -> SHiRA.Config {
        SHiRA.Config { $0.maskType = mask; $0.density = density }
    }

    func testStartsAsIdentityAndChangesOnlyMaskedEntries() throws {
        let model = tinyClassifier()
        let images = tinyImages()
        let before = logits(model, images)
        let originals = model.vision.namedParameters().map { ($0.0, $0.1.values) }
        try SHiRA(config: options(.random)).apply(to: model)
        assertAllClose(logits(model, images), before, tolerance: 0, "values start at zero")
        for _ in 0..<3 { trainOneStep(model, images: images, labels: [0, 2]) }
        // Base weights are untouched; the effective weight differs from W0 exactly at the mask positions.
        let after = Dictionary(uniqueKeysWithValues: model.vision.namedParameters().map { ($0.0, $0.1.values) })
        for (name, values) in originals { XCTAssertEqual(after[name], values, "\(name) changed") }
        for (path, module) in model.vision.namedModules() {
            guard let layer = module as? Linear, let adapter = layer.adapter as? ShiraAdapter else { continue }
            let expected = ShiraMaskBuilder.count(out: layer.outFeatures, in: layer.inFeatures, density: 0.05)
            XCTAssertEqual(adapter.nonzeroCount, expected, path)
            let delta = adapter.deltaWeight(outFeatures: layer.outFeatures, inFeatures: layer.inFeatures)
            let mask = Set(adapter.flatIndices(inFeatures: layer.inFeatures))
            let changed = (0..<delta.count).filter { delta.data[$0] != 0 }
            XCTAssertTrue(Set(changed).isSubset(of: mask), "\(path): entries outside the mask changed")
            XCTAssertGreaterThan(changed.count, expected / 2, "\(path): most masked entries should have learned")
        }
        XCTAssertNotEqual(logits(model, images), before)
    }

    func testSparseGradientEqualsDenseGradientAtTheMask() throws {
        var generator = RandomGenerator(seed: 8)
        let layer = Linear(inFeatures: 20, outFeatures: 12, generator: &generator)
        let mask = try ShiraMaskBuilder.build(.random, weight: layer.weight, density: 0.2, generator: &generator)
        let adapter = ShiraAdapter(base: layer, rows: mask.rows, columns: mask.columns)
        for i in 0..<adapter.values.count { adapter.values.data[i] = generator.nextNormal() * 0.1 }
        layer.adapter = adapter
        let x = Tensor.randomNormal([3, 7, 20], generator: &generator)
        let probe = Tensor.randomNormal([3, 7, 12], generator: &generator)
        (layer(x) * probe).sum().backward()
        // Dense reference: the same layer with the merged weight, differentiated with respect to the weight.
        let merged = (layer.weight + adapter.deltaWeight(outFeatures: 12, inFeatures: 20)).detached()
        merged.requiresGrad = true
        let denseOutput = linear(x, merged, layer.bias)
        assertAllClose(Autograd.withoutGrad { layer(x) }.values, denseOutput.values, tolerance: 1e-5, "forward")
        (denseOutput * probe).sum().backward()
        let dense = merged.grad!.values
        let sparse = adapter.values.grad!.values
        for (i, flat) in adapter.flatIndices(inFeatures: 20).enumerated() {
            XCTAssertEqual(sparse[i], dense[flat], accuracy: 1e-4 * max(1, abs(dense[flat])))
        }
    }

    func testValueGradientsMatchFiniteDifferences() throws {
        var generator = RandomGenerator(seed: 9)
        let layer = Linear(inFeatures: 6, outFeatures: 5, generator: &generator)
        let mask = try ShiraMaskBuilder.build(.random, weight: layer.weight, density: 0.3, generator: &generator)
        let adapter = ShiraAdapter(base: layer, rows: mask.rows, columns: mask.columns)
        adapter.scale = 0.7
        layer.adapter = adapter
        let x = Tensor.randomNormal([4, 6], generator: &generator), probe = Tensor.randomNormal([4, 5], generator: &generator)
        checkGradients("SHiRA values", inputs: [adapter.values]) { _ in (layer(x) * probe).sum() }
    }

    func testScaleAdjustsTheUpdateAtInference() throws {
        var generator = RandomGenerator(seed: 10)
        let layer = Linear(inFeatures: 8, outFeatures: 8, generator: &generator)
        let mask = try ShiraMaskBuilder.build(.structured, weight: layer.weight, density: 0.25, generator: &generator)
        let adapter = ShiraAdapter(base: layer, rows: mask.rows, columns: mask.columns)
        for i in 0..<adapter.values.count { adapter.values.data[i] = 1 }
        layer.adapter = adapter
        let x = Tensor.randomNormal([2, 8], generator: &generator)
        let plain = Autograd.withoutGrad { linear(x, layer.weight, layer.bias) }.values
        adapter.scale = 0
        assertAllClose(Autograd.withoutGrad { layer(x) }.values, plain, tolerance: 0, "alpha 0 is the base layer")
        adapter.scale = 0.5
        let half = Autograd.withoutGrad { layer(x) }.values
        adapter.scale = 1
        let full = Autograd.withoutGrad { layer(x) }.values
        for i in 0..<plain.count { XCTAssertEqual(half[i] - plain[i], 0.5 * (full[i] - plain[i]), accuracy: 1e-5) }
    }

    func testEveryMaskHasExactlyTheRequestedCountSortedAndUnique() throws {
        var generator = RandomGenerator(seed: 11)
        let weight = Tensor.randomNormal([24, 40], generator: &generator)
        let gradient = Tensor.randomNormal([24, 40], generator: &generator)
        for kind in ShiraMask.allCases {
            for density in [0.01, 0.02, 0.1, 0.5] {
                let mask = try ShiraMaskBuilder.build(kind, weight: weight, density: density, gradient: gradient,
                                                      generator: &generator)
                let flat = zip(mask.rows, mask.columns).map { Int($0) * 40 + Int($1) }
                XCTAssertEqual(flat.count, ShiraMaskBuilder.count(out: 24, in: 40, density: density), "\(kind) \(density)")
                XCTAssertEqual(flat, flat.sorted(), "\(kind) sorted")
                XCTAssertEqual(Set(flat).count, flat.count, "\(kind) unique")
                XCTAssertTrue(mask.rows.allSatisfy { $0 >= 0 && $0 < 24 } && mask.columns.allSatisfy { $0 >= 0 && $0 < 40 })
            }
        }
        // Weight magnitude picks the largest |W|; SNIP the largest |W * G|; Struct starts with the diagonal.
        let wm = try ShiraMaskBuilder.build(.weightMagnitude, weight: weight, density: 0.1, generator: &generator)
        let threshold = zip(wm.rows, wm.columns).map { abs(weight[Int($0), Int($1)]) }.min()!
        let outside = (0..<weight.count).filter { !Set(zip(wm.rows, wm.columns).map { Int($0) * 40 + Int($1) }).contains($0) }
        XCTAssertTrue(outside.allSatisfy { abs(weight.data[$0]) <= threshold })
        let structured = try ShiraMaskBuilder.build(.structured, weight: weight, density: 0.2, generator: &generator)
        let positions = Set(zip(structured.rows, structured.columns).map { Int($0) * 40 + Int($1) })
        XCTAssertTrue((0..<24).allSatisfy { positions.contains($0 * 40 + $0) }, "diagonal included")
    }

    func testGradientMasksNeedCalibrationAndUseIt() throws {
        let model = tinyClassifier()
        XCTAssertThrowsError(try SHiRA(config: options(.gradient)).apply(to: model)) { error in
            XCTAssertTrue("\(error)".contains("calibration"), "\(error)")
        }
        let batches: [(ClassifierInput, [Int])] = [(.images(tinyImages(seed: 1)), [0, 1]), (.images(tinyImages(seed: 2)), [2, 0])]
        try SHiRA(config: options(.snip)).apply(to: model, calibration: batches)
        XCTAssertTrue(model.vision.namedParameters().filter { !$0.0.contains("shira") }.allSatisfy { !$0.1.requiresGrad })
        XCTAssertTrue(model.vision.namedParameters().filter { $0.0.contains("shira_weight") }.allSatisfy { $0.1.requiresGrad })
        XCTAssertNil(model.vision.blocks[0].mlp.fc1.weight.grad, "calibration gradients are cleared")
    }
}
