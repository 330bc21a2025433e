import Foundation
import XCTest
import Engine
import Layers
import Methods
import Training

/// A model of the test's own, through the public API only: attach, train on its own loss, save, load, merge.
final class OwnModelTests: XCTestCase {
    final class Regressor: Module {
        let up: Linear, down: Linear
        init(seed: UInt64) {
            var generator = RandomGenerator(seed: seed)
            up = Linear(inFeatures: 12, outFeatures: 24, generator: &generator)
            down = Linear(inFeatures: 24, outFeatures: 12, generator: &generator)
        }
        var children: [(String, any Module)] { [("up", up), ("down", down)] }
        func callAsFunction(_ x: Tensor) -> Tensor { down(gelu(up(x))) }
    }

    func folder() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("own-model-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Inputs and targets of a task a low-rank update of `down` can learn.
    func task() -> (Tensor, Tensor) {
        var generator = RandomGenerator(seed: 7)
        let x = Tensor.randomNormal([48, 12], generator: &generator)
        let teacher = Regressor(seed: 1)
        let u = Tensor.randomNormal([12], generator: &generator), v = Tensor.randomNormal([24], generator: &generator)
        for r in 0..<12 { for c in 0..<24 { teacher.down.weight.data[r * 24 + c] += 0.1 * u.data[r] * v.data[c] } }
        return (x, Autograd.withoutGrad { teacher(x) })
    }

    func meanSquaredError(_ prediction: Tensor, _ target: Tensor) -> Tensor {
        let difference = prediction - target
        return (difference * difference).mean()
    }

    func testAttachTrainSaveLoadAndMergeForLoRAAndSHiRA() throws {
        let (x, y) = task()
        let methods: [any ModuleAdaptingMethod] = [
            LoRA(config: .init { $0.r = 2; $0.targetModules = .names(["down"]) }),
            LoRA(config: .init { $0.r = 2; $0.useDoRA = true; $0.targetModules = .names(["down"]) }),
            SHiRA(config: .init { $0.density = 0.2; $0.targetModules = .names(["down"]) }),
        ]
        for adapting in methods {
            let method = adapting.name
            let model = Regressor(seed: 1)
            XCTAssertEqual(try adapting.attach(to: model), ["down"])
            XCTAssertEqual(model.up.weight.requiresGrad, false, "the module's own weights are frozen")
            let trainer = try LossTrainer(module: model, learningRate: 2e-2, totalSteps: 150, warmupSteps: 10)
            let before = Autograd.withoutGrad { meanSquaredError(model(x), y).item }
            for _ in 0..<150 { try trainer.step { meanSquaredError(model(x), y) } }
            let after = Autograd.withoutGrad { meanSquaredError(model(x), y).item }
            XCTAssertLessThan(after, 0.5 * before, "\(method): the adapter learned the task on our own loss")

            let saved = folder()
            try ModuleAdapters.save(model, method: adapting, baseModel: "regressor", to: saved)
            let fresh = Regressor(seed: 1)
            try ModuleAdapters.load(from: saved, into: fresh)
            let expected = Autograd.withoutGrad { model(x).values }
            XCTAssertEqual(Autograd.withoutGrad { fresh(x).values }, expected, "\(method): the loaded adapter gives the same outputs")
            // Another base is refused; so is loading a module adapter into a classifier's loader and vice versa.
            XCTAssertThrowsError(try ModuleAdapters.load(from: saved, into: Regressor(seed: 2))) { error in
                XCTAssertTrue("\(error)".contains("fingerprint"), "\(error)")
            }
            // Merging folds the adapter in; unmerging restores the adapted layer.
            try Merging.mergeLinearAdapters(in: fresh)
            XCTAssertNil(fresh.down.adapter)
            let merged = Autograd.withoutGrad { fresh(x).values }
            for (m, e) in zip(merged, expected) { XCTAssertEqual(m, e, accuracy: 1e-4, method) }
            Merging.unmergeLinearAdapters(in: fresh)
            XCTAssertNotNil(fresh.down.adapter)
        }
    }

    func testTheTrainerRefusesANonFiniteStepAndMethodsThatNeedAClassifier() throws {
        let model = Regressor(seed: 1)
        XCTAssertThrowsError(try ModuleAdapters.attach("vpt", to: model)) { error in
            XCTAssertTrue("\(error)".contains("adapts classifiers only") && "\(error)".contains("lora"), "\(error)")
        }
        try ModuleAdapters.attach("lora", config: ["target_modules": .array([.string("up")]), "r": .int(2)], to: model)
        let trainer = try LossTrainer(module: model, learningRate: 1e-2, totalSteps: 10)
        let weights = model.namedParameters().filter { $0.1.requiresGrad }.map { $0.1.values }
        XCTAssertThrowsError(try trainer.step { model(Tensor(shape: [1, 12], repeating: .nan)).sum() }) { error in
            XCTAssertTrue("\(error)".contains("nothing was applied"), "\(error)")
        }
        XCTAssertEqual(model.namedParameters().filter { $0.1.requiresGrad }.map { $0.1.values }, weights)
        XCTAssertEqual(trainer.completedSteps, 0)
        XCTAssertThrowsError(try LossTrainer(module: Regressor(seed: 3), learningRate: 1e-2, totalSteps: 10)) { error in
            XCTAssertTrue("\(error)".contains("nothing in the module trains"), "\(error)")
        }
    }
}
