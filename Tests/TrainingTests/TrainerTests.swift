import XCTest
import Engine
import Layers
import Methods
import Models
import Training

/// The training loop on a tiny model and synthetic data: learning, determinism, resume, checkpoints, optimiser.
final class TrainerTests: XCTestCase {
    func makeTrainer(method: String = "lora", epochs: Int = 3, learningRate: Float = 3e-3, out: URL? = nil) throws -> Trainer {
        try TinyTrainerFixture.makeTrainer(method: method, epochs: epochs, learningRate: learningRate,
                                           horizontalFlip: true, out: out)
    }

    func temporaryDirectory() -> URL { TinyTrainerFixture.temporaryDirectory("peft-trainer", for: self) }

    func testTrainingLearnsASimpleTask() throws {
        let trainer = try makeTrainer(method: "full", epochs: 4)
        let before = trainer.evaluate(trainer.test)
        let result = try trainer.run()
        XCTAssertGreaterThan(result.testAccuracy, 0.9, "accuracy before training was \(before)")
        XCTAssertLessThan(result.history.last!.trainLoss, result.history.first!.trainLoss)
    }

    func testSameSeedGivesIdenticalResults() throws {
        let a = try makeTrainer(), b = try makeTrainer()
        let resultA = try a.run(), resultB = try b.run()
        XCTAssertEqual(resultA.history.map(\.trainLoss), resultB.history.map(\.trainLoss))
        for ((nameA, pa), (_, pb)) in zip(a.model.trainableParameters, b.model.trainableParameters) {
            XCTAssertEqual(pa.values, pb.values, nameA)
        }
    }

