import Foundation

/// A WordPiece vocabulary: token text to id and back, read from a `vocab.txt` file (one token per line,
/// the line number being the id) or given as a list (from `tokenizer.json`).
///
/// Lookups compare exact UTF-8 bytes, not Swift's canonical string equivalence, so a decomposed piece never
/// matches a precomposed vocabulary entry (the reference implementation behaves the same way).
struct WordPieceVocabulary: Sendable {
    /// Token text per id.
    let tokens: [String]
    /// Id per token, keyed by the token's UTF-8 bytes. On duplicate lines the later id wins, as in Hugging Face.
    private let ids: [[UInt8]: Int32]
    /// Length in bytes of the longest token, to skip candidates that cannot match.
    let longestTokenBytes: Int

    /// Reads and parses the vocabulary file at `url`.
    init(contentsOf url: URL) throws {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else {
            throw WordPieceTokenizerError.fileNotFound(path: path)
        }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw WordPieceTokenizerError.unreadableFile(path: path, reason: error.localizedDescription)
        }
        guard String(data: data, encoding: .utf8) != nil else {
            throw WordPieceTokenizerError.invalidEncoding(path: path)
        }
        // Split the bytes, not the String: Swift treats "\r\n" as one Character.
        var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false).map { line -> String in
            let content = line.last == 0x0D ? line.dropLast() : line[...]
            return String(decoding: content, as: UTF8.self)
        }
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        guard !lines.isEmpty, lines.count < Int(Int32.max) else {
            throw WordPieceTokenizerError.emptyVocabulary(path: path)
        }
        self.init(tokens: lines)
    }

    /// The vocabulary whose token with id i is `tokens[i]` (fewer than 2^31 entries; an empty entry is an unused id).
    init(tokens: [String]) {
        var ids: [[UInt8]: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        var longest = 0
        for (index, token) in tokens.enumerated() where !token.isEmpty {
            let bytes = Array(token.utf8)
            ids[bytes] = Int32(index)
            longest = max(longest, bytes.count)
        }
        self.tokens = tokens
        self.ids = ids
        self.longestTokenBytes = longest
    }

    /// The id of `token`, or nil when it is not in the vocabulary.
    func id(of token: String) -> Int32? { ids[Array(token.utf8)] }

    /// The id of the token spelled by `bytes` (UTF-8), or nil.
    func id(ofBytes bytes: [UInt8]) -> Int32? { ids[bytes] }
}
