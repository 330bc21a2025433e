import XCTest
import Engine
import Layers
import Methods
import Models

/// Two small calibration batches (made anew for each use, so no tensor is shared between tests).
var calibration: [(ClassifierInput, [Int])] { [(.images(tinyImages(seed: 1)), [0, 1]), (.images(tinyImages(seed: 2)), [2, 0])] }

final class TTCTests: XCTestCase {
    func options(channels: Int = 4) -> TTC.Config {
        TTC.Config { $0.channels = channels }
    }

    func testStageOneTrainsLayerNormsAndStageTwoAddsChannelMaps() throws {
        let model = tinyClassifier()
        let method = TTC(config: options())
        try method.apply(to: model)
        let normParameters = 5 * 2 * 16, head = 3 * 32 + 3
        XCTAssertEqual(model.trainableParameterCount, normParameters + head)
        try method.advance(model, calibration: calibration)
        // LayerNorm parameters + L (K^2 + K) + head, K = 4, L = 2.
        XCTAssertEqual(model.trainableParameterCount, normParameters + 2 * (16 + 4) + head)
        for block in model.vision.blocks {
            let map = try XCTUnwrap(block.hooks.module(named: "residual_map") as? ChannelMap)
            XCTAssertEqual(map.channels.count, 4)
            XCTAssertEqual(map.channels, map.channels.sorted())
        }
    }

    func testStageTwoChangesOnlySelectedChannels() throws {
        let model = tinyClassifier()
        let method = TTC(config: options())
        try method.apply(to: model)
        try method.advance(model, calibration: calibration)
        let map = model.vision.blocks[0].hooks.module(named: "residual_map") as! ChannelMap
        var generator = RandomGenerator(seed: 4)
        for i in 0..<map.bias.count { map.bias.data[i] = generator.nextNormal() }
        let residual = Tensor.randomNormal([2, 5, 16], generator: &generator)
        let update = Autograd.withoutGrad { map(residual) }
        let selected = Set(map.channels)
        for row in 0..<10 {
            for channel in 0..<16 where !selected.contains(channel) {
                XCTAssertEqual(update.data[row * 16 + channel], 0, "channel \(channel) is not selected but changed")
            }
        }
        let frozen = model.vision.blocks[1].mlp.fc1.weight.values
        trainOneStep(model, images: tinyImages(), labels: [0, 1])
        XCTAssertEqual(model.vision.blocks[1].mlp.fc1.weight.values, frozen)
    }

    /// score_site=mlp scores the block's output and puts the maps there: each block's output changes by exactly
    /// the map of that output, and nothing sits after the attention sub-layer.
    func testMLPSiteScoresAndMapsTheBlockOutput() throws {
        let model = tinyClassifier()
        let method = TTC(config: TTC.Config { $0.channels = 4; $0.scoreSite = "mlp" })
        try method.apply(to: model)
        let block = model.vision.blocks[0]
        var generator = RandomGenerator(seed: 9)
        let x = Tensor.randomNormal([2, 5, 16], generator: &generator)
        let before = Autograd.withoutGrad { block(x) }
        try method.advance(model, calibration: calibration)
        XCTAssertEqual(block.hooks.afterAttention.count, 0)
        let map = try XCTUnwrap(block.hooks.afterFeedForward.first?.module as? ChannelMap)
        for i in 0..<map.bias.count { map.bias.data[i] = generator.nextNormal() }
        let after = Autograd.withoutGrad { block(x) }
        let expected = Autograd.withoutGrad { before + map(before) }
        for i in 0..<after.count { XCTAssertEqual(after.data[i], expected.data[i], accuracy: 1e-5) }
        XCTAssertThrowsError(try TTC(config: TTC.Config { $0.scoreSite = "ffn" }).apply(to: tinyClassifier())) { error in
            XCTAssertTrue("\(error)".contains("score_site"), "\(error)")
        }
    }

