import Foundation

/// The uncased BERT "basic tokenizer": cleans, lower-cases and splits text into words before WordPiece.
///
/// Steps, in the order of Hugging Face's `BertNormalizer` + `BertPreTokenizer`:
/// 1. remove U+0000, U+FFFD and control characters; turn every whitespace character into a space;
/// 2. surround CJK ideographs with spaces;
/// 3. strip accents: canonical decomposition (NFD), then drop non-spacing marks (category Mn);
/// 4. lower-case each scalar (full Unicode mapping, no context-dependent rules);
/// 5. split on whitespace (dropped) and punctuation (kept as one-scalar words).
enum BertBasicTokenizer {
    /// Splits `text` into normalised words, each given as its Unicode scalars.
    static func words(in text: String) -> [[Unicode.Scalar]] {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if BertCharacterClasses.isRemovedByCleaning(scalar) { continue }
            if BertCharacterClasses.isWhitespace(scalar) {
                cleaned.append(" ")
            } else if BertCharacterClasses.isCJKIdeograph(scalar) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        let decomposed = String(cleaned).decomposedStringWithCanonicalMapping

        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        func finishWord() {
            if !current.isEmpty {
                words.append(current)
                current.removeAll(keepingCapacity: true)
            }
        }
        for scalar in decomposed.unicodeScalars {
            if BertCharacterClasses.isNonspacingMark(scalar) { continue }
            for lowered in lowercased(scalar) {
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
