import Checkpoints
import Foundation

extension WordPieceTokenizer {
    /// The largest `tokenizer.json` read (BERT-family files are a few megabytes).
    static let tokenizerFileLimit = 64 << 20

    /// The tokenizer of a Hugging Face model folder: its `tokenizer.json` when there is one (what the fast
    /// tokenizers use), else its `vocab.txt` with the casing options of `tokenizer_config.json` (`do_lower_case`,
    /// default true; `strip_accents`; `tokenize_chinese_chars`), as `BertTokenizer` reads them. Errors name the file.
    public init(folder: URL) throws {
        let json = folder.appendingPathComponent("tokenizer.json")
        if RegularFile.exists(json.path) {
            try self.init(tokenizerFile: json)
            return
        }
        let vocabulary = folder.appendingPathComponent("vocab.txt")
        guard RegularFile.exists(vocabulary.path) else {
            throw WordPieceTokenizerError.fileNotFound(path: "\(folder.path)/tokenizer.json (or vocab.txt)")
        }
        var normalization = BertNormalization.uncased
        let configURL = folder.appendingPathComponent("tokenizer_config.json")
        if RegularFile.exists(configURL.path) {
            let config = try Self.object(RegularFile.read(configURL), path: configURL.path)
            func flag(_ key: String) throws -> Bool? {
                guard let value = config[key], !(value is NSNull) else { return nil }
                guard let bool = value as? Bool else {
                    throw WordPieceTokenizerError.unsupportedTokenizer(path: configURL.path, reason: "'\(key)' must be true or false")
                }
                return bool
            }
            normalization.lowercase = try flag("do_lower_case") ?? true
            normalization.stripAccents = try flag("strip_accents")
            normalization.splitChineseCharacters = try flag("tokenize_chinese_chars") ?? true
        }
        try self.init(vocabularyFile: vocabulary, normalization: normalization)
    }

