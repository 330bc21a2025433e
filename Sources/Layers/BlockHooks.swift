import Engine

/// A module that maps a block's residual stream [B, N, D] to a tensor of the same shape.
public protocol StreamModule: Module {
    func callAsFunction(_ stream: Tensor) -> Tensor
}

/// The generic extension points of a transformer block, the same on every architecture. A method adds modules
/// here instead of the block knowing the method; the block's architecture decides where each point lies.
///
/// - `afterAttention`: each module's output is added to the stream right after the attention sub-layer,
///   h <- h + f(h) (pre-norm: after the attention residual add; post-norm: after the attention LayerNorm).
/// - `besideFeedForward`: each module is fed the feed-forward sub-layer's input and its output is added where the
///   feed-forward output is (a parallel branch).
/// - `afterFeedForward`: each module's output is added to the block's output stream, h <- h + f(h) (after the
///   feed-forward residual add; post-norm: after its LayerNorm).
/// - observers (`addObserver(at:)`): called with the stream at `afterAttention` or `afterFeedForward`, after that
///   point's modules (importance scoring); not saved.
///
/// Modules are saved under their names (`adapter.*`, `residual_map.*`) below the block's path.
public final class BlockHooks {
    public private(set) var afterAttention: [(name: String, module: any StreamModule)] = []
    public private(set) var besideFeedForward: [(name: String, module: any StreamModule)] = []
    public private(set) var afterFeedForward: [(name: String, module: any StreamModule)] = []
    private var observers: [Point: [(Tensor) -> Void]] = [:]

    public init() {}

    /// Where a hook module goes.
    public enum Point: Sendable, CaseIterable { case afterAttention, besideFeedForward, afterFeedForward }

    /// Calls `observer` with the stream at `point` on every forward pass (`afterAttention` or `afterFeedForward`;
    /// `besideFeedForward` has no single stream to observe) until `removeLastObserver(at:)`.
    public func addObserver(at point: Point, _ observer: @escaping (Tensor) -> Void) {
        observers[point, default: []].append(observer)
    }

    /// Removes the observer added last at `point`.
    public func removeLastObserver(at point: Point) {
        _ = observers[point]?.popLast()
    }

    /// `stream` with the modules of `point` added, h <- h + f(h), then shown to the point's observers.
    func apply(_ point: Point, to stream: Tensor) -> Tensor {
        var h = stream
        for entry in modules(at: point) { h = h + entry.module(h) }
        for observer in observers[point] ?? [] { observer(h) }
        return h
    }

    /// The modules attached at `point`.
    public func modules(at point: Point) -> [(name: String, module: any StreamModule)] {
        switch point {
        case .afterAttention: return afterAttention
        case .besideFeedForward: return besideFeedForward
        case .afterFeedForward: return afterFeedForward
        }
    }

    /// Attaches `module` under `name` at `point`, replacing a module of that name; `nil` removes it.
    public func set(_ module: (any StreamModule)?, named name: String, at point: Point) {
        func update(_ list: inout [(name: String, module: any StreamModule)]) {
            if let index = list.firstIndex(where: { $0.name == name }) {
                if let module { list[index].module = module } else { list.remove(at: index) }
            } else if let module {
                list.append((name, module))
            }
        }
        switch point {
        case .afterAttention: update(&afterAttention)
        case .besideFeedForward: update(&besideFeedForward)
        case .afterFeedForward: update(&afterFeedForward)
        }
    }

    /// The module attached under `name` at either point.
    public func module(named name: String) -> (any StreamModule)? {
        (afterAttention + besideFeedForward + afterFeedForward).first { $0.name == name }?.module
    }

    /// Whether a module changes the block's function (observers do not).
    public var isEmpty: Bool { afterAttention.isEmpty && besideFeedForward.isEmpty && afterFeedForward.isEmpty }

    /// The attached modules as the block's extra children.
    public var children: [(String, any Module)] {
        (besideFeedForward + afterAttention + afterFeedForward).map { ($0.name, $0.module as any Module) }
    }

    /// The stream after the attention sub-layer, with the `afterAttention` modules added and observers called.
    public func applyAfterAttention(_ stream: Tensor) -> Tensor { apply(.afterAttention, to: stream) }

    /// The block's output with the `afterFeedForward` modules added and observers called.
    public func applyAfterFeedForward(_ stream: Tensor) -> Tensor { apply(.afterFeedForward, to: stream) }

    /// `output` plus every `besideFeedForward` branch applied to the feed-forward input `input`.
    public func addBranches(to output: Tensor, input: Tensor) -> Tensor {
        var result = output
        for entry in besideFeedForward { result = result + entry.module(input) }
        return result
    }
}

/// Inserts tokens into the sequence a stack of blocks processes (prompt tokens) and removes them at the end.
public protocol TokenInserter: Module {
    /// The tokens [B, N, D] entering block `index`, with their additive key mask (B * N values, or nil for none),
    /// turned into what the block sees.
    func insert(into tokens: Tensor, keyMask: [Float]?, beforeBlock index: Int) -> (tokens: Tensor, keyMask: [Float]?)
    /// The stack's output with the inserted tokens taken out again.
    func remove(from tokens: Tensor) -> Tensor
}

/// A stack of transformer blocks that methods can adapt without knowing the architecture: the ViT and the BERT
/// encoder both conform.
public protocol TransformerBackbone: Module {
    /// Width of the residual stream.
    var width: Int { get }
    /// One `BlockHooks` per block, in order.
    var blockHooks: [BlockHooks] { get }
    /// Optional token insertion before each block (see `TokenInserter`), saved under `prompt_embeddings.*`.
    var tokenInserter: (any TokenInserter)? { get set }
    /// Fan-in of the layer that makes the input tokens (C p^2 for patch embeddings, the width for a lookup table),
    /// for initialising inserted tokens at the same scale.
    var tokenFanIn: Int { get }
}

extension TransformerBackbone {
    /// Runs `blocks` over `tokens`, inserting tokens before each block when an inserter is attached and removing
    /// them afterwards. `block(index, tokens, keyMask)` runs one block.
    public func runBlocks(_ count: Int, tokens: Tensor, keyMask: [Float]?,
                          _ block: (Int, Tensor, [Float]?) -> Tensor) -> Tensor {
        let inserter = tokenInserter
        var x = tokens, mask = keyMask
        for index in 0..<count {
            if let inserter { (x, mask) = inserter.insert(into: x, keyMask: mask, beforeBlock: index) }
            x = block(index, x, mask)
        }
        return inserter?.remove(from: x) ?? x
    }
}
