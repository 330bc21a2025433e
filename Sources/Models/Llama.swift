import Engine
import Layers

/// Makes the bias-free projection at a transformers path (`model.layers.N.self_attn.q_proj`) of given in and out
/// features: random, empty for loading, or quantised from a GGUF file.
typealias LlamaLinearFactory = (_ path: String, _ inFeatures: Int, _ outFeatures: Int) throws -> Linear

/// Holds a generator for a factory closure (closures cannot capture `inout`).
final class GeneratorBox {
    var generator: RandomGenerator
    init(_ generator: RandomGenerator) { self.generator = generator }
}

/// A Llama block's self-attention: q, k, v and output projections (no biases), rotary positions on q and k,
/// grouped-query attention with a causal mask.
public final class LlamaAttention: Module {
    public let query, key, value, output: Linear
    let heads: Int, keyValueHeads: Int

    init(_ c: LlamaConfiguration, layer: Int, make: LlamaLinearFactory) throws {
        let kvWidth = c.keyValueHeads * c.headDimension, prefix = "model.layers.\(layer).self_attn."
        query = try make(prefix + "q_proj", c.hiddenSize, c.hiddenSize)
        key = try make(prefix + "k_proj", c.hiddenSize, kvWidth)
        value = try make(prefix + "v_proj", c.hiddenSize, kvWidth)
        output = try make(prefix + "o_proj", c.hiddenSize, c.hiddenSize)
        heads = c.heads
        keyValueHeads = c.keyValueHeads
    }

    public var children: [(String, any Module)] {
        [("q_proj", query), ("k_proj", key), ("v_proj", value), ("o_proj", output)]
    }

    /// x [B, N, D] -> [B, N, D]: q and k rotated by `angles`, then `mix(q, k, v)` (causal attention over the
    /// sequence, or over a KV cache) and the output projection.
    func callAsFunction(_ x: Tensor, angles: RotaryAngles, mix: (Tensor, Tensor, Tensor) -> Tensor) -> Tensor {
        let q = rotaryEmbedding(query(x), heads: heads, angles: angles)
        let k = rotaryEmbedding(key(x), heads: keyValueHeads, angles: angles)
        return output(mix(q, k, value(x)))
    }

    /// Causal grouped-query attention over the sequence itself; `keyMask` (B * N additive values) hides padding.
    func causalMix(_ q: Tensor, _ k: Tensor, _ v: Tensor, keyMask: [Float]?) -> Tensor {
        let groups = heads / keyValueHeads
        return scaledDotProductAttention(
            query: q, key: repeatHeads(k, heads: keyValueHeads, groups: groups),
            value: repeatHeads(v, heads: keyValueHeads, groups: groups), heads: heads, keyMask: keyMask, causal: true)
    }
}

/// A Llama block's SwiGLU feed-forward: down(silu(gate(x)) * up(x)).
public final class LlamaMLP: Module {
    public let gate, up, down: Linear

    init(_ c: LlamaConfiguration, layer: Int, make: LlamaLinearFactory) throws {
        let prefix = "model.layers.\(layer).mlp."
        gate = try make(prefix + "gate_proj", c.hiddenSize, c.intermediateSize)
        up = try make(prefix + "up_proj", c.hiddenSize, c.intermediateSize)
        down = try make(prefix + "down_proj", c.intermediateSize, c.hiddenSize)
    }

    public var children: [(String, any Module)] { [("gate_proj", gate), ("up_proj", up), ("down_proj", down)] }

    func callAsFunction(_ x: Tensor) -> Tensor { down(silu(gate(x)) * up(x)) }
}

/// One pre-norm decoder block: h = x + attention(norm(x)); out = h + mlp(norm(h)).
public final class LlamaBlock: Module {
    public let inputNorm: RMSNorm
    public let attention: LlamaAttention
    public let postAttentionNorm: RMSNorm
    public let mlp: LlamaMLP

    init(_ c: LlamaConfiguration, layer: Int, make: LlamaLinearFactory) throws {
        inputNorm = RMSNorm(dimension: c.hiddenSize, eps: c.rmsNormEps)
        attention = try LlamaAttention(c, layer: layer, make: make)
        postAttentionNorm = RMSNorm(dimension: c.hiddenSize, eps: c.rmsNormEps)
        mlp = try LlamaMLP(c, layer: layer, make: make)
    }

