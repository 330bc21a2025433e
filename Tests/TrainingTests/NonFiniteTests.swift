import XCTest
import Checkpoints
import Engine
import Methods
import Models
import Training

/// Numerical faults in the training loop: `onNonFinite` stop and skip, and that the checkpoint on disk is never
/// replaced by a NaN state.
final class NonFiniteTests: XCTestCase {
    /// A LoRA run on the tiny model: 8 steps per epoch.
    func makeTrainer(epochs: Int = 2, learningRate: Float = 3e-3, method: String = "lora",
                     configure: (inout TrainingConfiguration) -> Void = { _ in }, out: URL? = nil) throws -> Trainer {
        try TinyTrainerFixture.makeTrainer(method: method, epochs: epochs, learningRate: learningRate,
                                           horizontalFlip: false, configure: configure, out: out)
    }

    func temporaryDirectory() -> URL { TinyTrainerFixture.temporaryDirectory("peft-nonfinite", for: self) }

    /// Every tensor of the checkpoint in `directory`, which must load.
    func checkpointTensors(_ directory: URL) throws -> [String: [Float]] {
        let file = try SafeTensorsFile(url: directory.appendingPathComponent("checkpoint.safetensors"))
        return try file.loadAll().mapValues(\.values)
    }

    /// Poisons one gradient element of the first trainable parameter at the given global steps.
    func poison(at steps: Set<Int>, with value: Float = .nan) -> (Int, any Classifier) -> Void {
        return { step, model in
            guard steps.contains(step), let (_, parameter) = model.trainableParameters.first, let grad = parameter.grad
            else { return }
            grad.data[0] = value
        }
    }

