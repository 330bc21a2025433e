import Foundation

/// How BERT text is normalised before WordPiece: the options of Hugging Face's `BertNormalizer` (in
/// `tokenizer.json`) or of `BertTokenizer` (`do_lower_case`, `strip_accents`, `tokenize_chinese_chars` in
/// `tokenizer_config.json`).
public struct BertNormalization: Sendable, Equatable {
    /// Lower-case the text (uncased models).
    public var lowercase: Bool
    /// Drop accents (NFD, then non-spacing marks); nil: when lower-casing, as Hugging Face does.
    public var stripAccents: Bool?
    /// Put spaces around CJK ideographs, so each is a word.
    public var splitChineseCharacters: Bool
    /// Remove control characters and turn all whitespace into spaces.
    public var cleanText: Bool

    public init(lowercase: Bool = true, stripAccents: Bool? = nil, splitChineseCharacters: Bool = true, cleanText: Bool = true) {
        self.lowercase = lowercase
        self.stripAccents = stripAccents
        self.splitChineseCharacters = splitChineseCharacters
        self.cleanText = cleanText
    }

    /// Uncased BERT (all-MiniLM-L6-v2, bert-base-uncased).
    public static let uncased = BertNormalization()
    /// Cased BERT (bert-base-cased): no lower-casing, accents kept.
    public static let cased = BertNormalization(lowercase: false)
}

/// The BERT "basic tokenizer": cleans, (optionally) lower-cases and splits text into words before WordPiece.
///
/// Steps, in the order of Hugging Face's `BertNormalizer` + `BertPreTokenizer`:
/// 1. remove U+0000, U+FFFD and control characters; turn every whitespace character into a space;
/// 2. surround CJK ideographs with spaces;
/// 3. strip accents: canonical decomposition (NFD), then drop non-spacing marks (category Mn);
/// 4. lower-case each scalar (full Unicode mapping, no context-dependent rules);
/// 5. split on whitespace (dropped) and punctuation (kept as one-scalar words).
/// Steps 1-4 each follow their ``BertNormalization`` option.
enum BertBasicTokenizer {
    /// Splits `text` into normalised words, each given as its Unicode scalars.
    static func words(in text: String, normalization: BertNormalization = .uncased) -> [[Unicode.Scalar]] {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if normalization.cleanText {
                if BertCharacterClasses.isRemovedByCleaning(scalar) { continue }
                if BertCharacterClasses.isWhitespace(scalar) {
                    cleaned.append(" ")
                    continue
                }
            }
            if normalization.splitChineseCharacters, BertCharacterClasses.isCJKIdeograph(scalar) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        let stripAccents = normalization.stripAccents ?? normalization.lowercase
        let decomposed = stripAccents ? String(cleaned).decomposedStringWithCanonicalMapping : String(cleaned)

        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        func finishWord() {
            if !current.isEmpty {
                words.append(current)
                current.removeAll(keepingCapacity: true)
            }
        }
        for scalar in decomposed.unicodeScalars {
            if stripAccents, BertCharacterClasses.isNonspacingMark(scalar) { continue }
            for lowered in normalization.lowercase ? lowercased(scalar) : [scalar] {
                if BertCharacterClasses.isWhitespace(lowered) {
                    finishWord()
                } else if BertCharacterClasses.isPunctuation(lowered) {
                    finishWord()
                    words.append([lowered])
                } else {
                    current.append(lowered)
                }
            }
        }
        finishWord()
        return words
    }

    /// The full lower-case mapping of one scalar (ASCII handled without allocating).
    private static func lowercased(_ scalar: Unicode.Scalar) -> [Unicode.Scalar] {
        let value = scalar.value
        if value < 0x80 {
            if value >= 0x41 && value <= 0x5A, let lower = Unicode.Scalar(value + 0x20) {
                return [lower]
            }
            return [scalar]
        }
        if !scalar.properties.changesWhenLowercased { return [scalar] }
        return Array(scalar.properties.lowercaseMapping.unicodeScalars)
    }
}
