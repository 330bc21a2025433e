/// The shape of a Llama-family causal language model (as in transformers' `LlamaConfig`).
public struct LlamaConfiguration: Sendable, Equatable, Codable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    /// Key/value heads (grouped-query attention: `heads` must be a multiple).
    public var keyValueHeads: Int
    /// RoPE base frequency.
    public var ropeBase: Float
    public var rmsNormEps: Float
    /// The longest sequence the model was trained for.
    public var contextLength: Int
    /// Whether the output head is the token embedding (no separate `lm_head.weight`).
    public var tiedEmbeddings: Bool

    public init(vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layers: Int, heads: Int,
                keyValueHeads: Int, ropeBase: Float = 10_000, rmsNormEps: Float = 1e-5, contextLength: Int = 2048,
                tiedEmbeddings: Bool = true) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layers = layers
        self.heads = heads
        self.keyValueHeads = keyValueHeads
        self.ropeBase = ropeBase
        self.rmsNormEps = rmsNormEps
        self.contextLength = contextLength
        self.tiedEmbeddings = tiedEmbeddings
    }

    /// Width of one attention head.
    public var headDimension: Int { hiddenSize / heads }

    /// Refuses shapes the model cannot be built with, naming the field.
    public func validate() throws -> LlamaConfiguration {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw LlamaError(message) } }
        for (name, value) in [("vocabulary size", vocabularySize), ("hidden size", hiddenSize),
                              ("feed-forward size", intermediateSize), ("block count", layers), ("head count", heads),
                              ("key/value head count", keyValueHeads), ("context length", contextLength)] {
            try check(value > 0 && value <= 1 << 24, "\(name) is \(value); it must be in 1...\(1 << 24)")
        }
        try check(hiddenSize % heads == 0, "hidden size \(hiddenSize) is not a multiple of the \(heads) heads")
        try check(headDimension % 2 == 0, "head width \(headDimension) must be even for rotary embeddings")
        try check(heads % keyValueHeads == 0, "\(heads) heads are not a multiple of the \(keyValueHeads) key/value heads")
        try check(ropeBase.isFinite && ropeBase > 1, "RoPE base is \(ropeBase); it must be above 1")
        try check(rmsNormEps.isFinite && rmsNormEps > 0, "RMSNorm eps is \(rmsNormEps); it must be positive")
        return self
    }
}

/// A Llama model or file that cannot be used, with what is wrong.
public struct LlamaError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