    func testNaNGradientStopsNamingTheParameterAndKeepsTheCheckpoint() throws {
        let directory = temporaryDirectory()
        let trainer = try makeTrainer(epochs: 3, out: directory)
        let firstName = trainer.model.trainableParameters.first!.0
        var saved: [String: [Float]] = [:]
        trainer.faultInjector = { [self] step, model in
            if step == 8 { saved = (try? checkpointTensors(directory)) ?? [:] }  // epoch 1 is on disk by now
            poison(at: [10])(step, model)
        }
        XCTAssertThrowsError(try trainer.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("'\(firstName)'") && text.contains("NaN"), text)
            XCTAssertTrue(text.contains("epoch 2, step 3"), text)
        }
        let onDisk = try checkpointTensors(directory)
        XCTAssertFalse(saved.isEmpty)
        XCTAssertEqual(onDisk, saved, "the checkpoint of epoch 1 is untouched")
        XCTAssertTrue(onDisk.values.allSatisfy { $0.allSatisfy(\.isFinite) })
        XCTAssertNil(trainer.model.trainableParameters.first { !$0.1.values.allSatisfy(\.isFinite) })
    }

    func testNaNLossStopsByDefault() throws {
        let trainer = try makeTrainer(epochs: 1)
        trainer.model.visionBackbone!.blocks[0].mlp.fc1.weight.data[0] = .nan
        XCTAssertThrowsError(try trainer.run()) { error in
            XCTAssertTrue("\(error)".contains("the loss became nan at epoch 1, step 1"), "\(error)")
        }
    }

    func testSkipModeSkipsTransientFaultsHalvesTheRateAndFinishes() throws {
        let directory = temporaryDirectory()
        let trainer = try makeTrainer(configure: { $0.onNonFinite = .skip }, out: directory)
        var lines: [String] = []
        trainer.log = { lines.append($0) }
        trainer.faultInjector = poison(at: [3, 4, 12], with: .infinity)
        let result = try trainer.run()
        XCTAssertEqual(trainer.skippedSteps, 3)
        XCTAssertEqual(trainer.learningRateFactor, 0.125)
        XCTAssertEqual(lines.filter { $0.hasPrefix("skipped a step") }.count, 3)
        XCTAssertTrue(lines.contains { $0.contains("learning-rate multiplier now 0.25 (2 in a row, 2 in all)") }, "\(lines)")
        XCTAssertEqual(result.history.count, 2)
        XCTAssertTrue(try checkpointTensors(directory).values.allSatisfy { $0.allSatisfy(\.isFinite) })
        XCTAssertTrue(trainer.model.trainableParameters.allSatisfy { $0.1.values.allSatisfy(\.isFinite) })
    }

    func testSkipModeGivesUpAfterTooManyConsecutiveSkips() throws {
        let directory = temporaryDirectory()
        let trainer = try makeTrainer(epochs: 3, configure: { $0.onNonFinite = .skip; $0.maxConsecutiveSkips = 3 },
                                      out: directory)
        trainer.faultInjector = poison(at: Set(9...40))
        XCTAssertThrowsError(try trainer.run()) { error in
            XCTAssertTrue("\(error)".contains("gave up after 3 consecutive skipped steps"), "\(error)")
        }
        XCTAssertEqual(trainer.skippedSteps, 4)
        XCTAssertTrue(try checkpointTensors(directory).values.allSatisfy { $0.allSatisfy(\.isFinite) })
    }

    func testSkipStateSurvivesResume() throws {
        let uninterrupted = try makeTrainer(epochs: 3, configure: { $0.onNonFinite = .skip })
        uninterrupted.faultInjector = poison(at: [2])
        _ = try uninterrupted.run()

        let directory = temporaryDirectory()
        let first = try makeTrainer(epochs: 3, configure: { $0.onNonFinite = .skip }, out: directory)
        first.faultInjector = poison(at: [2])
        first.stopAfterEpochs = 1
        XCTAssertThrowsError(try first.run())
        let second = try makeTrainer(epochs: 3, configure: { $0.onNonFinite = .skip }, out: directory)
        _ = try second.run(resume: true)
        XCTAssertEqual(second.learningRateFactor, 0.5)
        XCTAssertEqual(second.skippedSteps, 1)
        for ((name, a), (_, b)) in zip(uninterrupted.model.trainableParameters, second.model.trainableParameters) {
            XCTAssertEqual(a.values, b.values, "\(name) differs after resume")
        }
    }

    func testHugeLearningRateNeverReachesTheCheckpoint() throws {
        for action in NonFiniteAction.allCases {
            let directory = temporaryDirectory()
            let trainer = try makeTrainer(epochs: 2, learningRate: 3e38, method: "full",
                                          configure: { $0.onNonFinite = action; $0.weightDecay = 0; $0.clipNorm = 0 },
                                          out: directory)
            XCTAssertThrowsError(try trainer.run(), "\(action)") { error in
                XCTAssertTrue("\(error)".contains("NaN or infinite") || "\(error)".contains("NaN or infinity")
                              || "\(error)".contains("loss became"), "\(action): \(error)")
            }
            let url = directory.appendingPathComponent("checkpoint.safetensors")
            if FileManager.default.fileExists(atPath: url.path) {
                XCTAssertTrue(try checkpointTensors(directory).values.allSatisfy { $0.allSatisfy(\.isFinite) }, "\(action)")
            }
            XCTAssertTrue(trainer.model.trainableParameters.allSatisfy { $0.1.values.allSatisfy(\.isFinite) }, "\(action)")
        }
    }

    /// `updateIfFinite` applies exactly what `update` does when all is finite, and otherwise writes nothing and
    /// names the parameter; tensors large enough for the chunked (multi-core) scans are included.
    func testUpdateIfFiniteMatchesUpdateAndNamesTheOffender() {
        func make() -> (AdamW, [Tensor]) {
            var generator = RandomGenerator(seed: 3)
            let big = Tensor.randomNormal([300_001], generator: &generator), small = Tensor.randomNormal([7, 3], generator: &generator)
            for t in [big, small] { t.requiresGrad = true }
            let optimizer = AdamW(parameters: [("small", small), ("big", big)])
            big.grad = Tensor.randomNormal([300_001], generator: &generator)
            small.grad = Tensor.randomNormal([7, 3], generator: &generator)
            return (optimizer, [small, big])
        }
        let (reference, expected) = make(), (checked, actual) = make()
        let norm = expected.map { $0.grad!.values.map { Double($0) * Double($0) }.reduce(0, +) }.reduce(0, +).squareRoot()
        XCTAssertEqual(Double(checked.gradientNorm()), norm, accuracy: 1e-4 * norm)
        reference.update(learningRate: 1e-3, clipNorm: 1)
        XCTAssertNil(checked.updateIfFinite(learningRate: 1e-3, clipNorm: 1))
        XCTAssertEqual(actual.map(\.values), expected.map(\.values))
        XCTAssertEqual(checked.step, 1)

        let (optimizer, tensors) = make()
        // A step of lr 1e38 against the sign of the gradient overflows this weight.
        tensors[0].data[0] = 3e38; tensors[0].grad!.data[0] = -1
        let before = tensors.map(\.values)
        tensors[1].grad!.data[300_000] = .nan
        XCTAssertEqual(optimizer.updateIfFinite(learningRate: 1e-3, clipNorm: 1), .nonFiniteGradient("big"))
        tensors[1].grad!.data[300_000] = 1
        XCTAssertEqual(optimizer.updateIfFinite(learningRate: 1e38), .nonFiniteUpdate("small"))
        XCTAssertEqual(tensors.map(\.values), before, "a refused step writes nothing")
        XCTAssertEqual(optimizer.step, 0)
        tensors[1].data[299_999] = .infinity
        XCTAssertEqual(optimizer.firstNonFiniteState(), "big")
    }

    func testAdamWRefusesAnUpdateThatWouldOverflowBeforeApplyingIt() {
        let weight = Tensor(shape: [2], values: [3e38, 1], requiresGrad: true)
        let optimizer = AdamW(parameters: [("w", weight)], weightDecay: 0)
        weight.grad = Tensor(shape: [2], values: [-1, 1])
        XCTAssertEqual(optimizer.firstNonFiniteUpdate(learningRate: 1e38), "w")
        XCTAssertNil(optimizer.firstNonFiniteUpdate(learningRate: 1e-3))
        XCTAssertEqual(weight.values, [3e38, 1], "checking writes nothing")
        XCTAssertEqual(optimizer.step, 0)
        XCTAssertNil(optimizer.firstNonFiniteState())
        weight.data[1] = .nan
        XCTAssertEqual(optimizer.firstNonFiniteState(), "w")
    }

    func testSettingsTheLoopCannotRunWithAreRefusedUpFront() throws {
        let cases: [(String, (inout TrainingConfiguration) -> Void)] = [
            ("evaluate-every must be at least 1", { $0.evaluateEvery = 0 }),
            ("learning rate must be a positive number", { $0.learningRate = -1 }),
            ("learning rate must be a positive number", { $0.learningRate = .nan }),
            ("head learning rate must be a positive number", { $0.headLearningRate = 0 }),
            ("label smoothing must be in [0, 1)", { $0.labelSmoothing = 1 }),
            ("clip norm must be zero (off) or positive", { $0.clipNorm = -1 }),
            ("weight decay must be zero or positive", { $0.weightDecay = .infinity }),
            ("warm-up epochs must be zero or positive", { $0.warmupEpochs = -2 }),
            ("consecutive skipped steps", { $0.maxConsecutiveSkips = -1 }),
            ("max evaluation examples must be at least 1", { $0.maxEvaluationExamples = 0 }),
            ("batch size must be at least 1, got 0", { $0.batchSize = 0 }),
            ("epochs must be in 1...100000, got 0", { $0.epochs = 0 }),
            ("warm-up epochs (1e+30) must not exceed the epochs", { $0.warmupEpochs = 1e30 }),
            ("max steps per epoch must be at least 1, got 0", { $0.maxStepsPerEpoch = 0 }),
            ("fewer than one batch", { $0.batchSize = 1000 }),
        ]
        for (message, change) in cases {
            XCTAssertThrowsError(try makeTrainer(configure: change), message) { error in
                XCTAssertTrue("\(error)".contains(message), "'\(error)' does not mention '\(message)'")
            }
        }
    }

    func testConfigurationDecodingStaysLenient() throws {
        let old = try JSONDecoder().decode(TrainingConfiguration.self, from: Data(#"{"method":"bitfit","seed":4}"#.utf8))
        XCTAssertEqual(old.onNonFinite, .stop)
        XCTAssertEqual(old.maxConsecutiveSkips, 5)
        let new = try JSONDecoder().decode(TrainingConfiguration.self,
                                           from: Data(#"{"onNonFinite":"skip","maxConsecutiveSkips":2,"futureKey":1}"#.utf8))
        XCTAssertEqual(new.onNonFinite, .skip)
        XCTAssertEqual(new.maxConsecutiveSkips, 2)
        var roundTrip = TrainingConfiguration()
        roundTrip.onNonFinite = .skip
        XCTAssertEqual(try JSONDecoder().decode(TrainingConfiguration.self, from: JSONEncoder().encode(roundTrip)), roundTrip)
        XCTAssertThrowsError(try JSONDecoder().decode(TrainingConfiguration.self, from: Data(#"{"onNonFinite":"ignore"}"#.utf8)))
    }
}
