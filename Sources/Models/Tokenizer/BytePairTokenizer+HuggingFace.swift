import Checkpoints
import Foundation

extension BytePairTokenizer {
    /// The byte-level BPE tokenizer of a Hugging Face folder: `tokenizer.json` (model type BPE: `vocab`, `merges` as
    /// "a b" strings or [a, b] pairs, `added_tokens`), and when present `tokenizer_config.json` (bos, eos and pad
    /// token names) and `chat_template.jinja` (or the config's `chat_template`). Errors name the file.
    public convenience init(directory: URL) throws {
        let url = directory.appendingPathComponent("tokenizer.json")
        struct File: Decodable {
            struct Model: Decodable {
                let type: String?
                let vocab: [String: Int]
                let merges: [Merge]
            }
            struct Merge: Decodable {
                let text: String
                init(from decoder: Decoder) throws {
                    let container = try decoder.singleValueContainer()
                    if let text = try? container.decode(String.self) { self.text = text; return }
                    let pair = try container.decode([String].self)
                    guard pair.count == 2 else {
                        throw DecodingError.dataCorruptedError(in: container, debugDescription: "a merge pair has \(pair.count) parts")
                    }
                    text = pair[0] + " " + pair[1]
                }
            }
            struct Added: Decodable { let id: Int; let content: String; let special: Bool? }
            let model: Model
            let added_tokens: [Added]?
        }
        let file: File
        do {
            file = try decodeJSON(File.self, from: RegularFile.read(url, limit: 64 << 20), path: url.path, what: "tokenizer")
        } catch {
            throw LlamaError("\(error)")
        }
        guard file.model.type == nil || file.model.type == "BPE" else {
            throw LlamaError("\(url.path): model type '\(file.model.type!)' is not BPE")
        }
        var entries = file.model.vocab.map { ($0.value, $0.key) }
        for added in file.added_tokens ?? [] { entries.append((added.id, added.content)) }
        let count = (entries.map(\.0).max() ?? -1) + 1
        guard count > 0, count <= Self.maximumVocabulary, entries.allSatisfy({ $0.0 >= 0 }) else {
            throw LlamaError("\(url.path): token ids must be in 0..<\(Self.maximumVocabulary)")
        }
        var tokens = [String](repeating: "", count: count)
        for (id, token) in entries { tokens[id] = token }
        // Optional companions: special token names and the chat template.
        struct Config: Decodable { let bos_token: String?; let eos_token: String?; let pad_token: String?; let chat_template: String? }
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        let config = FileManager.default.fileExists(atPath: configURL.path)
            ? try? JSONDecoder().decode(Config.self, from: RegularFile.read(configURL)) : nil
        let templateURL = directory.appendingPathComponent("chat_template.jinja")
        let template = (try? String(contentsOf: templateURL, encoding: .utf8)) ?? config?.chat_template
        let special = (file.added_tokens ?? []).filter { $0.special ?? true }.map { Int32($0.id) }
        func id(_ name: String?) -> Int32? { name.flatMap { name in tokens.firstIndex(of: name).map(Int32.init) } }
        do {
            try self.init(tokens: tokens, merges: file.model.merges.map(\.text), specialTokenIDs: special,
                          bos: id(config?.bos_token), eos: id(config?.eos_token), pad: id(config?.pad_token),
                          chatTemplate: template)
        } catch {
            throw LlamaError("\(url.path): \(error)")
        }
    }
}
