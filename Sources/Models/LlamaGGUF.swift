import Checkpoints
import Engine
import Layers

extension LlamaConfiguration {
    /// The configuration a GGUF file of architecture `llama` declares (`llama.block_count`,
    /// `llama.embedding_length`, ...); a missing or impossible value is refused naming the file and the key.
    public init(gguf file: GGUFFile) throws {
        func fail(_ message: String) -> LlamaError { LlamaError("\(file.path): \(message)") }
        guard let architecture = file.metadata["general.architecture"]?.stringValue else {
            throw fail("no 'general.architecture'; not a model file")
        }
        guard architecture == "llama" else { throw fail("architecture '\(architecture)' is not llama") }
        func integer(_ key: String) throws -> Int {
            guard let value = file.metadata["llama." + key]?.intValue else { throw fail("'llama.\(key)' is missing or not an integer") }
            return value
        }
        func real(_ key: String, default fallback: Double? = nil) throws -> Float {
            guard let value = file.metadata["llama." + key]?.doubleValue ?? fallback else {
                throw fail("'llama.\(key)' is missing or not a number")
            }
            return Float(value)
        }
        guard let embedding = file.info("token_embd.weight"), embedding.shape.count == 2 else {
            throw fail("tensor 'token_embd.weight' is missing or not a matrix")
        }
        let heads = try integer("attention.head_count")
        self.init(vocabularySize: embedding.shape[0], hiddenSize: try integer("embedding_length"),
                  intermediateSize: try integer("feed_forward_length"), layers: try integer("block_count"),
                  heads: heads, keyValueHeads: (try? integer("attention.head_count_kv")) ?? heads,
                  ropeBase: try real("rope.freq_base", default: 10_000),
                  rmsNormEps: try real("attention.layer_norm_rms_epsilon"),
                  contextLength: try integer("context_length"), tiedEmbeddings: file.info("output.weight") == nil)
        do { _ = try validate() } catch { throw fail("\(error)") }
    }
}

extension LlamaModel {
    /// The model in a GGUF file (llama.cpp's names: `token_embd`, `blk.N.attn_q`, ...), dequantised to float32.
    /// llama.cpp's converter permutes the rows of `attn_q` and `attn_k` within each head for its interleaved rotary
    /// pairs; they are put back in transformers' order, so the model uses the rotate-half layout and its q_proj /
    /// k_proj weights equal transformers'. Every tensor's shape is checked against the configuration.
    public convenience init(gguf file: GGUFFile) throws {
        try self.init(try LlamaConfiguration(gguf: file))
        let c = configuration
        func load(_ name: String, into target: Tensor, heads: Int? = nil) throws {
            guard let info = file.info(name) else {
                throw LlamaError("\(file.path): tensor '\(name)' is missing")
            }
            guard info.shape == target.shape else {
                throw LlamaError("\(file.path): tensor '\(name)' has shape \(info.shape), the configuration needs \(target.shape)")
            }
            let value = try file.tensor(name)
            if let heads { Self.unpermuteRotaryRows(value, heads: heads) }
            target.assign(value)
        }
        try load("token_embd.weight", into: decoder.embedding.weight)
        for (index, block) in decoder.blocks.enumerated() {
            let prefix = "blk.\(index)."
            try load(prefix + "attn_norm.weight", into: block.inputNorm.weight)
            try load(prefix + "attn_q.weight", into: block.attention.query.weight, heads: c.heads)
            try load(prefix + "attn_k.weight", into: block.attention.key.weight, heads: c.keyValueHeads)
            try load(prefix + "attn_v.weight", into: block.attention.value.weight)
            try load(prefix + "attn_output.weight", into: block.attention.output.weight)
            try load(prefix + "ffn_norm.weight", into: block.postAttentionNorm.weight)
            try load(prefix + "ffn_gate.weight", into: block.mlp.gate.weight)
            try load(prefix + "ffn_up.weight", into: block.mlp.up.weight)
            try load(prefix + "ffn_down.weight", into: block.mlp.down.weight)
        }
        try load("output_norm.weight", into: decoder.norm.weight)
        if let head { try load("output.weight", into: head.weight) }
    }

    /// Puts the rows of a GGUF q or k projection [heads * d, in] back in transformers' order: within each head,
    /// GGUF row 2 i + j is transformers' row j (d / 2) + i (the inverse of llama.cpp's `permute`).
    public static func unpermuteRotaryRows(_ weight: Tensor, heads: Int) {
        let rows = weight.shape[0], columns = weight.shape[1], headRows = rows / heads, half = headRows / 2
        let source = weight.values
        let target = weight.data
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 {
                    let from = (h * headRows + 2 * i + j) * columns, to = (h * headRows + j * half + i) * columns
                    for c in 0..<columns { target[to + c] = source[from + c] }
                }
            }
        }
    }
}
