import XCTest
import Checkpoints
import Engine
import Layers
import Methods
import Models
import Training

/// PEFT on a causal language model through the public API: LoRA, DoRA, SHiRA and (IA)^3 on a tiny Llama by
/// transformers' module names, trained on the next-token loss of completion tokens only, saved with peft's
/// `base_model.model.model.layers.N.self_attn.q_proj...` names, loaded and merged.
final class DecoderFineTuningTests: XCTestCase {
    static let configuration = LlamaConfiguration(vocabularySize: 29, hiddenSize: 16, intermediateSize: 32, layers: 2,
                                                  heads: 4, keyValueHeads: 2, ropeBase: 100, contextLength: 32)

    /// A tiny random model whose embedding (the tied head) is N(0, 1), so that logits can move far from uniform.
    func makeModel(seed: UInt64) throws -> LlamaModel {
        let model = try LlamaModel(Self.configuration, seed: seed)
        var generator = RandomGenerator(seed: seed + 50)
        model.decoder.embedding.weight.assign(Tensor.randomNormal(model.decoder.embedding.weight.shape, generator: &generator))
        return model
    }

    func folder() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("decoder-peft-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testMethodsOnTheDecoderLearnACompletionAndRoundTrip() throws {
        // Prompt tokens, then the completion to learn; the loss counts the completion only.
        let ids: [[Int32]] = [[1, 5, 9, 3, 20, 21, 22, 23], [1, 6, 9, 3, 24, 25, 26, 27]]
        let lossMask = ids.map { row in row.indices.map { $0 >= 4 } }
        let methods: [any ModuleAdaptingMethod] = [
            LoRA(config: .init { $0.r = 4; $0.loraAlpha = 8; $0.targetModules = .names(["q_proj", "v_proj", "down_proj"]) }),
            LoRA(config: .init { $0.r = 2; $0.useDoRA = true; $0.targetModules = .pattern(".*self_attn\\.(q|k|v|o)_proj") }),
            SHiRA(config: .init { $0.density = 0.3; $0.targetModules = .allLinear }),
            IA3(config: .init { $0.targetModules = .names(["k_proj", "v_proj", "down_proj"]); $0.feedforwardModules = .names(["down_proj"]) }),
        ]
        for method in methods {
            let label = "\(method.name) \(method.config.values["use_dora"] == true ? "dora" : "")"
            let model = try makeModel(seed: 3)
            let adapted = try method.attach(to: model)
            XCTAssertFalse(adapted.contains { $0.contains("embed_tokens") }, "the tied head is never a target")
            XCTAssertFalse(model.decoder.embedding.weight.requiresGrad, "\(label): the base is frozen")
            let trainer = try LossTrainer(module: model, learningRate: 3e-2, totalSteps: 120, warmupSteps: 5)
            let before = try Autograd.withoutGrad { try model.languageModelLoss(ids, lossMask: lossMask).item }
            for _ in 0..<120 { try trainer.step { try! model.languageModelLoss(ids, lossMask: lossMask) } }
            let after = try Autograd.withoutGrad { try model.languageModelLoss(ids, lossMask: lossMask).item }
            // (IA)^3 only rescales keys, values and one feed-forward input: it moves this tiny model far less.
            XCTAssertLessThan(after, method.name == "ia3" ? before : 0.5 * before, "\(label): \(before) -> \(after)")

            let saved = folder()
            try ModuleAdapters.save(model, method: method, baseModel: "tiny-llama", to: saved)
            let names = try SafeTensorsFile(path: saved.appendingPathComponent("adapter_model.safetensors").path).names
            XCTAssertTrue(names.allSatisfy { $0.hasPrefix("base_model.model.model.layers.") }, "\(label): \(names.sorted().prefix(3))")
            let fresh = try makeModel(seed: 3)
            try ModuleAdapters.load(from: saved, into: fresh)
            let expected = try Autograd.withoutGrad { try model.logits(ids) }.values
            XCTAssertEqual(try Autograd.withoutGrad { try fresh.logits(ids) }.values, expected, "\(label): loaded")
            try Merging.mergeLinearAdapters(in: fresh)
            let merged = try Autograd.withoutGrad { try fresh.logits(ids) }.values
            for (m, e) in zip(merged, expected) { XCTAssertEqual(m, e, accuracy: 1e-3, "\(label): merged") }
        }
    }