    public var children: [(String, any Module)] {
        [("input_layernorm", inputNorm), ("self_attn", attention), ("post_attention_layernorm", postAttentionNorm),
         ("mlp", mlp)]
    }

    func callAsFunction(_ x: Tensor, angles: RotaryAngles, mix: (Tensor, Tensor, Tensor) -> Tensor) -> Tensor {
        let h = x + attention(inputNorm(x), angles: angles, mix: mix)
        return h + mlp(postAttentionNorm(h))
    }
}

/// The decoder stack under transformers' `model.`: token embedding, blocks, final norm.
public final class LlamaDecoder: Module {
    public let embedding: Embedding
    public let blocks: [LlamaBlock]
    public let norm: RMSNorm

    init(_ c: LlamaConfiguration, embedding: Embedding, make: LlamaLinearFactory) throws {
        self.embedding = embedding
        blocks = try (0..<c.layers).map { try LlamaBlock(c, layer: $0, make: make) }
        norm = RMSNorm(dimension: c.hiddenSize, eps: c.rmsNormEps)
    }

    public var children: [(String, any Module)] {
        [("embed_tokens", embedding), ("layers", ModuleList(blocks)), ("norm", norm)]
    }
}

/// A Llama-family causal language model (transformers' `LlamaForCausalLM`): parameter paths are transformers'
/// (`model.layers.0.self_attn.q_proj.weight`, `model.embed_tokens.weight`, `lm_head.weight` when not tied), and
/// q_proj / k_proj rows are in transformers' order (the rotate-half layout), so adapters mean the same to peft.
public final class LlamaModel: Module {
    public let configuration: LlamaConfiguration
    public let decoder: LlamaDecoder
    /// The output head; nil when tied to the token embedding.
    public let head: Linear?
    /// With a tied head and quantised weights (`init(gguf:quantizedWeights:)`): the token embedding as the file
    /// stores it, which the logits read instead of the float32 table (at one token per row that product reads the
    /// whole table: 113 MB as float32, 30 MB as Q8_0). Unused while the embedding trains.
    public internal(set) var tiedHeadQuantized: QuantizedMatrix?
    /// Gradient checkpointing: while the graph is recorded, each block keeps only its input, and the backward runs
    /// the block again to get what it needs (`checkpointed`): activation memory of one block instead of all of them,
    /// for about one more forward pass per step. Gradients are the same as without it.
    public var gradientCheckpointing = false

    /// A model with random weights (N(0, 0.02^2) projections and embedding, unit norms).
    public convenience init(_ configuration: LlamaConfiguration, seed: UInt64 = 0) throws {
        let configuration = try configuration.validate()  // before any allocation sized by it
        let box = GeneratorBox(RandomGenerator(seed: seed))
        let embedding = Embedding(count: configuration.vocabularySize, dimension: configuration.hiddenSize,
                                  generator: &box.generator)
        try self.init(configuration, embedding: embedding) { _, inFeatures, outFeatures in
            Linear(inFeatures: inFeatures, outFeatures: outFeatures, bias: false, generator: &box.generator)
        }
    }

    /// A model whose projections (and untied head, `lm_head`) come from `make(path, in, out)`, path being
    /// transformers' (`model.layers.0.self_attn.q_proj`).
    init(_ configuration: LlamaConfiguration, embedding: Embedding, make: LlamaLinearFactory) throws {
        self.configuration = try configuration.validate()
        decoder = try LlamaDecoder(configuration, embedding: embedding, make: make)
        head = configuration.tiedEmbeddings ? nil
            : try make("lm_head", configuration.hiddenSize, configuration.vocabularySize)
    }

    public var children: [(String, any Module)] {
        [("model", decoder)] + (head.map { [("lm_head", $0 as any Module)] } ?? [])
    }

