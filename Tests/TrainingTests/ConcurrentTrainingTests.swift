import XCTest
import Engine
import Training

/// Execution settings are values bound to the running code, not process-wide switches: two models train at the
/// same time in one process with different settings, and each gets exactly what it gets alone.
final class ConcurrentTrainingTests: XCTestCase {
    /// Trains the tiny model under `context` and returns the final trainable weights and the losses.
    static func train(under context: ExecutionContext, seed: UInt64) throws -> (weights: [[Float]], losses: [Double]) {
        try context.run {
            let trainer = try TinyTrainerFixture.makeTrainer(method: "lora", epochs: 2, learningRate: 3e-3, horizontalFlip: false,
                                                             configure: { $0.seed = seed; $0.methodConfig["lora_dropout"] = 0.1 }, out: nil)
            let result = try trainer.run()
            return (trainer.model.trainableParameters.map(\.1.values), result.history.map(\.trainLoss))
        }
    }

    func testTwoModelsTrainConcurrentlyWithDifferentSettings() throws {
        var first = ExecutionContext.current
        first.precision = .bfloat16
        first.kernels = .avx512
        first.attentionRecomputeAboveTokens = 1_000
        var second = ExecutionContext.current
        second.precision = .float32
        second.kernels = .portable
        second.attentionRecomputeAboveTokens = 0
        let aloneFirst = try Self.train(under: first, seed: 1), aloneSecond = try Self.train(under: second, seed: 2)

        final class Box: @unchecked Sendable { var value: Result<([[Float]], [Double]), Error>? }
        let boxes = [Box(), Box()]
        let group = DispatchGroup()
        for (index, context) in [first, second].enumerated() {
            DispatchQueue.global().async(group: group) {
                boxes[index].value = Result { try ConcurrentTrainingTests.train(under: context, seed: UInt64(index + 1)) }
            }
        }
        group.wait()
        let together = try boxes.map { try $0.value!.get() }
        XCTAssertEqual(together[0].0, aloneFirst.weights, "the first model, trained beside the second, differs from its run alone")
        XCTAssertEqual(together[0].1, aloneFirst.losses)
        XCTAssertEqual(together[1].0, aloneSecond.weights, "the second model, trained beside the first, differs from its run alone")
        XCTAssertEqual(together[1].1, aloneSecond.losses)
        // The settings took effect: the same seed under the two contexts gives different numbers on a CPU that has
        // the AVX-512 kernels (elsewhere both contexts compute the same way).
        if ElementwiseKernels.avx512Supported {
            let sameSeedSecond = try Self.train(under: second, seed: 1)
            XCTAssertNotEqual(sameSeedSecond.weights, aloneFirst.weights)
        }
        // Nothing leaked into the process default.
        XCTAssertEqual(ExecutionContext.current, ExecutionContext.processDefault)
    }
}
