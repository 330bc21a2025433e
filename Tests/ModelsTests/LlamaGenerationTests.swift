import XCTest
import Engine
import Models

/// Generation with the KV cache on a tiny random model: the cache gives the logits of a full forward, batching and
/// padding change nothing, sampling follows its options and its seed.
final class LlamaGenerationTests: XCTestCase {
    func model() throws -> LlamaModel { try LlamaModel(LlamaTests.tiny, seed: 5) }

    func testCachedForwardGivesTheLogitsOfAFullForward() throws {
        let model = try model()
        let ids: [Int32] = [3, 7, 1, 12, 5, 9, 4]
        let full = try Autograd.withoutGrad { try model.logits([ids]) }.values
        let cache = try LlamaKVCache(for: model, batch: 1, capacity: 10)
        let first = try model.forward([Array(ids[0..<4])], cache: cache).values
        let second = try model.forward([Array(ids[4...])], cache: cache).values
        XCTAssertEqual(cache.length, 7)
        for (a, b) in zip(first + second, full) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        XCTAssertThrowsError(try model.forward([[1, 2, 3, 4]], cache: cache)) { XCTAssertTrue("\($0)".contains("exceed the cache"), "\($0)") }
    }

    func testGreedyGenerationMatchesRepeatedFullForwardsAndBatchingChangesNothing() throws {
        let model = try model()
        let prompts: [[Int32]] = [[3, 7, 1], [5, 9, 2, 11, 6]]
        var options = GenerationOptions()
        options.maxNewTokens = 8
        let batched = try model.generate(prompts, options: options)
        for (prompt, result) in zip(prompts, batched) {
            var sequence = prompt
            for _ in 0..<8 {
                let values = try Autograd.withoutGrad { try model.logits([sequence]) }.values
                let last = (sequence.count - 1) * 23
                sequence.append(Int32((0..<23).max { values[last + $0] < values[last + $1] }!))
            }
            XCTAssertEqual(result.tokens, Array(sequence[prompt.count...]))
            XCTAssertEqual(try model.generate([prompt], options: options)[0], result, "alone as in the batch")
        }
    }

    func testSamplingFollowsItsOptionsAndSeed() throws {
        let model = try model()
        var options = GenerationOptions()
        options.maxNewTokens = 12
        options.temperature = 1.5
        options.seed = 3
        let once = try model.generate([[1, 2, 3]], options: options)
        XCTAssertEqual(try model.generate([[1, 2, 3]], options: options), once, "same seed, same tokens")
        options.seed = 4
        XCTAssertNotEqual(try model.generate([[1, 2, 3]], options: options), once, "another seed")
        options.topK = 1
        var greedy = GenerationOptions()
        greedy.maxNewTokens = 12
        XCTAssertEqual(try model.generate([[1, 2, 3]], options: options), try model.generate([[1, 2, 3]], options: greedy), "top-k 1 is greedy")
        options.topK = 0
        options.topP = 1e-6
        XCTAssertEqual(try model.generate([[1, 2, 3]], options: options), try model.generate([[1, 2, 3]], options: greedy), "a tiny top-p is greedy")
        // The repetition penalty changes what is chosen when it is strong.
        var penalised = GenerationOptions()
        penalised.maxNewTokens = 12
        penalised.repetitionPenalty = 50
        let varied = try model.generate([[1, 2, 3]], options: penalised)[0].tokens
        XCTAssertEqual(Set(varied).count, varied.count, "with a strong penalty no token repeats: \(varied)")
        XCTAssertNotEqual(varied, try model.generate([[1, 2, 3]], options: greedy)[0].tokens)
        // A stop token ends the row before it.
        penalised.stopTokens = [varied[2]]
        let stopped = try model.generate([[1, 2, 3]], options: penalised)[0]
        XCTAssertEqual(stopped.finishReason, "eos")
        XCTAssertEqual(stopped.tokens, Array(varied.prefix(2)))
        for bad in [{ (o: inout GenerationOptions) in o.temperature = -1 }, { $0.topP = 0 }, { $0.topK = -2 }, { $0.repetitionPenalty = 0 }] {
            var wrong = GenerationOptions()
            bad(&wrong)
            XCTAssertThrowsError(try model.generate([[1]], options: wrong))
        }
    }
}