    /// Hidden states after the final norm, [B, N, D], for token ids [B][N] (all rows the same length). Positions
    /// count from 0 at the first token that is not masked; `attentionMask` (B x N, 1 for a token, 0 for padding)
    /// hides padding from every query.
    public func hiddenStates(_ ids: [[Int32]], attentionMask: [[Int]]? = nil) throws -> Tensor {
        let batch = ids.count, length = ids.first?.count ?? 0
        guard batch > 0, length > 0, ids.allSatisfy({ $0.count == length }) else {
            throw LlamaError("token ids must be \(batch) non-empty rows of one length")
        }
        guard length <= configuration.contextLength else {
            throw LlamaError("\(length) tokens exceed the model's context of \(configuration.contextLength)")
        }
        try checkTokenIDs(ids)
        var positions = [Int](repeating: 0, count: batch * length)
        var keyMask: [Float]?
        if let attentionMask {
            guard attentionMask.count == batch, attentionMask.allSatisfy({ $0.count == length }) else {
                throw LlamaError("the attention mask must be \(batch) x \(length)")
            }
            var mask = [Float](repeating: 0, count: batch * length)
            for b in 0..<batch {
                var next = 0
                for t in 0..<length {
                    if attentionMask[b][t] == 0 { mask[b * length + t] = -.infinity } else { positions[b * length + t] = next; next += 1 }
                }
            }
            keyMask = mask
        } else {
            for b in 0..<batch { for t in 0..<length { positions[b * length + t] = t } }
        }
        let angles = RotaryAngles(positions: positions, headDimension: configuration.headDimension, base: configuration.ropeBase)
        var x = decoder.embedding(ids.flatMap { $0 }, shape: [batch, length])
        for block in decoder.blocks {
            let run = { (input: Tensor) in
                block(input, angles: angles) { q, k, v in block.attention.causalMix(q, k, v, keyMask: keyMask) }
            }
            x = gradientCheckpointing ? checkpointed(x, parameters: block.parameters, run) : run(x)
        }
        return decoder.norm(x)
    }

    /// Refuses token ids outside the vocabulary.
    func checkTokenIDs(_ ids: [[Int32]]) throws {
        for row in ids {
            if let bad = row.first(where: { $0 < 0 || Int($0) >= configuration.vocabularySize }) {
                throw LlamaError("token id \(bad) is outside the vocabulary 0..<\(configuration.vocabularySize)")
            }
        }
    }

    /// Next-token logits [B, N, vocabulary] for token ids [B][N].
    public func logits(_ ids: [[Int32]], attentionMask: [[Int]]? = nil) throws -> Tensor {
        let hidden = try hiddenStates(ids, attentionMask: attentionMask)
        return outputLogits(hidden)
    }

    /// Logits for final hidden states [..., D]: the head, or the token embedding when tied (read from its
    /// quantised copy while the embedding does not train, see `tiedHeadQuantized`).
    func outputLogits(_ hidden: Tensor) -> Tensor {
        if let head { return head(hidden) }
        if let tiedHeadQuantized, !decoder.embedding.weight.requiresGrad { return quantizedLinear(hidden, tiedHeadQuantized) }
        return linear(hidden, decoder.embedding.weight)
    }
}

extension LlamaModel {
    /// The next-token loss: mean cross-entropy of predicting token t + 1 from tokens 0...t, over the targets that
    /// `lossMask` keeps (B x N, true where the token is a target, e.g. completion tokens; nil: every real token) and
    /// that the attention mask does not mark as padding.
    public func languageModelLoss(_ ids: [[Int32]], attentionMask: [[Int]]? = nil, lossMask: [[Bool]]? = nil) throws -> Tensor {
        let logits = try logits(ids, attentionMask: attentionMask)
        let batch = ids.count, length = ids[0].count
        if let lossMask, lossMask.count != batch || !lossMask.allSatisfy({ $0.count == length }) {
            throw LlamaError("the loss mask must be \(batch) x \(length)")
        }
        var targets = [Int](repeating: -100, count: batch * length)
        for b in 0..<batch {
            for t in 0..<(length - 1) {
                let next = t + 1
                let real = (attentionMask?[b][next] ?? 1) != 0 && (attentionMask?[b][t] ?? 1) != 0
                if real && (lossMask?[b][next] ?? true) { targets[b * length + t] = Int(ids[b][next]) }
            }
        }
        return tokenCrossEntropy(logits.reshaped([batch * length, configuration.vocabularySize]), targets: targets)
    }
}
