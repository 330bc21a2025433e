import Foundation
import Models
import XCTest

/// WordPiece tokenizers from Hugging Face `tokenizer.json` files and from `vocab.txt` with a folder's
/// `tokenizer_config.json`: the ids equal those the real `tokenizers` library gave for the same texts
/// (scripts/reference/make_tokenizer_fixtures.py), cased and uncased; what cannot be followed exactly is refused.
final class WordPieceTokenizerJSONTests: XCTestCase {
    let root = fixturesDirectory.appendingPathComponent("tokenizer-json")

    struct Case: Decodable { let tokenizer: String; let text: String; let ids: [Int32] }

    func cases() throws -> [Case] {
        try JSONDecoder().decode([Case].self, from: Data(contentsOf: root.appendingPathComponent("expected.json")))
    }

    func testIdsEqualTheTokenizersLibrary() throws {
        let all = try cases()
        XCTAssertEqual(Set(all.map(\.tokenizer)), ["uncased", "cased", "cased-strip-accents", "no-chinese-split"])
        for name in Set(all.map(\.tokenizer)) {
            let tokenizer = try WordPieceTokenizer(tokenizerFile: root.appendingPathComponent("\(name).json"))
            for item in all where item.tokenizer == name {
                XCTAssertEqual(tokenizer.encode(item.text, maxLength: 512), item.ids, "\(name): '\(item.text)'")
            }
        }
        // The options differ where they should: casing and accents change the ids of the same text.
        func ids(_ name: String, _ text: String) -> [Int32]? { all.first { $0.tokenizer == name && $0.text == text }?.ids }
        XCTAssertNotEqual(ids("cased", "The Cat sat on the mat."), ids("uncased", "The Cat sat on the mat."))
        XCTAssertNotEqual(ids("cased", "Café naïve cafe"), ids("cased-strip-accents", "Café naïve cafe"))
        XCTAssertNotEqual(ids("uncased", "日本 dog"), ids("no-chinese-split", "日本 dog"))
    }

    func testVocabularyFilesFollowTheFoldersCasing() throws {
        let all = try cases()
        let folder = fixturesDirectory.appendingPathComponent("hf/bert-tiny-cased-vocab")
        let cased = try WordPieceTokenizer(folder: folder)
        XCTAssertFalse(cased.normalization.lowercase, "do_lower_case false in tokenizer_config.json")
        let uncased = try WordPieceTokenizer(vocabularyFile: folder.appendingPathComponent("vocab.txt"))
        for item in all {
            switch item.tokenizer {
            case "cased": XCTAssertEqual(cased.encode(item.text, maxLength: 512), item.ids, item.text)
            case "uncased": XCTAssertEqual(uncased.encode(item.text, maxLength: 512), item.ids, item.text)
            default: continue
            }
        }
    }

    func testAFolderWithOnlyTokenizerJSONLoadsCased() throws {
        let folder = try HuggingFaceFolder(path: fixturesDirectory.appendingPathComponent("hf/bert-tiny-cased").path)
        let (encoder, tokenizer) = try folder.textModel()
        XCTAssertNil(tokenizer.id(for: ""), "an id the file leaves unused names no token")
        let expected = try XCTUnwrap(try cases().first { $0.tokenizer == "cased" && $0.text.hasPrefix("The Cat") })
        XCTAssertEqual(tokenizer.encode(expected.text, maxLength: 512), expected.ids)
        XCTAssertEqual(encoder.configuration.vocabularySize, tokenizer.vocabularySize)
    }

    /// A copy of the cased tokenizer.json with `edit` applied, in a temporary folder.
    func edited(_ edit: (inout [String: Any]) -> Void) throws -> URL {
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("cased.json"))) as? [String: Any])
        edit(&object)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-\(UUID().uuidString).json")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        try JSONSerialization.data(withJSONObject: object).write(to: url)
        return url
    }

    func testWhatCannotBeFollowedIsRefusedNamingTheFileAndThePart() throws {
        func model(_ change: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
            { object in
                var model = object["model"] as? [String: Any] ?? [:]
                change(&model)
                object["model"] = model
            }
        }
        let cases: [((inout [String: Any]) -> Void, String)] = [
            (model { $0["type"] = "BPE" }, "model type 'BPE'"),
            ({ $0["normalizer"] = ["type": "Lowercase"] }, "normalizer 'Lowercase'"),
            ({ $0["pre_tokenizer"] = ["type": "Whitespace"] }, "pre-tokenizer 'Whitespace'"),
            ({ $0["post_processor"] = NSNull() }, "no post-processor"),
            (model { $0["vocab"] = ["[PAD]": 0, "[UNK]": 0] }, "id 0 is given to two tokens ('[PAD]' and '[UNK]')"),
            (model { $0["vocab"] = ["[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": -3] }, "ids must be whole numbers"),
            (model { $0["vocab"] = ["[PAD]": 0, "[UNK]": 1.5] }, "ids must be whole numbers"),
            (model { $0["vocab"] = ["[PAD]": 0, "[UNK]": 1 << 40] }, "ids must be whole numbers"),
            (model { $0["vocab"] = ["[PAD]": 0, "[UNK]": 1, "[SEP]": 2] }, "has no [CLS] token"),
            (model { $0["vocab"] = [String: Int]() }, "'model.vocab' must be a non-empty object"),
            ({ $0["normalizer"] = ["type": "BertNormalizer", "lowercase": "yes"] }, "'lowercase' must be true, false or null"),
        ]
        for (edit, message) in cases {
            let url = try edited(edit)
            XCTAssertThrowsError(try WordPieceTokenizer(tokenizerFile: url), message) { error in
                XCTAssertTrue("\(error)".contains(url.path) && "\(error)".contains(message), "\(error)")
            }
        }
        let garbage = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-\(UUID().uuidString).json")
        addTeardownBlock { try? FileManager.default.removeItem(at: garbage) }
        try Data("{not json".utf8).write(to: garbage)
        XCTAssertThrowsError(try WordPieceTokenizer(tokenizerFile: garbage)) { XCTAssertTrue("\($0)".contains("not a JSON object"), "\($0)") }
        // A folder with neither file.
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-tokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: empty) }
        XCTAssertThrowsError(try WordPieceTokenizer(folder: empty)) { XCTAssertTrue("\($0)".contains("tokenizer.json (or vocab.txt)"), "\($0)") }
    }
}
