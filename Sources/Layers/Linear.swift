import Engine

/// Something that changes what a `Linear` layer computes (LoRA, SHiRA, ...). Given the input and the layer, it
/// returns the layer's output; `nil` adapters mean the plain y = x W^T + b. Its parameters appear under the
/// layer's path (e.g. `...query.lora_A.weight`), as in Hugging Face peft checkpoints.
public protocol LinearAdapter: Module {
    /// The adapted output for `input` [..., in].
    func forward(_ input: Tensor, base: Linear) -> Tensor
}

/// y = x W^T + b, with W [out, in] named `weight` and b [out] named `bias`.
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?
    /// Optional adapter that replaces the plain forward (see `LinearAdapter`).
    public var adapter: (any LinearAdapter)?
    /// Adapters merged into `weight`, most recent last (kept so they can be unmerged).
    public var mergedAdapters: [any LinearAdapter] = []

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// A layer with weights drawn from N(0, 0.02^2) and zero bias.
    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, generator: inout RandomGenerator) {
        weight = Tensor.randomNormal([outFeatures, inFeatures], std: 0.02, generator: &generator)
        self.bias = bias ? Tensor(zeros: [outFeatures]) : nil
    }

    /// A layer over given tensors.
    public init(weight: Tensor, bias: Tensor?) {
        precondition(weight.rank == 2, "Linear weight must be [out, in], got \(weight.shape)")
        self.weight = weight
        self.bias = bias
    }

    public var ownParameters: [(String, Tensor)] {
        var list = [("weight", weight)]
        if let bias { list.append(("bias", bias)) }
        if let adapter { list += adapter.namedParameters() }
        return list
    }

    public var children: [(String, any Module)] { [] }

    /// The output for `input` [..., in]: the adapter's if one is attached, else x W^T + b.
    public func callAsFunction(_ input: Tensor) -> Tensor {
        if let adapter { return adapter.forward(input, base: self) }
        return linear(input, weight, bias)
    }
}
