import Foundation

/// A BERT WordPiece tokenizer, matching Hugging Face's `BertTokenizerFast`: uncased by default, as for
/// all-MiniLM-L6-v2 (`do_lower_case`, accent stripping, CJK splitting, `##` continuation pieces, 100-character word
/// limit), or with the options of a ``BertNormalization`` or a `tokenizer.json` (cased models).
///
/// Text is first split around literal special tokens (`[CLS]`, `[SEP]`, `[PAD]`, `[UNK]`, `[MASK]`, or those a
/// `tokenizer.json` lists, matched case-sensitively in the raw text, as Hugging Face does), then normalised and split into words by
/// ``BertBasicTokenizer``, then each word is cut into the longest vocabulary pieces from the left.
/// A word that cannot be fully covered, or that is longer than ``maxCharactersPerWord`` scalars,
/// becomes a single `[UNK]`.
public struct WordPieceTokenizer: Sendable {
    /// Words longer than this many Unicode scalars become `[UNK]` (unless a `tokenizer.json` says otherwise).
    public static let maxInputCharactersPerWord = 100
    /// Prefix marking a piece that continues a word (unless a `tokenizer.json` says otherwise).
    public static let continuationPrefix = "##"

    private let vocabulary: WordPieceVocabulary
    /// Special tokens recognised verbatim in input text, with their ids.
    private let specialTokens: [(scalars: [Unicode.Scalar], id: Int32)]
    /// The first scalar of each special token (a quick test before matching them).
    private let specialStarts: Set<Unicode.Scalar>
    /// How text is cleaned and cased before it is split.
    public let normalization: BertNormalization
    /// This tokenizer's prefix of word-continuing pieces.
    public let piecePrefix: String
    /// Words longer than this many Unicode scalars become the unknown token.
    public let maxCharactersPerWord: Int

    /// Id of `[UNK]`, used for words the vocabulary cannot spell.
    public let unknownTokenID: Int32
    /// Id of `[CLS]`, put first by ``encode(_:maxLength:)``.
    public let classifierTokenID: Int32
    /// Id of `[SEP]`, put last by ``encode(_:maxLength:)``.
    public let separatorTokenID: Int32
    /// Id of `[PAD]`, used by ``encodeBatch(_:maxLength:)``.
    public let paddingTokenID: Int32
    /// Id of `[MASK]`, when the vocabulary has one.
    public let maskTokenID: Int32?

    /// Number of entries in the vocabulary (ids run from 0 to `vocabularySize - 1`).
    public var vocabularySize: Int { vocabulary.tokens.count }

    /// Loads a `vocab.txt` file (one token per line, id = line number), normalising text as `normalization` says
    /// (uncased by default; see ``init(folder:)`` for a folder's `tokenizer_config.json`).
    ///
    /// - Throws: ``WordPieceTokenizerError`` naming the file when it is missing, unreadable, not UTF-8, empty,
    ///   or lacks one of `[UNK]`, `[CLS]`, `[SEP]`, `[PAD]`.
    public init(vocabularyFile: URL, normalization: BertNormalization = .uncased) throws {
        try self.init(vocabulary: try WordPieceVocabulary(contentsOf: vocabularyFile), path: vocabularyFile.path,
                      normalization: normalization)
    }

