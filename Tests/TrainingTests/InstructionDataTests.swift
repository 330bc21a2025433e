import Foundation
import XCTest
import Models
import Training

/// JSONL instruction data for the causal LM: the three forms parsed (bad lines refused with file and line), token
/// targets on the completion, the assistant's messages or all text only, and length-bucketed padded batches.
final class InstructionDataTests: XCTestCase {
    /// SmolLM2's real tokenizer (tokenizer.json made by transformers; ModelsTests' fixture).
    static let tokenizer: BytePairTokenizer = {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ModelsTests/Fixtures/smollm2-tokenizer")
        return try! BytePairTokenizer(directory: folder)
    }()

    func write(_ text: String) -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("instructions-\(UUID().uuidString).jsonl")
        try! Data(text.utf8).write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testTheThreeFormsAreReadAndBlankLinesSkipped() throws {
        let url = write("""
        {"prompt": "2+2=", "completion": " 4", "source": "ignored"}

        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
        {"text": "Plain text."}
        """)
        XCTAssertEqual(try InstructionData.read(url), [
            .promptCompletion(prompt: "2+2=", completion: " 4"),
            .messages([ChatMessage(role: "user", content: "Hi"), ChatMessage(role: "assistant", content: "Hello!")]),
            .text("Plain text."),
        ])
    }

    func testBadLinesNameTheFileAndLine() {
        let cases: [(String, String)] = [
            ("{\"prompt\": \"a\", \"completion\": \"b\"}\nnot json", ":2: not a JSON object"),
            ("{\"prompt\": \"a\"}", ":1: the line has no \"completion\""),
            ("{\"prompt\": \"a\", \"completion\": 3}", "\"completion\" of the line must be a string"),
            ("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "no assistant message"),
            ("{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}", "role \"robot\""),
            ("{\"messages\": []}", "non-empty array"),
            ("{\"label\": 1}", "expected \"prompt\" and \"completion\", or \"messages\", or \"text\" (keys: label)"),
            ("\n\n", "holds no example"),
        ]
        for (text, message) in cases {
            let url = write(text)
            XCTAssertThrowsError(try InstructionData.read(url), text) { error in
                XCTAssertTrue("\(error)".contains(url.path), "\(error)")
                XCTAssertTrue("\(error)".contains(message), "\(error) should mention \(message)")
            }
        }
        XCTAssertThrowsError(try InstructionData.read(URL(fileURLWithPath: "/nonexistent/x.jsonl"))) {
            XCTAssertTrue("\($0)".contains("/nonexistent/x.jsonl"))
        }
    }

    func encoder(chat: Bool, maximumTokens: Int = 512) -> InstructionTokenizer {
        InstructionTokenizer(tokenizer: Self.tokenizer, template: .smolLM2, chat: chat, maximumTokens: maximumTokens)
    }

    /// The text of the target tokens.
    func targetText(_ example: TokenizedExample) -> String {
        Self.tokenizer.decode(zip(example.ids, example.targets).filter { $0.1 }.map { $0.0 })
    }

    func testPlainPromptCompletionTargetsTheCompletionAndEnd() {
        let (example, truncated) = encoder(chat: false).tokenize(.promptCompletion(prompt: "The capital of France is", completion: " Paris."))
        XCTAssertFalse(truncated)
        XCTAssertEqual(example.ids, Self.tokenizer.encode("The capital of France is") + Self.tokenizer.encode(" Paris.") + [2])
        XCTAssertEqual(targetText(example), " Paris.<|im_end|>")
        XCTAssertFalse(example.targets[0])
    }

    func testConversationsTargetOnlyTheAssistantAndTokenizeAsTheWholeText() {
        let messages = [ChatMessage(role: "user", content: "What is 7 x 6?"), ChatMessage(role: "assistant", content: "42."),
                        ChatMessage(role: "user", content: "And 7 x 7?"), ChatMessage(role: "assistant", content: "49.")]
        let (example, _) = encoder(chat: true).tokenize(.messages(messages))
        // The parts tokenized one by one give the ids of the rendered conversation as a whole.
        XCTAssertEqual(example.ids, Self.tokenizer.encode(ChatTemplate.smolLM2.render(messages, addGenerationPrompt: false)))
        XCTAssertEqual(targetText(example), "42.<|im_end|>49.<|im_end|>")
        // A prompt-completion pair in chat form is the same as a two-message conversation.
        let pair = encoder(chat: true).tokenize(.promptCompletion(prompt: "What is 7 x 6?", completion: "42.")).example
        let conversation = encoder(chat: true).tokenize(.messages(Array(messages.prefix(2)))).example
        XCTAssertEqual(pair, conversation)
        // With its own system message, the default one is not added.
        let withSystem = encoder(chat: true).tokenize(.messages([ChatMessage(role: "system", content: "Be brief.")] + messages)).example
        XCTAssertFalse(Self.tokenizer.decode(withSystem.ids).contains("SmolLM"))
    }

    func testTextTargetsEverythingAndLongExamplesAreCut() {
        let (example, truncated) = encoder(chat: false).tokenize(.text("one two three"))
        XCTAssertFalse(truncated)
        XCTAssertEqual(example.targetCount, example.ids.count - 1, "every token but the first")
        let (cut, wasCut) = encoder(chat: false, maximumTokens: 4).tokenize(.text(String(repeating: "word ", count: 50)))
        XCTAssertTrue(wasCut)
        XCTAssertEqual(cut.ids.count, 4)
        XCTAssertEqual(cut.targets.count, 4)
    }

    func testEpochBatchesHoldEveryExampleOncePaddedAndBucketedByLength() {
        let examples = (0..<100).map { i -> TokenizedExample in
            let length = 3 + (i * 37) % 60
            return TokenizedExample(ids: (0..<length).map { Int32($0 + i) }, targets: (0..<length).map { $0 > 0 })
        }
        let batches = LanguageBatches.epoch(examples, batchSize: 4, padToken: -1, seed: 3, epoch: 0)
        XCTAssertEqual(batches.count, 25)
        var seen: [[Int32]] = []
        for batch in batches {
            let width = batch.ids[0].count
            for (row, mask) in zip(batch.ids, zip(batch.attentionMask, batch.lossMask)) {
                XCTAssertEqual(row.count, width)
                let real = mask.0.reduce(0, +)
                seen.append(Array(row.prefix(real)))
                XCTAssertTrue(row.dropFirst(real).allSatisfy { $0 == -1 }, "padding after the tokens")
                XCTAssertFalse(mask.1.dropFirst(real).contains(true), "padding is never a target")
            }
        }
        XCTAssertEqual(Set(seen.map { $0.map(String.init).joined(separator: ",") }).count, 100, "each example once")
        let real = batches.reduce(0) { $0 + $1.realTokens }, padded = batches.reduce(0) { $0 + $1.paddedTokens }
        // Unbucketed batches of this data pad about a third of their tokens; bucketed ones much less.
        XCTAssertLessThan(Double(padded - real) / Double(padded), 0.1, "padding \(padded - real) of \(padded)")
        XCTAssertNotEqual(batches.map(\.ids), LanguageBatches.epoch(examples, batchSize: 4, padToken: -1, seed: 3, epoch: 1).map(\.ids),
                          "each epoch has its own order")
        XCTAssertEqual(batches.map(\.ids), LanguageBatches.epoch(examples, batchSize: 4, padToken: -1, seed: 3, epoch: 0).map(\.ids),
                       "the same seed and epoch give the same batches")
    }
}
