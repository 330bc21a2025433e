import Checkpoints
import Foundation

/// A byte-level BPE tokenizer (GPT-2 style, as SmolLM2 and most Llama-family models use): special tokens are cut out
/// of the text first; the rest splits into `ByteLevelPieces`, each written as byte characters and merged by the
/// ranked merges. Read from a GGUF file's `tokenizer.ggml.*` metadata. Encoding adds no BOS (as transformers does for
/// SmolLM2); `decode` reverses it exactly.
public final class BytePairTokenizer: @unchecked Sendable {
    /// Token strings by id (byte characters, or a special token's text).
    public let tokens: [String]
    /// Ids of the special (control and user-defined) tokens, by text.
    public let specialTokens: [String: Int32]
    public let bosTokenID: Int32?
    public let eosTokenID: Int32?
    public let padTokenID: Int32?
    /// The chat template as the file gives it (Jinja text), if any.
    public let chatTemplateSource: String?

    private let ids: [String: Int32]
    private let ranks: [Pair: Int]
    private let specialsByLength: [String]
    private let cacheLock = NSLock()
    private var cache: [String: [Int32]] = [:]

    struct Pair: Hashable { let left: String, right: String }

    /// At most this many tokens (a bound on a hostile file's vocabulary).
    public static let maximumVocabulary = 1 << 22

    public init(tokens: [String], merges: [String], specialTokenIDs: [Int32], bos: Int32?, eos: Int32?, pad: Int32?,
                chatTemplate: String?) throws {
        guard !tokens.isEmpty, tokens.count <= Self.maximumVocabulary else {
            throw LlamaError("the vocabulary has \(tokens.count) tokens; it must have 1...\(Self.maximumVocabulary)")
        }
        self.tokens = tokens
        var ids: [String: Int32] = [:]
        for (index, token) in tokens.enumerated() where ids[token] == nil { ids[token] = Int32(index) }
        self.ids = ids
        var ranks: [Pair: Int] = [:]
        for (rank, merge) in merges.enumerated() {
            let parts = merge.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw LlamaError("merge \(rank) '\(merge)' is not two tokens separated by a space")
            }
            let pair = Pair(left: String(parts[0]), right: String(parts[1]))
            if ranks[pair] == nil { ranks[pair] = rank }
        }
        self.ranks = ranks
        var specials: [String: Int32] = [:]
        for id in specialTokenIDs {
            guard id >= 0 && Int(id) < tokens.count else { throw LlamaError("special token id \(id) is outside the vocabulary") }
            if !tokens[Int(id)].isEmpty { specials[tokens[Int(id)]] = id }
        }
        specialTokens = specials
        specialsByLength = specials.keys.sorted { $0.count != $1.count ? $0.count > $1.count : $0 < $1 }
        for (name, id) in [("bos", bos), ("eos", eos), ("pad", pad)] {
            if let id, !(id >= 0 && Int(id) < tokens.count) { throw LlamaError("\(name) token id \(id) is outside the vocabulary") }
        }
        bosTokenID = bos
        eosTokenID = eos
        padTokenID = pad
        chatTemplateSource = chatTemplate
    }

    /// The tokenizer a GGUF file describes (`tokenizer.ggml.model` "gpt2": tokens, token types, merges, special ids).
    public convenience init(gguf file: GGUFFile) throws {
        func fail(_ message: String) -> LlamaError { LlamaError("\(file.path): \(message)") }
        guard let model = file.metadata["tokenizer.ggml.model"]?.stringValue else { throw fail("no 'tokenizer.ggml.model'") }
        guard model == "gpt2" else { throw fail("tokenizer model '\(model)' is not byte-level BPE ('gpt2')") }
        func strings(_ key: String) throws -> [String] {
            guard let array = file.metadata[key]?.arrayValue else { throw fail("'\(key)' is missing or not an array") }
            return try array.map { value in
                guard let text = value.stringValue else { throw fail("'\(key)' holds a value that is not a string") }
                return text
            }
        }
        let tokens = try strings("tokenizer.ggml.tokens")
        let merges = try strings("tokenizer.ggml.merges")
        var specials: [Int32] = []
        if let types = file.metadata["tokenizer.ggml.token_type"]?.arrayValue {
            guard types.count == tokens.count else { throw fail("'tokenizer.ggml.token_type' has \(types.count) entries for \(tokens.count) tokens") }
            for (index, type) in types.enumerated() where [3, 4].contains(type.intValue ?? 1) { specials.append(Int32(index)) }
        }
        func id(_ key: String) -> Int32? { file.metadata[key]?.intValue.map { Int32(clamping: $0) } }
        do {
            try self.init(tokens: tokens, merges: merges, specialTokenIDs: specials, bos: id("tokenizer.ggml.bos_token_id"),
                          eos: id("tokenizer.ggml.eos_token_id"), pad: id("tokenizer.ggml.padding_token_id"),
                          chatTemplate: file.metadata["tokenizer.chat_template"]?.stringValue)
        } catch {
            throw fail("\(error)")
        }
    }

    /// Token ids of `text`; special tokens written in the text (`<|im_start|>`) become their ids.
    public func encode(_ text: String) -> [Int32] {
        var result: [Int32] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            // The earliest special token (the longest at a tie).
            var found: (range: Range<Substring.Index>, id: Int32)?
            for special in specialsByLength {
                if let range = rest.range(of: special), found.map({ range.lowerBound < $0.range.lowerBound }) ?? true {
                    found = (range, specialTokens[special]!)
                }
            }
            let plainEnd = found?.range.lowerBound ?? rest.endIndex
            if plainEnd > rest.startIndex {
                for piece in ByteLevelPieces.split(String(rest[rest.startIndex..<plainEnd])) { result += encodePiece(piece) }
            }
            guard let found else { break }
            result.append(found.id)
            rest = rest[found.range.upperBound...]
        }
        return result
    }

    /// One pre-tokenized piece: its byte characters merged by rank (lowest first, leftmost at a tie).
    private func encodePiece(_ piece: String) -> [Int32] {
        cacheLock.lock()
        if let cached = cache[piece] { cacheLock.unlock(); return cached }
        cacheLock.unlock()
        var symbols = ByteLevelAlphabet.encode(piece)
        while symbols.count > 1 {
            var best: (rank: Int, index: Int)?
            for index in 0..<(symbols.count - 1) {
                if let rank = ranks[Pair(left: symbols[index], right: symbols[index + 1])], rank < (best?.rank ?? .max) {
                    best = (rank, index)
                }
            }
            guard let best else { break }
            symbols[best.index] += symbols[best.index + 1]
            symbols.remove(at: best.index + 1)
        }
        // Every byte character is a token of a byte-level vocabulary; a symbol that is not falls back to its bytes.
        var encoded: [Int32] = []
        for symbol in symbols {
            if let id = ids[symbol] { encoded.append(id) } else {
                for character in symbol { if let id = ids[String(character)] { encoded.append(id) } }
            }
        }
        cacheLock.lock()
        if cache.count < 100_000 { cache[piece] = encoded }
        cacheLock.unlock()
        return encoded
    }

    /// The text of `ids` (invalid UTF-8, e.g. a split multi-byte character, becomes U+FFFD); with
    /// `skipSpecialTokens`, special tokens are left out.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && Int(id) < tokens.count {
            let token = tokens[Int(id)]
            if specialTokens[token] == id {
                if !skipSpecialTokens { bytes.append(contentsOf: Array(token.utf8)) }
                continue
            }
            ByteLevelAlphabet.decode(token, into: &bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
