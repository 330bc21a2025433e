import Engine

/// LayerNorm over the last dimension with learnable `weight` (scale) and `bias` (shift).
public final class LayerNorm: OutputAdaptable {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float
    public var outputAdapter: (any OutputAdapter)?
    public var mergedOutputAdapters: [any OutputAdapter] = []

    /// weight = 1, bias = 0.
    public init(dimension: Int, eps: Float) {
        weight = Tensor(shape: [dimension], repeating: 1)
        bias = Tensor(zeros: [dimension])
        self.eps = eps
    }

    public var ownParameters: [(String, Tensor)] {
        [("weight", weight), ("bias", bias)] + (outputAdapter?.namedParameters() ?? [])
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        adaptedOutput(layerNorm(input, weight: weight, bias: bias, eps: eps))
    }
}

/// A lookup table [count, dimension] named `weight`.
public final class Embedding: Module {
    public let weight: Tensor

    public init(count: Int, dimension: Int, generator: inout RandomGenerator) {
        weight = Tensor.randomNormal([count, dimension], std: 0.02, generator: &generator)
    }

    /// A table over a given tensor [count, dimension].
    public init(weight: Tensor) {
        precondition(weight.rank == 2, "Embedding weight must be [count, dimension], got \(weight.shape)")
        self.weight = weight
    }

    public var ownParameters: [(String, Tensor)] { [("weight", weight)] }

    /// Rows for `ids` laid out as `shape`.
    public func callAsFunction(_ ids: [Int32], shape: [Int]) -> Tensor {
        gatherRows(weight, indices: ids, indexShape: shape)
    }
}

/// A module holding a list of children named "0", "1", ...
public final class ModuleList<Element: Module>: Module {
    public var items: [Element]
    public init(_ items: [Element]) { self.items = items }
    public var children: [(String, any Module)] { items.enumerated().map { (String($0.offset), $0.element) } }
    public subscript(index: Int) -> Element { items[index] }
    public var count: Int { items.count }
}

/// RMSNorm over the last dimension with a learnable `weight` (Llama's norm: no mean, no shift).
public final class RMSNorm: Module {
    public let weight: Tensor
    public let eps: Float

    /// weight = 1.
    public init(dimension: Int, eps: Float) {
        weight = Tensor(shape: [dimension], repeating: 1)
        self.eps = eps
    }

    public var ownParameters: [(String, Tensor)] { [("weight", weight)] }

    public func callAsFunction(_ input: Tensor) -> Tensor { rmsNorm(input, weight: weight, eps: eps) }
}
