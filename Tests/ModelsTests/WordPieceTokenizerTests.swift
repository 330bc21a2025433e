import Foundation
import Models
import XCTest

/// Tests of the BERT WordPiece tokenizer: hand-made vocabularies for each rule, then parity with Hugging Face
/// `tokenizers` on the real all-MiniLM-L6-v2 vocabulary.
final class WordPieceTokenizerTests: XCTestCase {
    private static let smallVocabulary = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
        "un", "##aff", "##able", "unaff", "##a", "a", "##b", "b",
        "hello", "world", ",", "!", ".", "$", "_", "'", "s", "it",
        "cafe", "naive", "istanbul", "一", "二", "##二", "ab", "hel", "##lo", "[", "]", "cl", "##s",
    ]

    private var temporaryFiles: [URL] = []

    override func tearDown() {
        for url in temporaryFiles { try? FileManager.default.removeItem(at: url) }
        temporaryFiles = []
        super.tearDown()
    }

    /// Writes `lines` as a vocab.txt in a fresh temporary file.
    private func writeVocabulary(_ lines: [String], trailingNewline: Bool = true) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("wordpiece-test-\(UUID().uuidString).txt")
        let text = lines.joined(separator: "\n") + (trailingNewline ? "\n" : "")
        try text.write(to: url, atomically: true, encoding: .utf8)
        temporaryFiles.append(url)
        return url
    }

    private func smallTokenizer() throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabularyFile: try writeVocabulary(Self.smallVocabulary))
    }

    // MARK: Hand-made vocabulary

    func testSpecialTokenIDsAndVocabularySize() throws {
        let tokenizer = try smallTokenizer()
        XCTAssertEqual(tokenizer.vocabularySize, Self.smallVocabulary.count)
        XCTAssertEqual(tokenizer.paddingTokenID, 0)
        XCTAssertEqual(tokenizer.unknownTokenID, 1)
        XCTAssertEqual(tokenizer.classifierTokenID, 2)
        XCTAssertEqual(tokenizer.separatorTokenID, 3)
        XCTAssertEqual(tokenizer.maskTokenID, 4)
        XCTAssertEqual(tokenizer.id(for: "hello"), 13)
        XCTAssertEqual(tokenizer.token(for: 13), "hello")
        XCTAssertNil(tokenizer.token(for: 9999))
        XCTAssertNil(tokenizer.token(for: -1))
    }

    func testGreedyLongestMatchFirst() throws {
        let tokenizer = try smallTokenizer()
        // "unaff" is preferred over "un" + "##aff" because it is the longest prefix in the vocabulary.
        XCTAssertEqual(tokenizer.tokenize("unaffable"), ["unaff", "##able"])
        XCTAssertEqual(tokenizer.tokenize("hello"), ["hello"])
        XCTAssertEqual(tokenizer.tokenize("hello hello"), ["hello", "hello"])
    }

    func testContinuationPieces() throws {
        let tokenizer = try smallTokenizer()
        XCTAssertEqual(tokenizer.tokenize("aaab"), ["a", "##a", "##a", "##b"])
        XCTAssertEqual(tokenizer.tokenize("一二"), ["一", "二"], "CJK ideographs are split before WordPiece")
        XCTAssertEqual(tokenizer.tokenize("helo"), ["[UNK]"])
        XCTAssertEqual(tokenizer.tokenize("hello"), ["hello"])
    }

    func testUnknownWordBecomesSingleUnknownToken() throws {
        let tokenizer = try smallTokenizer()
        XCTAssertEqual(tokenizer.tokenize("xyz"), ["[UNK]"])
        // A word that starts well but cannot be finished is one [UNK], not a partial split.
        XCTAssertEqual(tokenizer.tokenize("unaffx"), ["[UNK]"])
        XCTAssertEqual(tokenizer.tokenize("hello xyz world"), ["hello", "[UNK]", "world"])
        XCTAssertEqual(tokenizer.pieceIDs(for: "xyz"), [tokenizer.unknownTokenID])
    }

    func testLongWordLimit() throws {
        let tokenizer = try smallTokenizer()
        let hundred = String(repeating: "a", count: 100)
        XCTAssertEqual(tokenizer.tokenize(hundred), ["a"] + [String](repeating: "##a", count: 99))
        XCTAssertEqual(tokenizer.tokenize(hundred + "a"), ["[UNK]"], "101 characters exceed max_input_chars_per_word")
        XCTAssertEqual(tokenizer.tokenize("b " + hundred + "a b"), ["b", "[UNK]", "b"])
    }

    func testPunctuationSplitting() throws {
        let tokenizer = try smallTokenizer()
        XCTAssertEqual(tokenizer.tokenize("hello, world!"), ["hello", ",", "world", "!"])
        XCTAssertEqual(tokenizer.tokenize("hello,world"), ["hello", ",", "world"])
        XCTAssertEqual(tokenizer.tokenize("$a_b"), ["$", "a", "_", "b"], "ASCII symbols count as punctuation")
        XCTAssertEqual(tokenizer.tokenize("it's"), ["it", "'", "s"])
        XCTAssertEqual(tokenizer.tokenize("a¿b"), ["a", "[UNK]", "b"], "Unicode punctuation splits too")
        XCTAssertEqual(tokenizer.tokenize("...."), [".", ".", ".", "."])
    }

    func testLowerCasingAndAccentStripping() throws {
        let tokenizer = try smallTokenizer()
        XCTAssertEqual(tokenizer.tokenize("Café NAÏVE"), ["cafe", "naive"])
        XCTAssertEqual(tokenizer.tokenize("Cafe\u{0301}"), ["cafe"], "decomposed accents are stripped as well")
        XCTAssertEqual(tokenizer.tokenize("HELLO World"), ["hello", "world"])
        XCTAssertEqual(tokenizer.tokenize("İstanbul"), ["istanbul"])
    }

    func testCJKCharactersAreSeparateWords() throws {
        let tokenizer = try smallTokenizer()
        XCTAssertEqual(tokenizer.tokenize("hello一world"), ["hello", "一", "world"])
        XCTAssertEqual(tokenizer.tokenize("一 二一"), ["一", "二", "一"])
        XCTAssertEqual(tokenizer.tokenize("三"), ["[UNK]"])
    }

    func testCleaningOfControlCharactersAndWhitespace() throws {
        let tokenizer = try smallTokenizer()
        XCTAssertEqual(tokenizer.tokenize("hel\u{0}lo\u{FFFD}"), ["hello"])
        XCTAssertEqual(tokenizer.tokenize("hel\u{7}lo\u{200B}"), ["hello"], "control and format characters vanish")
        XCTAssertEqual(tokenizer.tokenize("hello\tworld\nhello\r\nworld\u{3000}a"),
                       ["hello", "world", "hello", "world", "a"])
        XCTAssertEqual(tokenizer.tokenize("   "), [])
        XCTAssertEqual(tokenizer.tokenize(""), [])
    }

    func testLiteralSpecialTokensInText() throws {
        let tokenizer = try smallTokenizer()
        XCTAssertEqual(tokenizer.tokenize("hello[SEP]world [MASK]"), ["hello", "[SEP]", "world", "[MASK]"])
        // Matching is case-sensitive: "[cls]" is ordinary text.
        XCTAssertEqual(tokenizer.tokenize("[cls]"), ["[", "cl", "##s", "]"])
    }

    func testEncodeAddsSpecialTokensAndTruncates() throws {
        let tokenizer = try smallTokenizer()
        XCTAssertEqual(tokenizer.encode("hello world"), [2, 13, 14, 3])
        XCTAssertEqual(tokenizer.encode(""), [2, 3])
        XCTAssertEqual(tokenizer.encode("hello world hello", maxLength: 4), [2, 13, 14, 3])
        XCTAssertEqual(tokenizer.encode("hello world", maxLength: 0), [2, 3], "lengths below 2 keep [CLS] [SEP]")
        let long = Array(repeating: "hello", count: 300).joined(separator: " ")
        XCTAssertEqual(tokenizer.encode(long).count, 128)
        XCTAssertEqual(tokenizer.encode(long).last, tokenizer.separatorTokenID)
    }

    func testEncodeBatchPadsToLongest() throws {
        let tokenizer = try smallTokenizer()
        let batch = tokenizer.encodeBatch(["hello", "hello world !", ""], maxLength: 4)
        XCTAssertEqual(batch.ids, [[2, 13, 3, 0], [2, 13, 14, 3], [2, 3, 0, 0]].map { $0.map(Int32.init) })
        XCTAssertEqual(batch.mask, [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]].map { $0.map(Int32.init) })
        let wide = tokenizer.encodeBatch(["hello world !", "hello"], maxLength: 64)
        XCTAssertEqual(wide.ids, [[2, 13, 14, 16, 3], [2, 13, 3, 0, 0]].map { $0.map(Int32.init) })
        XCTAssertEqual(wide.mask, [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]].map { $0.map(Int32.init) })
        let empty = tokenizer.encodeBatch([], maxLength: 8)
        XCTAssertTrue(empty.ids.isEmpty && empty.mask.isEmpty)
    }

    func testVocabularyWithoutTrailingNewlineOrWithCRLF() throws {
        let plain = try WordPieceTokenizer(vocabularyFile: writeVocabulary(Self.smallVocabulary, trailingNewline: false))
        XCTAssertEqual(plain.vocabularySize, Self.smallVocabulary.count)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("wordpiece-crlf-\(UUID().uuidString).txt")
        try (Self.smallVocabulary.joined(separator: "\r\n") + "\r\n").write(to: url, atomically: true, encoding: .utf8)
        temporaryFiles.append(url)
        let crlf = try WordPieceTokenizer(vocabularyFile: url)
        XCTAssertEqual(crlf.tokenize("hello world"), ["hello", "world"])
    }

    // MARK: Errors

    private func assertThrowsNaming(_ url: URL, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try WordPieceTokenizer(vocabularyFile: url), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(url.path), "message should name the file: \(message)", file: file, line: line)
            XCTAssertTrue(message.contains(fragment), "message should mention \(fragment): \(message)", file: file, line: line)
            XCTAssertEqual(error.localizedDescription, message, file: file, line: line)
        }
    }

    func testMissingVocabularyFileThrows() {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-vocab-\(UUID().uuidString).txt")
        assertThrowsNaming(url, "does not exist")
    }

    func testEmptyVocabularyFileThrows() throws {
        assertThrowsNaming(try writeVocabulary([], trailingNewline: false), "empty")
        assertThrowsNaming(try writeVocabulary(["", ""]), "empty")
    }

    func testVocabularyWithoutSpecialTokensThrows() throws {
        for missing in ["[UNK]", "[CLS]", "[SEP]", "[PAD]"] {
            let url = try writeVocabulary(Self.smallVocabulary.filter { $0 != missing })
            assertThrowsNaming(url, missing)
        }
    }

    func testNonUTF8VocabularyThrows() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bad-vocab-\(UUID().uuidString).txt")
        try Data([0x5B, 0x55, 0x4E, 0x4B, 0x5D, 0x0A, 0xFF, 0xFE, 0x0A]).write(to: url)
        temporaryFiles.append(url)
        assertThrowsNaming(url, "UTF-8")
    }

    // MARK: Parity with Hugging Face on the real vocabulary

    private struct ParityCase: Decodable {
        let text: String
        let ids: [Int32]
        let tokens: [String]?
    }

    private struct ParityFile: Decodable {
        let cases: [ParityCase]
    }

    /// `<assets>`: the PEFT_ASSETS environment variable, else `<package root>/assets`.
    private static var assetsDirectory: URL {
        if let path = ProcessInfo.processInfo.environment["PEFT_ASSETS"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("assets")
    }

    private static var fixtureURL: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent("wordpiece_cases.json")
    }

    func testParityWithHuggingFaceOnRealVocabulary() throws {
        let vocabularyURL = Self.assetsDirectory.appendingPathComponent("minilm").appendingPathComponent("vocab.txt")
        guard FileManager.default.fileExists(atPath: vocabularyURL.path) else {
            XCTFail("Real vocabulary \(vocabularyURL.path) is missing: run scripts/setup.sh (CI provides it)")
            return
        }
        guard let fixture = try? Data(contentsOf: Self.fixtureURL) else {
            XCTFail("Fixture \(Self.fixtureURL.path) is missing: run scripts/setup.sh (CI provides it)")
            return
        }
        let cases: [ParityCase]
        if let file = try? JSONDecoder().decode(ParityFile.self, from: fixture) {
            cases = file.cases
        } else {
            cases = try JSONDecoder().decode([ParityCase].self, from: fixture)
        }
        XCTAssertFalse(cases.isEmpty, "\(Self.fixtureURL.path) holds no cases")

        let tokenizer = try WordPieceTokenizer(vocabularyFile: vocabularyURL)
        XCTAssertEqual(tokenizer.vocabularySize, 30522)
        XCTAssertEqual(tokenizer.classifierTokenID, 101)
        XCTAssertEqual(tokenizer.separatorTokenID, 102)
        XCTAssertEqual(tokenizer.paddingTokenID, 0)
        XCTAssertEqual(tokenizer.unknownTokenID, 100)

        var failures = 0
        for (index, parityCase) in cases.enumerated() {
            let ids = tokenizer.encode(parityCase.text, maxLength: Int.max)
            if ids != parityCase.ids {
                failures += 1
                if failures <= 10 {
                    XCTFail("case \(index) \(String(reflecting: parityCase.text)):\n expected \(parityCase.ids)\n got      \(ids)")
                }
            }
            if let tokens = parityCase.tokens, ids == parityCase.ids {
                XCTAssertEqual(["[CLS]"] + tokenizer.tokenize(parityCase.text) + ["[SEP]"], tokens, "case \(index)")
            }
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(cases.count) cases differ from Hugging Face")
    }

    func testRealVocabularyKnownSentence() throws {
        let vocabularyURL = Self.assetsDirectory.appendingPathComponent("minilm").appendingPathComponent("vocab.txt")
        guard FileManager.default.fileExists(atPath: vocabularyURL.path) else {
            XCTFail("Real vocabulary \(vocabularyURL.path) is missing: run scripts/setup.sh (CI provides it)")
            return
        }
        let tokenizer = try WordPieceTokenizer(vocabularyFile: vocabularyURL)
        // Reference ids from Hugging Face tokenizers 0.23.3 with assets/minilm/tokenizer.json.
        XCTAssertEqual(tokenizer.encode("hello[SEP]world [cls] [UNK]"),
                       [101, 7592, 102, 2088, 1031, 18856, 2015, 1033, 100, 102])
        XCTAssertEqual(tokenizer.encode("한국어"), [101, 1469, 30006, 30021, 29991, 30014, 30020, 29999, 30008, 102])
        XCTAssertEqual(tokenizer.encode("$5 £3 ±2"), [101, 1002, 1019, 28182, 1081, 2475, 102])
    }
}