    func testResumeAfterInterruptionMatchesUninterruptedRun() throws {
        let uninterrupted = try makeTrainer(epochs: 3)
        let expected = try uninterrupted.run()

        let directory = temporaryDirectory()
        let first = try makeTrainer(epochs: 3, out: directory)
        first.stopAfterEpochs = 2
        XCTAssertThrowsError(try first.run())
        let second = try makeTrainer(epochs: 3, out: directory)
        let resumed = try second.run(resume: true)
        XCTAssertEqual(resumed.history.map(\.trainLoss), expected.history.map(\.trainLoss))
        XCTAssertEqual(resumed.testAccuracy, expected.testAccuracy)
        for ((name, pa), (_, pb)) in zip(uninterrupted.model.trainableParameters, second.model.trainableParameters) {
            XCTAssertEqual(pa.values, pb.values, "\(name) differs after resume")
        }
        let log = try String(contentsOf: directory.appendingPathComponent("log.jsonl"), encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent("result.json").path))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains(".tmp") }
        XCTAssertEqual(leftovers, [], "atomic writes leave no temporary files")
    }

    func testResumeRefusesACheckpointFromAnotherConfiguration() throws {
        let directory = temporaryDirectory()
        let first = try makeTrainer(epochs: 2, out: directory)
        first.stopAfterEpochs = 1
        XCTAssertThrowsError(try first.run())
        let other = try makeTrainer(method: "bitfit", epochs: 2, out: directory)
        XCTAssertThrowsError(try other.run(resume: true)) { error in
            XCTAssertTrue("\(error)".contains("different run configuration"), "\(error)")
        }
    }

    func testNaNLossStopsWithAClearError() throws {
        let trainer = try makeTrainer(method: "full", epochs: 1)
        trainer.model.visionBackbone!.blocks[0].mlp.fc1.weight.data[0] = .nan
        XCTAssertThrowsError(try trainer.run()) { error in
            XCTAssertTrue("\(error)".contains("NaN") || "\(error)".contains("nan"), "\(error)")
        }
    }

    func testAdamWFirstStepAndDecayRules() {
        let matrix = Tensor(shape: [2, 2], values: [1, 2, 3, 4], requiresGrad: true)
        let bias = Tensor(shape: [2], values: [1, 1], requiresGrad: true)
        let optimizer = AdamW(parameters: [("w", matrix), ("b", bias)], weightDecay: 0.1)
        matrix.grad = Tensor(shape: [2, 2], values: [0.5, -0.5, 2, 0])
        bias.grad = Tensor(shape: [2], values: [1, -1])
        optimizer.update(learningRate: 0.01)
        // First Adam step moves each element by lr * sign(g) (bias-corrected m / sqrt(v) = g / |g|); decay lr*wd*p on matrices only.
        XCTAssertEqual(matrix.values[0], 1 - 0.01 - 0.001 * 1, accuracy: 1e-6)
        XCTAssertEqual(matrix.values[1], 2 + 0.01 - 0.001 * 2, accuracy: 1e-6)
        XCTAssertEqual(matrix.values[3], 4 - 0.001 * 4, accuracy: 1e-6)
        XCTAssertEqual(bias.values, [0.99, 1.01])
        XCTAssertNil(matrix.grad, "gradients are cleared after the update")
    }

    func testGradientClippingScalesToTheNorm() {
        let p = Tensor(shape: [2], values: [0, 0], requiresGrad: true)
        let optimizer = AdamW(parameters: [("p", p)], weightDecay: 0)
        p.grad = Tensor(shape: [2], values: [3, 4])
        XCTAssertEqual(optimizer.gradientNorm(), 5, accuracy: 1e-6)
    }

    func testCosineScheduleWarmsUpThenDecays() {
        let schedule = CosineSchedule(baseRate: 1, warmupSteps: 4, totalSteps: 14)
        XCTAssertEqual(schedule.rate(at: 0), 0.25, accuracy: 1e-6)
        XCTAssertEqual(schedule.rate(at: 3), 1, accuracy: 1e-6)
        XCTAssertEqual(schedule.rate(at: 9), 0.5, accuracy: 1e-6)
        XCTAssertEqual(schedule.rate(at: 14), 0, accuracy: 1e-6)
    }

    func testLinearProbeWithCachedFeaturesMatchesFullForward() throws {
        let trainer = try makeTrainer(method: "linear", epochs: 6, learningRate: 0.05)
        XCTAssertTrue(trainer.onlyHeadTrains)
        let result = try trainer.run()
        // Recompute test accuracy through the whole model, without the cache.
        let source = trainer.test
        var generator = RandomGenerator(seed: 0)
        let input = source.batch(Array(0..<source.count), augment: false, generator: &generator)
        let predictions = argmaxRows(Autograd.withoutGrad { trainer.model.logits(input) })
        let accuracy = Double(zip(predictions, source.labels).filter { $0 == $1 }.count) / Double(source.count)
        XCTAssertEqual(result.testAccuracy, accuracy)
        XCTAssertGreaterThan(result.testAccuracy, 0.6)
    }
}

extension TrainerTests {
    func testStagedMethodsResumeAcrossTheSwitch() throws {
        for method in ["ttc", "pear"] {
            let uninterrupted = try makeTrainer(method: method, epochs: 4)
            let expected = try uninterrupted.run()
            let directory = temporaryDirectory()
            let first = try makeTrainer(method: method, epochs: 4, out: directory)
            first.stopAfterEpochs = 3
            XCTAssertThrowsError(try first.run())
            let second = try makeTrainer(method: method, epochs: 4, out: directory)
            let resumed = try second.run(resume: true)
            XCTAssertEqual(resumed.history.map(\.trainLoss), expected.history.map(\.trainLoss), method)
            XCTAssertEqual(second.model.trainableParameterCount, uninterrupted.model.trainableParameterCount, method)
            for ((name, pa), (_, pb)) in zip(uninterrupted.model.trainableParameters, second.model.trainableParameters) {
                XCTAssertEqual(pa.values, pb.values, "\(method): \(name) differs after resume")
            }
        }
    }
}
