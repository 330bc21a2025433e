import Engine

/// A layer whose output can be followed by a per-channel scale-shift that folds into its weight and bias
/// (weight [D, ...] and bias [D], channel first).
public protocol ScaleShiftHost: Module {
    var weight: Tensor { get }
    var bias: Tensor { get }
    var scaleShift: (any ElementwiseAffine)? { get set }
    /// A scale-shift folded into weight and bias by a merge, with the weight and bias it replaced.
    var mergedScaleShift: (any ElementwiseAffine, Tensor, Tensor)? { get set }
}

/// LayerNorm over the last dimension with learnable `weight` (scale) and `bias` (shift).
public final class LayerNorm: ScaleShiftHost {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float
    /// Optional per-channel scale and shift applied to the output (RLRR's SSF), saved under its own names.
    public var scaleShift: (any ElementwiseAffine)?
    /// A scale-shift folded into weight and bias by a merge, with the values it replaced.
    public var mergedScaleShift: (any ElementwiseAffine, Tensor, Tensor)?

    /// weight = 1, bias = 0.
    public init(dimension: Int, eps: Float) {
        weight = Tensor(shape: [dimension], repeating: 1)
        bias = Tensor(zeros: [dimension])
        self.eps = eps
    }

    public var ownParameters: [(String, Tensor)] {
        [("weight", weight), ("bias", bias)] + (scaleShift?.namedParameters() ?? [])
    }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        let normalised = layerNorm(input, weight: weight, bias: bias, eps: eps)
        return scaleShift.map { $0(normalised) } ?? normalised
    }
}

/// A per-channel transform z -> z * s + t that follows a layer (see `LayerNorm.scaleShift`).
public protocol ElementwiseAffine: Module {
    var scale: Tensor { get }
    var shift: Tensor { get }
    func callAsFunction(_ x: Tensor) -> Tensor
}

/// A lookup table [count, dimension] named `weight`.
public final class Embedding: Module {
    public let weight: Tensor

    public init(count: Int, dimension: Int, generator: inout RandomGenerator) {
        weight = Tensor.randomNormal([count, dimension], std: 0.02, generator: &generator)
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
