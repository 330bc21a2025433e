import Foundation

/// How a tensor was computed: its inputs and the function that, given the tensor's gradient,
/// accumulates (+=) into the gradients of those inputs that need one.
struct GradFunction {
    let name: String
    let inputs: [GradNode]
    let backward: (_ outputGrad: Tensor) -> Void
}

/// Whether the autograd graph is built (like `torch.no_grad`): `ExecutionContext.current.recordsGraph`.
public enum Autograd {
    @inline(__always) static var enabledFlag: Bool { ExecutionContext.current.recordsGraph }

    /// Whether operations currently record the graph.
    public static var isEnabled: Bool { enabledFlag }

    /// Runs `body` without recording the graph (inference, evaluation, optimiser updates).
    public static func withoutGrad<T>(_ body: () throws -> T) rethrows -> T {
        try ExecutionContext.with({ $0.recordsGraph = false }, body)
    }
}

extension Tensor {
    /// Attaches a backward function when grad mode is on and any input needs a gradient; returns self.
    @discardableResult
    func recording(_ name: String, _ inputs: [Tensor], _ backward: @escaping (Tensor) -> Void) -> Tensor {
        if let profile = Profiler.active { profile.forwardOpFinished(name) }
        if Autograd.enabledFlag && inputs.contains(where: { $0.needsGrad }) {
            gradFunction = GradFunction(name: name, inputs: inputs.map(\.node), backward: backward)
        }
        return self
    }

    /// The operation that produced this tensor, if it is part of a graph.
    public var producerName: String? { gradFunction?.name }

    /// Reverse-mode differentiation from this tensor (a scalar unless `gradient` is given).
    ///
    /// Leaves with `requiresGrad` accumulate into `grad`; gradients of intermediate results are freed as soon
    /// as they have been propagated, and the graph is released afterwards.
    public func backward(gradient: Tensor? = nil) {
        if let gradient {
            precondition(gradient.shape == shape, "backward: gradient shape \(gradient.shape) != \(shape)")
            gradPointer().update(from: gradient.data, count: count)
        } else {
            precondition(count == 1, "backward() without a gradient needs a scalar, shape is \(shape)")
            gradPointer()[0] = 1
        }
        // Topological order by iterative depth-first search.
        var order: [GradNode] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(GradNode, Bool)] = [(node, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded { order.append(node); continue }
            let id = ObjectIdentifier(node)
            if visited.contains(id) { continue }
            visited.insert(id)
            stack.append((node, true))
            if let fn = node.gradFunction {
                for input in fn.inputs where input.needsGrad && !visited.contains(ObjectIdentifier(input)) {
                    stack.append((input, false))
                }
            }
        }
        let profile = Profiler.active
        for node in order.reversed() {
            guard let fn = node.gradFunction else { continue }
            if var g = node.grad {
                // Backward closures may hand `g`'s buffer to an input (add, reshape); a node that keeps its own
                // gradient (requiresGrad on a computed tensor) gives them a copy.
                if node.requiresGrad { g = g.copy() }
                if let profile {
                    let start = Profiler.now()
                    fn.backward(g)
                    profile.backwardOp(fn.name, seconds: Double(Profiler.now() &- start) / 1e9)
                } else {
                    fn.backward(g)
                }
            }
            node.gradFunction = nil
            if !node.requiresGrad { node.grad = nil }
        }
    }

    /// Sets the gradient to nil.
    public func zeroGrad() { grad = nil }
}

