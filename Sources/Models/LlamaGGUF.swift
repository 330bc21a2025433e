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
    /// The model in a GGUF file (llama.cpp's names: `token_embd`, `blk.N.attn_q`, ...). With `quantizedWeights`,
    /// the projections stored as Q4_0, Q4_1 or Q8_0 stay in that form in memory (`Linear(quantized:)`; about 7x less
    /// than float32 for Q4_1) and every other tensor is dequantised to float32; without it, everything is.
    /// llama.cpp's converter permutes the rows of `attn_q` and `attn_k` within each head for its interleaved rotary
    /// pairs; they are put back in transformers' order (also in quantised form: rows are independent), so the model
    /// uses the rotate-half layout and its q_proj / k_proj weights equal transformers'. Every tensor's shape is
    /// checked against the configuration.
    public convenience init(gguf file: GGUFFile, quantizedWeights: Bool = false) throws {
        let c = try LlamaConfiguration(gguf: file)
        func checkedInfo(_ name: String, shape: [Int]) throws -> GGUFTensorInfo {
            guard let info = file.info(name) else { throw LlamaError("\(file.path): tensor '\(name)' is missing") }
            guard info.shape == shape else {
                throw LlamaError("\(file.path): tensor '\(name)' has shape \(info.shape), the configuration needs \(shape)")
            }
            return info
        }
        // The file's tensor itself becomes the parameter (no second copy of a 113 MB embedding).
        func tensor(_ name: String, shape: [Int], heads: Int? = nil) throws -> Tensor {
            _ = try checkedInfo(name, shape: shape)
            let value = try file.tensor(name)
            if let heads { Self.unpermuteRotaryRows(value, heads: heads) }
            return value
        }
        func load(_ name: String, into target: Tensor) throws {
            target.assign(try tensor(name, shape: target.shape))
        }
        let embedding = Embedding(weight: try tensor("token_embd.weight", shape: [c.vocabularySize, c.hiddenSize]))
        // transformers path -> GGUF name, and the heads of a rotary projection.
        func ggufName(_ path: String) -> (String, Int?) {
            if path == "lm_head" { return ("output.weight", nil) }
            let parts = path.split(separator: ".")  // model.layers.N.self_attn.q_proj
            let block = "blk.\(parts[2]).", role = String(parts[4])
            switch role {
            case "q_proj": return (block + "attn_q.weight", c.heads)
            case "k_proj": return (block + "attn_k.weight", c.keyValueHeads)
            case "v_proj": return (block + "attn_v.weight", nil)
            case "o_proj": return (block + "attn_output.weight", nil)
            case "gate_proj": return (block + "ffn_gate.weight", nil)
            case "up_proj": return (block + "ffn_up.weight", nil)
            default: return (block + "ffn_down.weight", nil)
            }
        }
        try self.init(c, embedding: embedding) { path, inFeatures, outFeatures in
            let (name, heads) = ggufName(path)
            _ = try checkedInfo(name, shape: [outFeatures, inFeatures])
            if quantizedWeights, let matrix = try file.quantizedMatrix(name) {
                if let heads { matrix.permuteRows(Self.transformersRowOrder(rows: outFeatures, heads: heads)) }
                return Linear(quantized: matrix)
            }
            return Linear(weight: try tensor(name, shape: [outFeatures, inFeatures], heads: heads), bias: nil)
        }
        for (index, block) in decoder.blocks.enumerated() {
            try load("blk.\(index).attn_norm.weight", into: block.inputNorm.weight)
            try load("blk.\(index).ffn_norm.weight", into: block.postAttentionNorm.weight)
        }
        try load("output_norm.weight", into: decoder.norm.weight)
        if quantizedWeights && head == nil { tiedHeadQuantized = try file.quantizedMatrix("token_embd.weight") }
    }

    /// For a GGUF q or k projection of `rows` rows: transformers' row i is GGUF row `order[i]` (see
    /// `unpermuteRotaryRows`).
    static func transformersRowOrder(rows: Int, heads: Int) -> [Int] {
        let headRows = rows / heads, half = headRows / 2
        var order = [Int](repeating: 0, count: rows)
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 { order[h * headRows + j * half + i] = h * headRows + 2 * i + j }
            }
        }
        return order
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