    /// A tokenizer of `vocabulary` (read from `path`, named in errors) with the given special tokens, options
    /// and text recognised verbatim (`special`: the five BERT tokens that are in the vocabulary when nil).
    init(vocabulary: WordPieceVocabulary, path: String, normalization: BertNormalization,
         unknown: String = "[UNK]", classifier: String = "[CLS]", separator: String = "[SEP]", padding: String = "[PAD]",
         special: [String]? = nil, piecePrefix: String = Self.continuationPrefix,
         maxCharactersPerWord: Int = Self.maxInputCharactersPerWord) throws {
        func required(_ token: String) throws -> Int32 {
            guard let id = vocabulary.id(of: token) else {
                throw WordPieceTokenizerError.missingSpecialToken(path: path, token: token)
            }
            return id
        }
        self.unknownTokenID = try required(unknown)
        self.classifierTokenID = try required(classifier)
        self.separatorTokenID = try required(separator)
        self.paddingTokenID = try required(padding)
        self.maskTokenID = vocabulary.id(of: "[MASK]")
        self.vocabulary = vocabulary
        self.normalization = normalization
        self.piecePrefix = piecePrefix
        self.maxCharactersPerWord = maxCharactersPerWord
        let specialTokens = (special ?? ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]).compactMap { token in
            vocabulary.id(of: token).map { (scalars: Array(token.unicodeScalars), id: $0) }
        }.filter { !$0.scalars.isEmpty }
        self.specialTokens = specialTokens
        self.specialStarts = Set(specialTokens.map { $0.scalars[0] })
    }

    /// The id of `token`, or nil when it is not in the vocabulary.
    public func id(for token: String) -> Int32? { vocabulary.id(of: token) }

    /// The text of the token with id `id`, or nil when the id is out of range.
    public func token(for id: Int32) -> String? {
        guard id >= 0, Int(id) < vocabulary.tokens.count else { return nil }
        return vocabulary.tokens[Int(id)]
    }

    /// The WordPiece tokens of `text`, without `[CLS]`/`[SEP]` and without truncation.
    public func tokenize(_ text: String) -> [String] {
        pieceIDs(for: text).map { vocabulary.tokens[Int($0)] }
    }

    /// The ids of the WordPiece tokens of `text`, without `[CLS]`/`[SEP]` and without truncation.
    public func pieceIDs(for text: String) -> [Int32] {
        var ids: [Int32] = []
        for segment in splitOnSpecialTokens(Array(text.unicodeScalars)) {
            switch segment {
            case .special(let id):
                ids.append(id)
            case .text(let scalars):
                var view = String.UnicodeScalarView()
                view.append(contentsOf: scalars)
                for word in BertBasicTokenizer.words(in: String(view), normalization: normalization) {
                    appendPieces(of: word, to: &ids)
                }
            }
        }
        return ids
    }

    /// `[CLS]` + the token ids of `text` + `[SEP]`, keeping at most `maxLength` ids in total
    /// (the text's tokens are cut at the end; a `maxLength` below 2 is treated as 2).
    public func encode(_ text: String, maxLength: Int = 128) -> [Int32] {
        let budget = max(maxLength, 2) - 2
        let pieces = pieceIDs(for: text)
        var ids: [Int32] = [classifierTokenID]
        ids.reserveCapacity(min(pieces.count, budget) + 2)
        ids.append(contentsOf: pieces.prefix(budget))
        ids.append(separatorTokenID)
        return ids
    }

    /// Encodes each text with ``encode(_:maxLength:)`` and pads every row with `[PAD]` to the longest row.
    ///
    /// - Returns: `ids`, one row per text, all of equal length, and `mask` with 1 for real tokens and 0 for padding.
    public func encodeBatch(_ texts: [String], maxLength: Int) -> (ids: [[Int32]], mask: [[Int32]]) {
        let rows = texts.map { encode($0, maxLength: maxLength) }
        let width = rows.map(\.count).max() ?? 0
        var ids: [[Int32]] = []
        var mask: [[Int32]] = []
        ids.reserveCapacity(rows.count)
        mask.reserveCapacity(rows.count)
        for row in rows {
            let padding = width - row.count
            ids.append(row + [Int32](repeating: paddingTokenID, count: padding))
            mask.append([Int32](repeating: 1, count: row.count) + [Int32](repeating: 0, count: padding))
        }
        return (ids, mask)
    }

    // MARK: - Internals

    private enum Segment {
        case text(ArraySlice<Unicode.Scalar>)
        case special(Int32)
    }

    /// Cuts the raw text around literal occurrences of the special tokens.
    private func splitOnSpecialTokens(_ scalars: [Unicode.Scalar]) -> [Segment] {
        var segments: [Segment] = []
        var textStart = 0
        var index = 0
        while index < scalars.count {
            if specialStarts.contains(scalars[index]), let match = specialToken(in: scalars, at: index) {
                if textStart < index { segments.append(.text(scalars[textStart..<index])) }
                segments.append(.special(match.id))
                index += match.length
                textStart = index
            } else {
                index += 1
            }
        }
        if textStart < scalars.count { segments.append(.text(scalars[textStart..<scalars.count])) }
        return segments
    }

    /// The longest special token starting at `start`, if any.
    private func specialToken(in scalars: [Unicode.Scalar], at start: Int) -> (id: Int32, length: Int)? {
        var best: (id: Int32, length: Int)?
        for special in specialTokens {
            let length = special.scalars.count
            guard start + length <= scalars.count, length > (best?.length ?? 0) else { continue }
            if scalars[start..<(start + length)].elementsEqual(special.scalars) {
                best = (special.id, length)
            }
        }
        return best
    }

    /// Greedy longest-match-first WordPiece split of one normalised word.
    private func appendPieces(of word: [Unicode.Scalar], to ids: inout [Int32]) {
        if word.count > maxCharactersPerWord {
            ids.append(unknownTokenID)
            return
        }
        var bytes: [UInt8] = []
        var offsets: [Int] = [0]
        offsets.reserveCapacity(word.count + 1)
        for scalar in word {
            bytes.append(contentsOf: UTF8.encode(scalar)!)
            offsets.append(bytes.count)
        }
        let prefix = Array(piecePrefix.utf8)
        var pieces: [Int32] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int32?
            while end > start {
                let byteCount = offsets[end] - offsets[start] + (start > 0 ? prefix.count : 0)
                if byteCount <= vocabulary.longestTokenBytes {
                    var candidate: [UInt8] = start > 0 ? prefix : []
                    candidate.append(contentsOf: bytes[offsets[start]..<offsets[end]])
                    if let id = vocabulary.id(ofBytes: candidate) {
                        found = id
                        break
                    }
                }
                end -= 1
            }
            guard let id = found else {
                ids.append(unknownTokenID)
                return
            }
            pieces.append(id)
            start = end
        }
        ids.append(contentsOf: pieces)
    }
}
