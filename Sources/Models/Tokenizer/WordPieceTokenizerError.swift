import Foundation

/// Problems found while loading a WordPiece vocabulary file.
///
/// Every case carries the path of the offending file so the message is actionable on its own.
public enum WordPieceTokenizerError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The vocabulary file does not exist.
    case fileNotFound(path: String)
    /// The vocabulary file exists but could not be read.
    case unreadableFile(path: String, reason: String)
    /// The vocabulary file is not valid UTF-8 text.
    case invalidEncoding(path: String)
    /// The vocabulary file holds no tokens.
    case emptyVocabulary(path: String)
    /// A special token the tokenizer needs (`[UNK]`, `[CLS]`, `[SEP]` or `[PAD]`) is not in the vocabulary.
    case missingSpecialToken(path: String, token: String)
    /// A `tokenizer.json` this tokenizer cannot follow exactly (another model type, normaliser or pre-tokeniser)
    /// or that is malformed.
    case unsupportedTokenizer(path: String, reason: String)

    /// A one-line explanation naming the file and the problem.
    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "WordPiece vocabulary file \(path) does not exist"
        case .unreadableFile(let path, let reason):
            return "WordPiece vocabulary file \(path) could not be read: \(reason)"
        case .invalidEncoding(let path):
            return "WordPiece vocabulary file \(path) is not valid UTF-8 text"
        case .emptyVocabulary(let path):
            return "WordPiece vocabulary file \(path) is empty (expected one token per line)"
        case .missingSpecialToken(let path, let token):
            return "WordPiece vocabulary file \(path) has no \(token) token (needed: [UNK], [CLS], [SEP], [PAD])"
        case .unsupportedTokenizer(let path, let reason):
            return "\(path): \(reason)"
        }
    }

    /// Same text as ``description``, for `localizedDescription`.
    public var errorDescription: String? { description }
}
