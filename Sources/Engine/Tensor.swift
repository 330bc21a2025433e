import Foundation

/// Contiguous float32 memory, 64-byte aligned, owned by one or more tensors (views share it).
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    /// Keeps alive whatever owns memory this storage borrows (e.g. a memory-mapped file); nil when we own it.
    private let owner: AnyObject?

    /// Allocates `count` floats, zero-filled when `zeroed`.
    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        let raw = BufferPool.shared.allocate(count)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { pointer.initialize(repeating: 0, count: count) }
        owner = nil
    }

    /// Wraps memory owned by `owner` (it is kept alive as long as this storage is).
    public init(borrowing pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.pointer = pointer
        self.count = count
        self.owner = owner
    }

    deinit {
        if owner == nil { BufferPool.shared.release(UnsafeMutableRawPointer(pointer), count: count) }
    }
}

/// Errors about tensor shapes and values, thrown at API boundaries.
public struct TensorError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A float32 tensor in row-major order, a node of the autograd graph.
///
/// Tensors are reference types: the autograd graph links a result to the tensors it was computed from, and
/// parameters are updated in place by optimisers. `data` points at `count` contiguous floats.
public final class Tensor: @unchecked Sendable {
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// Number of elements (product of `shape`).
    public let count: Int
    /// The memory; views made by `reshaped` share it.
    public let storage: TensorStorage
    /// This tensor's place in the autograd graph (its gradient and how it was computed). The graph links nodes,
    /// not tensors, so a tensor whose values no backward needs is freed as soon as the program drops it.
    let node: GradNode
    /// When true, `backward()` computes a gradient for this tensor (a leaf) into `grad`.
    public var requiresGrad: Bool {
        get { node.requiresGrad }
        set { node.requiresGrad = newValue }
    }
    /// The accumulated gradient after `backward()`, same shape.
    public var grad: Tensor? {
        get { node.grad }
        set { node.grad = newValue }
    }
    /// Optional name used in error messages (parameter path, op name).
    public var name: String?
    /// How this tensor was computed, for backward; nil for leaves and for results computed without grad.
    var gradFunction: GradFunction? {
        get { node.gradFunction }
        set { node.gradFunction = newValue }
    }

    /// A zero-filled tensor.
    public init(zeros shape: [Int], requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.storage = TensorStorage(count: count, zeroed: true)
        self.node = GradNode(shape: shape, requiresGrad: requiresGrad)
    }

