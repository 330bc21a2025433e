/// Character classes used by the BERT basic tokenizer.
///
/// They follow the Hugging Face `tokenizers` (Rust) `BertNormalizer` and `BertPreTokenizer`, which is what
/// `BertTokenizerFast` and `tokenizer.json` files use:
/// - control: general categories Cc, Cf, Co, except tab, newline and carriage return. Unassigned code points
///   are kept.
/// - whitespace: tab, newline, carriage return, space and every Unicode `White_Space` scalar.
/// - punctuation: Unicode P* categories plus the ASCII symbols 33-47, 58-64, 91-96 and 123-126.
/// - non-spacing marks (Mn): removed after canonical decomposition when stripping accents.
/// - CJK ideographs: the code-point blocks listed in ``isCJKIdeograph(_:)``.
///
/// The reference classifies control, punctuation and Mn with Unicode 8.0 tables (verified against
/// `tokenizers` 0.23 scalar by scalar), so scalars assigned after Unicode 8.0 count as ordinary letters here too,
/// and the few scalars whose category changed since then use their Unicode 8.0 category.
enum BertCharacterClasses {
    /// The parts of a scalar's Unicode 8.0 general category that the tokenizer cares about.
    enum ReferenceCategory {
        /// Cc, Cf or Co: deleted while cleaning (tab, newline and carriage return aside).
        case control
        /// Mn: deleted when stripping accents.
        case nonspacingMark
        /// P*: split off as a word of its own.
        case punctuation
        /// Anything else, including scalars unassigned in Unicode 8.0.
        case other
    }

    /// The scalar's category as the reference implementation sees it.
    static func referenceCategory(_ scalar: Unicode.Scalar) -> ReferenceCategory {
        switch scalar.value {
        case 0x09, 0x0A, 0x0D:
            return .other
        case 0..<0x20, 0x7F:
            return .control
        case 0x20..<0x7F:
            return isASCIIPunctuation(scalar.value) ? .punctuation : .other
        // Scalars whose general category changed after Unicode 8.0.
        case 0x1885, 0x1886, 0xA9BD:
            return .other
        case 0x111C9, 0x166D:
            return .punctuation
        case 0x1734, 0x1171E:
            return .nonspacingMark
        default:
            break
        }
        let properties = scalar.properties
        guard let age = properties.age, age.major < 8 || (age.major == 8 && age.minor == 0) else {
            return .other
        }
        switch properties.generalCategory {
        case .control, .format, .privateUse, .surrogate:
            return .control
        case .nonspacingMark:
            return .nonspacingMark
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return .punctuation
        default:
            return .other
        }
    }

    /// True for scalars that the text cleaning step deletes: U+0000, U+FFFD and control/format/private-use scalars.
    static func isRemovedByCleaning(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value == 0xFFFD || referenceCategory(scalar) == .control
    }

    /// True for non-spacing marks, which accent stripping deletes after canonical decomposition.
    static func isNonspacingMark(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value >= 0x300 && referenceCategory(scalar) == .nonspacingMark
    }

    /// True for scalars that separate words (they are turned into a plain space while cleaning).
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09, 0x0A, 0x0D, 0x20:
            return true
        case 0..<0x80:
            return false
        default:
            return scalar.properties.isWhitespace
        }
    }

    /// True for scalars that become a word of their own.
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        referenceCategory(scalar) == .punctuation
    }

    /// ASCII symbols treated as punctuation: 33-47, 58-64, 91-96 and 123-126.
    private static func isASCIIPunctuation(_ value: UInt32) -> Bool {
        switch value {
        case 33...47, 58...64, 91...96, 123...126:
            return true
        default:
            return false
        }
    }

    /// True for CJK ideographs, which are surrounded by spaces so each becomes its own word.
    ///
    /// The ranges are those of Hugging Face `tokenizers`; note that, like the reference, U+2B820...U+2B91F is not
    /// included (the Python `BertTokenizer` includes it).
    static func isCJKIdeograph(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }
}