    func testChannelMapGradientsMatchFiniteDifferences() {
        var generator = RandomGenerator(seed: 5)
        let map = ChannelMap(channels: [1, 4, 6], width: 8, zeroInit: false, generator: &generator)
        let x = Tensor.randomNormal([2, 3, 8], generator: &generator), probe = Tensor.randomNormal([2, 3, 8], generator: &generator)
        checkGradients("channel map", inputs: [map.weight, map.bias]) { _ in (map(x) * probe).sum() }
    }
}

final class PearTests: XCTestCase {
    func pruned(options: ConfigObject = [:]) throws -> (ImageClassifier, Pear) {
        let model = tinyClassifier()
        var options = options
        options["r"] = 2
        let method = Pear(config: try .decoded(from: options))
        try method.apply(to: model)
        trainOneStep(model, images: tinyImages(), labels: [0, 1])  // warm-up: B leaves zero
        try method.advance(model, calibration: calibration)
        return (model, method)
    }

    func adapters(_ model: any Classifier) -> [(String, PearAdapter)] {
        model.namedModules().compactMap { path, module in ((module as? Linear)?.adapter as? PearAdapter).map { (path, $0) } }
    }

    /// The stage switches where the design puts them by default: TTC after 30% of the run, Pear's warm-up 20%.
    func testStagesSwitchWhereTheDesignSays() {
        XCTAssertEqual(TTC().switchEpoch(of: 10), 3)
        XCTAssertEqual(Pear().switchEpoch(of: 10), 2)
        XCTAssertEqual(Pear().switchEpoch(of: 3), 1, "at least one epoch of warm-up")
        XCTAssertEqual(Pear().switchEpoch(of: 2), 1, "and at least one after it")
    }

    func testPrunesHalfAndSharesOneParameterSetOfTheSameType() throws {
        let (model, _) = try pruned()
        let sites = adapters(model)
        XCTAssertEqual(sites.count, 4)
        let prunedSites = sites.filter { $0.1.own == nil }
        XCTAssertEqual(prunedSites.count, 2, "half of the 4 adapters are pruned")
        for (path, adapter) in prunedSites {
            let source = try XCTUnwrap(adapter.sharedFrom)
            let kind = path.split(separator: ".").last
            let keptOfKind = sites.filter { $0.1.own != nil && $0.0.split(separator: ".").last == kind }
            if !keptOfKind.isEmpty {
                XCTAssertEqual(kind, source.split(separator: ".").last, "a pruned query shares a kept query when one exists")
            }
            let kept = try XCTUnwrap(sites.first { $0.0 == source }?.1.own)
            XCTAssertTrue(adapter.shared === kept, "the pruned position uses the kept adapter's own parameters")
            XCTAssertNotNil(adapter.gate)
            XCTAssertNotNil(adapter.knowledge)
            XCTAssertFalse(adapter.knowledge!.a.requiresGrad, "the knowledge checkpoint is frozen")
        }
        // Trainable: 2 kept adapters of r (16 + 16) + 2 gates + head; the checkpoint stores 2 x r (16 + 16).
        XCTAssertEqual(model.trainableParameterCount, 2 * 2 * 32 + 2 + 3 * 32 + 3)
        XCTAssertEqual(Pear.storage(model).knowledge, 2 * 2 * 32)
        XCTAssertFalse(model.trainableParameters.contains { $0.0.contains("pear_knowledge") })
    }

    func testSharedGradientsAccumulateFromEveryPosition() throws {
        let (model, _) = try pruned()
        let sites = adapters(model)
        let (_, prunedAdapter) = try XCTUnwrap(sites.first { $0.1.own == nil })
        let kept = prunedAdapter.shared!
        let images = tinyImages(seed: 6)
        checkGradients("shared LoRA A", inputs: [kept.a], maxElementsPerInput: 8) { _ in
            crossEntropy(model.logits(.images(images)), labels: [1, 2])
        }
    }

    func testWithoutKnowledgeCheckpointNothingIsStored() throws {
        var options: ConfigObject = [:]
        options["knowledge_checkpoint"] = false
        let (model, _) = try pruned(options: options)
        XCTAssertEqual(Pear.storage(model).knowledge, 0)
        XCTAssertTrue(adapters(model).allSatisfy { $0.1.knowledge == nil })
    }
}