    /// Reads a Hugging Face `tokenizer.json` of a WordPiece model (BERT family): the vocabulary and its unknown
    /// token, continuation prefix and word limit; the `BertNormalizer` options (or none); the `BertPreTokenizer`;
    /// the `[CLS]`/`[SEP]` of the post-processor (`BertProcessing`, or a `TemplateProcessing` of the same shape);
    /// the special tokens of `added_tokens`, matched verbatim in text. Anything this tokenizer would not follow
    /// exactly is refused, naming the file and the part.
    public init(tokenizerFile url: URL) throws {
        let path = url.path
        func refuse(_ reason: String) -> WordPieceTokenizerError { .unsupportedTokenizer(path: path, reason: reason) }
        let data: Data
        do {
            data = try RegularFile.read(url, limit: Self.tokenizerFileLimit)
        } catch {
            throw WordPieceTokenizerError.unreadableFile(path: path, reason: "\(error)")
        }
        let file = try Self.object(data, path: path)
        guard let model = file["model"] as? [String: Any] else { throw refuse("no 'model' object") }
        let type = model["type"] as? String ?? "(none)"
        guard type == "WordPiece" else {
            throw refuse("model type '\(type)'; only WordPiece (BERT-family) tokenizers are read here")
        }
        guard let vocab = model["vocab"] as? [String: Any], !vocab.isEmpty, vocab.count < Int(Int32.max) else {
            throw refuse("'model.vocab' must be a non-empty object of token to id")
        }
        // Ids may leave holes (a vocab.txt with a repeated line gives one); they stay unused.
        let largestID = vocab.count + 65_536
        var entries: [(Int, String)] = []
        entries.reserveCapacity(vocab.count)
        for (token, value) in vocab {
            guard let number = value as? NSNumber, let id = Int(exactly: number.doubleValue), id >= 0, id < largestID else {
                throw refuse("token '\(token)' has id \(value); ids must be whole numbers in 0..<\(largestID)")
            }
            entries.append((id, token))
        }
        var tokens = [String?](repeating: nil, count: (entries.map(\.0).max() ?? 0) + 1)
        for (id, token) in entries.sorted(by: { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }) {
            guard tokens[id] == nil else { throw refuse("id \(id) is given to two tokens ('\(tokens[id] ?? "")' and '\(token)')") }
            tokens[id] = token
        }
        let prefix = model["continuing_subword_prefix"] as? String ?? Self.continuationPrefix
        let limit = (model["max_input_chars_per_word"] as? NSNumber)?.intValue ?? Self.maxInputCharactersPerWord
        guard !prefix.isEmpty, (1...1_000_000).contains(limit) else {
            throw refuse("'continuing_subword_prefix' must be non-empty and 'max_input_chars_per_word' in 1...1000000")
        }

        let normalization: BertNormalization
        switch file["normalizer"] {
        case nil, is NSNull:
            normalization = BertNormalization(lowercase: false, stripAccents: false, splitChineseCharacters: false, cleanText: false)
        case let normalizer as [String: Any] where normalizer["type"] as? String == "BertNormalizer":
            func flag(_ key: String) throws -> Bool? {
                guard let value = normalizer[key], !(value is NSNull) else { return nil }
                guard let bool = value as? Bool else { throw refuse("normalizer option '\(key)' must be true, false or null") }
                return bool
            }
            normalization = BertNormalization(lowercase: try flag("lowercase") ?? true, stripAccents: try flag("strip_accents"),
                                              splitChineseCharacters: try flag("handle_chinese_chars") ?? true,
                                              cleanText: try flag("clean_text") ?? true)
        case let normalizer as [String: Any]:
            throw refuse("normalizer '\(normalizer["type"] as? String ?? "?")'; only BertNormalizer (or none) is followed")
        default:
            throw refuse("'normalizer' must be an object or null")
        }
        let preTokenizer = (file["pre_tokenizer"] as? [String: Any])?["type"] as? String
        guard preTokenizer == "BertPreTokenizer" else {
            throw refuse("pre-tokenizer '\(preTokenizer ?? "none")'; only BertPreTokenizer is followed")
        }
        let (classifier, separator) = try Self.classifierAndSeparator(file["post_processor"], refuse: refuse)
        let added = (file["added_tokens"] as? [[String: Any]] ?? [])
            .filter { ($0["special"] as? Bool) ?? false }.compactMap { $0["content"] as? String }
        let padding = ((file["padding"] as? [String: Any])?["pad_token"] as? String) ?? "[PAD]"
        try self.init(vocabulary: WordPieceVocabulary(tokens: tokens.map { $0 ?? "" }), path: path,
                      normalization: normalization, unknown: model["unk_token"] as? String ?? "[UNK]",
                      classifier: classifier, separator: separator, padding: padding,
                      special: added.isEmpty ? nil : added, piecePrefix: prefix, maxCharactersPerWord: limit)
    }

    /// The tokens the post-processor puts before and after one text.
    private static func classifierAndSeparator(_ value: Any?, refuse: (String) -> WordPieceTokenizerError) throws -> (String, String) {
        guard let processor = value as? [String: Any], let type = processor["type"] as? String else {
            throw refuse("no post-processor: BERT models expect [CLS] ... [SEP] around each text")
        }
        switch type {
        case "BertProcessing":
            guard let cls = (processor["cls"] as? [Any])?.first as? String, let sep = (processor["sep"] as? [Any])?.first as? String else {
                throw refuse("BertProcessing needs 'cls' and 'sep' as [token, id]")
            }
            return (cls, sep)
        case "TemplateProcessing":
            // [{SpecialToken: {id: CLS}}, {Sequence: {id: A}}, {SpecialToken: {id: SEP}}]
            let single = processor["single"] as? [[String: Any]] ?? []
            func special(_ piece: [String: Any]) -> String? { (piece["SpecialToken"] as? [String: Any])?["id"] as? String }
            guard single.count == 3, let cls = special(single[0]), single[1]["Sequence"] != nil, let sep = special(single[2]) else {
                throw refuse("TemplateProcessing is followed only as 'CLS $A SEP'")
            }
            return (cls, sep)
        default:
            throw refuse("post-processor '\(type)'; only BertProcessing (or the same template) is followed")
        }
    }

    /// `data` parsed as a JSON object, or an error naming `path`.
    private static func object(_ data: Data, path: String) throws -> [String: Any] {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw WordPieceTokenizerError.unsupportedTokenizer(path: path, reason: "not a JSON object")
        }
        return object
    }
}