    /// An uninitialised tensor, for kernels that write every element.
    public init(uninitialized shape: [Int]) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.storage = TensorStorage(count: count, zeroed: false)
        self.node = GradNode(shape: shape, requiresGrad: false)
    }

    /// A tensor holding a copy of `values`; their count must equal the shape's product.
    public init(shape: [Int], values: [Float], requiresGrad: Bool = false) {
        let n = shape.reduce(1, *)
        precondition(n == values.count, "shape \(shape) needs \(n) values, got \(values.count)")
        self.shape = shape
        self.count = n
        let storage = TensorStorage(count: n, zeroed: false)
        values.withUnsafeBufferPointer { if n > 0 { storage.pointer.update(from: $0.baseAddress!, count: n) } }
        self.storage = storage
        self.node = GradNode(shape: shape, requiresGrad: requiresGrad)
    }

    /// A tensor filled with `value`.
    public convenience init(shape: [Int], repeating value: Float, requiresGrad: Bool = false) {
        self.init(uninitialized: shape)
        data.update(repeating: value, count: count)
        self.requiresGrad = requiresGrad
    }

    /// A tensor over existing storage (used for views and for memory-mapped weights).
    public init(shape: [Int], storage: TensorStorage) {
        let n = shape.reduce(1, *)
        precondition(n <= storage.count, "shape \(shape) does not fit a storage of \(storage.count) floats")
        self.shape = shape
        self.count = n
        self.storage = storage
        self.node = GradNode(shape: shape, requiresGrad: false)
    }

    /// A scalar (rank-0) tensor.
    public convenience init(scalar: Float) { self.init(shape: [], values: [scalar]) }

    /// Pointer to the first element.
    @inline(__always) public var data: UnsafeMutablePointer<Float> { storage.pointer }
    /// The elements as a buffer.
    @inline(__always) public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: storage.pointer, count: count)
    }
    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// The elements copied into an array.
    public var values: [Float] { Array(buffer) }
    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item needs a one-element tensor, shape is \(shape)")
        return data[0]
    }
    /// Element at a multi-index (for tests and small tools; not fast).
    public subscript(_ index: Int...) -> Float {
        get { data[flatIndex(index)] }
        set { data[flatIndex(index)] = newValue }
    }
    private func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) for shape \(shape)")
        var flat = 0
        for (i, dim) in zip(index, shape) { precondition(i >= 0 && i < dim); flat = flat * dim + i }
        return flat
    }

    /// True when backward must reach this tensor: a leaf that requires grad or a result computed from one.
    @inline(__always) public var needsGrad: Bool { node.needsGrad }

    /// A copy detached from the graph (new storage).
    public func copy() -> Tensor {
        let result = Tensor(uninitialized: shape)
        result.data.update(from: data, count: count)
        return result
    }

    /// The same values, not connected to the graph (shares storage).
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// Overwrites the values with those of `other` (same count), outside the graph.
    public func assign(_ other: Tensor) {
        precondition(other.count == count, "assign: \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    /// Number of dimensions of size n, with negative axes counted from the end.
    public func normalizedAxis(_ axis: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < rank, "axis \(axis) out of range for shape \(shape)")
        return a
    }

    /// Gradient buffer for backward kernels, allocated zeroed on first use; kernels accumulate (+=) into it.
    @inline(__always) func gradPointer() -> UnsafeMutablePointer<Float> { node.gradPointer() }

    /// See `GradNode.gradPointerForWriting`.
    @inline(__always) func gradPointerForWriting() -> (pointer: UnsafeMutablePointer<Float>, fresh: Bool) {
        node.gradPointerForWriting()
    }
}

/// A tensor's node in the autograd graph: its gradient, whether it wants one, and the function that produced it.
/// Backward closures hold the nodes of their inputs (to accumulate gradients) and hold input tensors only when
/// they need their values.
final class GradNode {
    let shape: [Int]
    var requiresGrad: Bool
    var grad: Tensor?
    var gradFunction: GradFunction?

    init(shape: [Int], requiresGrad: Bool) {
        self.shape = shape
        self.requiresGrad = requiresGrad
    }

    /// True when backward must reach this node: a leaf that requires grad or a result computed from one.
    @inline(__always) var needsGrad: Bool { requiresGrad || gradFunction != nil }

    /// Gradient buffer, allocated zeroed on first use; kernels accumulate (+=) into it.
    @inline(__always) func gradPointer() -> UnsafeMutablePointer<Float> {
        if let g = grad { return g.data }
        let g = Tensor(zeros: shape)
        grad = g
        return g.data
    }

    /// Gradient buffer for a backward kernel that writes every element: when there is no gradient yet, an
    /// uninitialised buffer and `fresh` true (the kernel stores, saving the zero fill and a read); else the existing
    /// buffer and `fresh` false (the kernel adds).
    @inline(__always) func gradPointerForWriting() -> (pointer: UnsafeMutablePointer<Float>, fresh: Bool) {
        if let g = grad { return (g.data, false) }
        let g = Tensor(uninitialized: shape)
        grad = g
        return (g.data, true)
    }

    /// Hands `gradient`'s buffer over as this node's gradient when it has none and is an intermediate result (so
    /// nothing else reads the buffer); returns false when the caller must accumulate instead. For ops whose input
    /// gradient equals the output gradient (add, reshape); the caller must not use `gradient` afterwards.
    @inline(__always) func adoptGradient(_ gradient: Tensor) -> Bool {
        guard grad == nil, !requiresGrad, gradient.count == shape.reduce(1, *) else { return false }
        grad = gradient.shape == shape ? gradient : Tensor(shape: shape, storage: gradient.storage)
        return true
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = buffer.prefix(8).map { String(format: "%.5g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape)\(name.map { " " + $0 } ?? ""): [\(preview)\(count > 8 ? ", ..." : "")])"
    }
}
