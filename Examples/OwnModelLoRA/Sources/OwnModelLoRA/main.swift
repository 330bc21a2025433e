// A model of our own, made of the library's layers, adapted with LoRA on our own loss, saved, loaded and merged.
import BLASBinding
import Foundation
import Engine
import Layers
import Methods
import Training

/// Two linear layers with a GELU between them; the library knows nothing about this type.
final class TinyRegressor: Module {
    let up: Linear
    let down: Linear

    init(width: Int, hidden: Int, seed: UInt64) {
        var generator = RandomGenerator(seed: seed)
        up = Linear(inFeatures: width, outFeatures: hidden, generator: &generator)
        down = Linear(inFeatures: hidden, outFeatures: width, generator: &generator)
    }

    var children: [(String, any Module)] { [("up", up), ("down", down)] }

    func callAsFunction(_ x: Tensor) -> Tensor { down(gelu(up(x))) }
}

do {
    try OpenBLAS.load()
    let model = TinyRegressor(width: 32, hidden: 64, seed: 1)
    var generator = RandomGenerator(seed: 2)
    let inputs = Tensor.randomNormal([64, 32], generator: &generator)
    // The task: match a teacher whose second layer differs from ours by a rank-2 update, which LoRA can learn.
    let teacher = TinyRegressor(width: 32, hidden: 64, seed: 1)
    for _ in 0..<2 {
        let u = Tensor.randomNormal([32], generator: &generator), v = Tensor.randomNormal([64], generator: &generator)
        for r in 0..<32 { for c in 0..<64 { teacher.down.weight.data[r * 64 + c] += 0.05 * u.data[r] * v.data[c] } }
    }
    let targets = Autograd.withoutGrad { teacher(inputs) }
    func loss() -> Tensor { let difference = model(inputs) - targets; return (difference * difference).mean() }

    let lora = LoRA(config: .init { $0.r = 4; $0.loraAlpha = 8; $0.targetModules = .names(["up", "down"]) })
    let adapted = try lora.attach(to: model)
    print("LoRA on \(adapted.joined(separator: ", ")): \(model.trainableParameterCount) of \(model.parameterCount) parameters train")

    let trainer = try LossTrainer(module: model, learningRate: 1e-2, totalSteps: 200)
    let before = Autograd.withoutGrad { loss().item }
    for _ in 0..<200 { try trainer.step(loss) }
    let after = Autograd.withoutGrad { loss().item }
    print("own loss: \(before) -> \(after)")

    // Saved in the peft layout, loaded into a fresh copy of the base.
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("own-model-lora-\(getpid())")
    defer { try? FileManager.default.removeItem(at: folder) }
    try ModuleAdapters.save(model, method: lora, baseModel: "tiny-regressor", to: folder)
    let reloaded = TinyRegressor(width: 32, hidden: 64, seed: 1)
    try ModuleAdapters.load(from: folder, into: reloaded)
    let sameAfterLoad = Autograd.withoutGrad { reloaded(inputs).values == model(inputs).values }
    print("saved to \(folder.path) and loaded into a fresh model: \(sameAfterLoad ? "same outputs" : "DIFFERENT outputs")")

    let adaptedOutput = Autograd.withoutGrad { model(inputs).values }
    try Merging.mergeLinearAdapters(in: model)
    let mergedOutput = Autograd.withoutGrad { model(inputs).values }
    let largest = zip(adaptedOutput, mergedOutput).map { abs($0 - $1) }.max() ?? 0
    print("merged into the weights: largest output change \(largest)")
    guard after < 0.1 * before, largest < 1e-4, sameAfterLoad else {
        print("error: LoRA did not train the model, or loading or merging changed its outputs")
        exit(1)
    }
} catch {
    print("error: \(error)")
    exit(1)
}
