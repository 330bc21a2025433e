import Engine

/// Something applied to a layer's output, y -> f(y), attached to a layer that accepts one (`OutputAdaptable`).
/// Its parameters appear under the layer's path, as a `LinearAdapter`'s do under its `Linear`.
public protocol OutputAdapter: Module {
    /// The adapted output for the layer's plain `output`.
    func callAsFunction(_ output: Tensor) -> Tensor
}

/// A layer whose output a method may transform (`LayerNorm`, the ViT's patch projection), with a channel-first
/// `weight` [D, ...] and `bias` [D] that an adapter may fold itself into.
public protocol OutputAdaptable: Module {
    var weight: Tensor { get }
    var bias: Tensor { get }
    /// Optional transform of the layer's output (see `OutputAdapter`).
    var outputAdapter: (any OutputAdapter)? { get set }
    /// Output adapters folded into `weight` and `bias`, most recent last (kept so they can be unfolded).
    var mergedOutputAdapters: [any OutputAdapter] { get set }
}

extension OutputAdaptable {
    /// `output` passed through the attached adapter, if any.
    public func adaptedOutput(_ output: Tensor) -> Tensor { outputAdapter.map { $0(output) } ?? output }
}
