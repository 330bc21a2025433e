import Foundation
import XCTest

/// `peft generate` and `peft models` as a user runs them: the chat template applied, greedy text on standard output
/// only, statistics on standard error, bad options refused with a message.
final class GenerateCommandTests: XCTestCase {
    func testGreedyAnswerGoesToStandardOutputAlone() throws {
        let outcome = try PeftProcess.run(["generate", "--prompt", "What is the capital of France?", "--max-new-tokens", "16",
                                           "--temperature", "0"], timeout: 120)
        assertSuccess(outcome)
        // transformers' greedy answer from the same GGUF (Fixtures of ModelsTests), up to the end-of-turn token.
        XCTAssertEqual(outcome.stdout, "The capital of France is Paris.\n", outcome.summary)
        XCTAssertTrue(outcome.stderr.contains("tokens/s decoding; stopped: eos"), outcome.summary)
        let raw = try PeftProcess.run(["generate", "--raw", "--prompt", "The capital of France is", "--max-new-tokens", "4"], timeout: 120)
        assertSuccess(raw)
        XCTAssertFalse(raw.stdout.isEmpty, raw.summary)
    }

    func testBadOptionsAreRefusedAndModelsAreListed() throws {
        assertCleanFailure(try PeftProcess.run(["generate", "--prompt", "x", "--top-p", "0"], timeout: 60), mentions: "top-p must be in (0, 1]")
        assertCleanFailure(try PeftProcess.run(["generate", "--prompt", "x", "--model", "gpt-9"], timeout: 60), mentions: "unknown language model 'gpt-9'")
        assertCleanFailure(try PeftProcess.run(["generate", "--prompt", "x", "--max-new-tokens", "9000"], timeout: 60), mentions: "exceed the context")
        let models = try PeftProcess.run(["models"], timeout: 30)
        assertSuccess(models)
        XCTAssertTrue(models.stdout.contains("smollm2-135m") && models.stdout.contains("dinov2-s14"), models.summary)
    }
}
