import XCTest
import Checkpoints
import Models

/// SmolLM2's byte-level BPE tokenizer read from its GGUF file against transformers' tokenizer built from the same
/// file (Fixtures/smollm2_tokenizer_cases.json, made by scripts/reference/make_smollm2_tokenizer_fixture.py):
/// identical ids for 236 strings (ASCII, whitespace runs, digits, punctuation, accents, CJK, emoji, code, special
/// tokens), decoding, and the chat template.
final class BytePairTokenizerTests: XCTestCase {
    struct Fixture: Decodable {
        struct Case: Decodable { let text: String; let ids: [Int32] }
        struct Chat: Decodable { let messages: [ChatMessage]; let add_generation_prompt: Bool; let text: String; let ids: [Int32] }
        struct Decoded: Decodable { let ids: [Int32]; let text: String }
        let cases: [Case]
        let chats: [Chat]
        let decoded: [Decoded]
    }

    func load() throws -> (BytePairTokenizer, Fixture) {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/smollm2_tokenizer_cases.json")
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        let file = try GGUFFile(path: try requireAsset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").path)
        return (try BytePairTokenizer(gguf: file), fixture)
    }

    func testIdsMatchTransformersOnEveryCase() throws {
        let (tokenizer, fixture) = try load()
        XCTAssertGreaterThanOrEqual(fixture.cases.count, 200)
        XCTAssertEqual(tokenizer.tokens.count, 49_152)
        XCTAssertEqual(tokenizer.specialTokens.count, 17)
        XCTAssertEqual([tokenizer.bosTokenID, tokenizer.eosTokenID, tokenizer.padTokenID], [1, 2, 2])
        var mismatches = 0
        for item in fixture.cases {
            let ids = tokenizer.encode(item.text)
            if ids != item.ids {
                mismatches += 1
                XCTFail("\(item.text.debugDescription): \(ids) != \(item.ids)")
            }
            // Decoding gives the text back exactly.
            XCTAssertEqual(tokenizer.decode(item.ids), item.text, item.text.debugDescription)
        }
        XCTAssertEqual(mismatches, 0)
        for item in fixture.decoded { XCTAssertEqual(tokenizer.decode(item.ids), item.text) }
    }

    func testChatTemplateRendersAndTokenizesAsTransformers() throws {
        let (tokenizer, fixture) = try load()
        let template = try XCTUnwrap(ChatTemplate(source: tokenizer.chatTemplateSource))
        XCTAssertEqual(template, .smolLM2)
        for chat in fixture.chats {
            let text = template.render(chat.messages, addGenerationPrompt: chat.add_generation_prompt)
            XCTAssertEqual(text, chat.text)
            XCTAssertEqual(tokenizer.encode(text), chat.ids)
        }
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("<|im_start|>user\nHi<|im_end|>"), skipSpecialTokens: true), "user\nHi")
    }

    func testHuggingFaceTokenizerFilesGiveTheSameTokenizer() throws {
        let (fromGGUF, fixture) = try load()
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/smollm2-tokenizer")
        let tokenizer = try BytePairTokenizer(directory: folder)
        XCTAssertEqual(tokenizer.tokens, fromGGUF.tokens)
        XCTAssertEqual(tokenizer.specialTokens, fromGGUF.specialTokens)
        XCTAssertEqual(tokenizer.eosTokenID, 2)
        XCTAssertEqual(ChatTemplate(source: tokenizer.chatTemplateSource), .smolLM2)
        for item in fixture.cases { XCTAssertEqual(tokenizer.encode(item.text), item.ids, item.text.debugDescription) }
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-tokenizer-\(UUID().uuidString)")
        XCTAssertThrowsError(try BytePairTokenizer(directory: empty)) { XCTAssertTrue("\($0)".contains("tokenizer.json"), "\($0)") }
    }

    func testBrokenTokenizerMetadataIsRefused() {
        XCTAssertThrowsError(try BytePairTokenizer(tokens: [], merges: [], specialTokenIDs: [], bos: nil, eos: nil, pad: nil, chatTemplate: nil))
        XCTAssertThrowsError(try BytePairTokenizer(tokens: ["a", "b"], merges: ["a"], specialTokenIDs: [], bos: nil, eos: nil, pad: nil, chatTemplate: nil)) {
            XCTAssertTrue("\($0)".contains("merge 0"), "\($0)")
        }
        XCTAssertThrowsError(try BytePairTokenizer(tokens: ["a"], merges: [], specialTokenIDs: [5], bos: nil, eos: nil, pad: nil, chatTemplate: nil))
        XCTAssertThrowsError(try BytePairTokenizer(tokens: ["a"], merges: [], specialTokenIDs: [], bos: 3, eos: nil, pad: nil, chatTemplate: nil))
    }
}