    func testGradientCheckpointingGivesTheSameLossAndGradients() throws {
        // LoRA with dropout in training mode: the recomputed blocks must draw the same dropout masks.
        let ids: [[Int32]] = [[1, 5, 9, 3, 20, 21, 22, 23], [1, 6, 9, 3, 24, 25, 26, 2]]
        let mask = [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 0]]
        func gradients(checkpointing: Bool) throws -> (loss: Float, grads: [String: [Float]]) {
            let model = try makeModel(seed: 8)
            let method = LoRA(config: .init { $0.r = 4; $0.loraAlpha = 8; $0.loraDropout = 0.3; $0.targetModules = .allLinear })
            _ = try method.attach(to: model)
            for (_, p) in model.namedParameters() where p.requiresGrad {
                p.assign(p + Tensor(shape: p.shape, repeating: 0.05))  // B = 0 at start: move it so every path counts
            }
            model.gradientCheckpointing = checkpointing
            let loss = try ModelMode.training(stepSeed: 11) { try model.languageModelLoss(ids, attentionMask: mask) }
            loss.backward()
            var grads: [String: [Float]] = [:]
            for (name, p) in model.namedParameters() where p.requiresGrad { grads[name] = p.grad?.values }
            return (loss.item, grads)
        }
        let plain = try gradients(checkpointing: false), saved = try gradients(checkpointing: true)
        XCTAssertEqual(saved.loss, plain.loss)
        XCTAssertEqual(Set(saved.grads.keys), Set(plain.grads.keys))
        XCTAssertEqual(plain.grads.count, 2 * 2 * 7, "A and B of 7 projections in 2 blocks")
        for (name, expected) in plain.grads {
            let got = try XCTUnwrap(saved.grads[name], name)
            XCTAssertEqual(got.count, expected.count, name)
            for (a, b) in zip(got, expected) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)), name) }
        }
    }

    func testTheNextTokenLossCountsOnlyMaskedInTargets() throws {
        let model = try makeModel(seed: 4)
        let ids: [[Int32]] = [[1, 5, 9, 3, 20]]
        let logits = try Autograd.withoutGrad { try model.logits(ids) }.values
        // Only target 20 (predicted from position 3) counts.
        let row = Array(logits[(3 * 29)..<(4 * 29)])
        let maximum = row.max()!
        let expected = Double(maximum) + log(row.map { exp(Double($0 - maximum)) }.reduce(0, +)) - Double(row[20])
        let loss = try Autograd.withoutGrad { try model.languageModelLoss(ids, lossMask: [[false, false, false, false, true]]).item }
        XCTAssertEqual(Double(loss), expected, accuracy: 1e-4)
        XCTAssertEqual(try Autograd.withoutGrad { try model.languageModelLoss(ids, lossMask: [[true, false, false, false, false]]).item }, 0,
                       "the first token is never a target")
        checkGradientsOfTokenLoss()
    }

    func checkGradientsOfTokenLoss() {
        var generator = RandomGenerator(seed: 9)
        let logits = Tensor.randomNormal([4, 6], generator: &generator)
        logits.requiresGrad = true
        let targets = [2, -100, 5, 0]
        tokenCrossEntropy(logits, targets: targets).backward()
        let analytic = logits.grad!.values
        for index in [0, 3, 7, 13, 20] {
            let saved = logits.data[index]
            logits.data[index] = saved + 1e-2
            let plus = Autograd.withoutGrad { tokenCrossEntropy(logits, targets: targets).item }
            logits.data[index] = saved - 1e-2
            let minus = Autograd.withoutGrad { tokenCrossEntropy(logits, targets: targets).item }
            logits.data[index] = saved
            XCTAssertEqual(analytic[index], (plus - minus) / 2e-2, accuracy: 2e-3, "element \(index)")
        }
        XCTAssertEqual(Array(analytic[6..<12]), [Float](repeating: 0, count: 6), "an ignored row gets no gradient")
    }
}
