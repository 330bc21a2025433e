import Engine

/// Something that changes what a `Linear` layer computes (LoRA, SHiRA, ...). Given the input and the layer, it
/// returns the layer's output; `nil` adapters mean the plain y = x W^T + b. Its parameters appear under the
/// layer's path (e.g. `...query.lora_A.weight`), as in Hugging Face peft checkpoints.
public protocol LinearAdapter: Module {
    /// The adapted output for `input` [..., in].
    func forward(_ input: Tensor, base: Linear) -> Tensor
}

/// y = x W^T + b, with W [out, in] named `weight` and b [out] named `bias`.
///
/// A layer may hold a frozen W in a block-quantised form instead (`init(quantized:bias:)`, e.g. the projections of
/// a GGUF model): its forward then multiplies with the quantised blocks (`quantizedLinear`) and no float32 copy
/// exists. Whatever reads `weight` (merging an adapter into it, SHiRA's scatter, NEAT's map of W, saving) gets a
/// float32 copy made on that first access, and from then on the layer computes with that copy.
public final class Linear: Module {
    /// W [out, in] in float32 (for a quantised layer, made on first access; see the type's note).
    public var weight: Tensor {
        if let storedWeight { return storedWeight }
        // Only a quantised layer has no stored weight.
        let expanded = quantizedWeight!.dequantized()
        storedWeight = expanded
        return expanded
    }
    public let bias: Tensor?
    /// The frozen quantised W this layer was made from, or nil.
    public let quantizedWeight: QuantizedMatrix?
    private var storedWeight: Tensor?

    /// True while the layer computes with its quantised W (no float32 copy made yet).
    public var computesQuantized: Bool { storedWeight == nil }
    /// Optional adapter that replaces the plain forward (see `LinearAdapter`).
    public var adapter: (any LinearAdapter)?
    /// Adapters merged into `weight`, most recent last (kept so they can be unmerged).
    public var mergedAdapters: [any LinearAdapter] = []

    public var inFeatures: Int { quantizedWeight?.columns ?? weight.shape[1] }
    public var outFeatures: Int { quantizedWeight?.rows ?? weight.shape[0] }

    /// A layer with weights drawn from N(0, 0.02^2) and zero bias.
    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, generator: inout RandomGenerator) {
        storedWeight = Tensor.randomNormal([outFeatures, inFeatures], std: 0.02, generator: &generator)
        self.bias = bias ? Tensor(zeros: [outFeatures]) : nil
        quantizedWeight = nil
    }

    /// A layer over given tensors.
    public init(weight: Tensor, bias: Tensor?) {
        precondition(weight.rank == 2, "Linear weight must be [out, in], got \(weight.shape)")
        storedWeight = weight
        self.bias = bias
        quantizedWeight = nil
    }

    /// A layer over a frozen quantised W [out, in] (see the type's note).
    public init(quantized: QuantizedMatrix, bias: Tensor? = nil) {
        if let bias { precondition(bias.count == quantized.rows, "Linear bias \(bias.shape) for \(quantized.rows) outputs") }
        quantizedWeight = quantized
        self.bias = bias
    }

    /// The plain output x W^T + b (no adapter): with the quantised W while the layer has no float32 copy.
    public func baseOutput(_ input: Tensor) -> Tensor {
        if storedWeight == nil, let quantizedWeight { return quantizedLinear(input, quantizedWeight, bias: bias) }
        return linear(input, weight, bias)
    }

    /// The parameters; a quantised W with no float32 copy yet is not listed (it is frozen and has no float32
    /// tensor; listing it would expand it).
    public var ownParameters: [(String, Tensor)] {
        var list: [(String, Tensor)] = computesQuantized && quantizedWeight != nil ? [] : [("weight", weight)]
        if let bias { list.append(("bias", bias)) }
        if let adapter { list += adapter.namedParameters() }
        return list
    }

    public var children: [(String, any Module)] { [] }

    /// The output for `input` [..., in]: the adapter's if one is attached, else x W^T + b.
    public func callAsFunction(_ input: Tensor) -> Tensor {
        if let adapter { return adapter.forward(input, base: self) }
        return baseOutput(input)
    }
}
