/// Gradient checkpointing: y = body(x), computed without keeping body's intermediate results; the backward runs
/// body again, this time recording its graph, and propagates the incoming gradient through it. Activation memory
/// for the part is then x and y alone instead of everything body computes inside, at the price of a second forward.
///
/// `parameters` are the tensors body reads that may need gradients (its trainable weights): they receive their
/// gradients during the re-run, accumulated (+=) as any use would. Body must compute the same values both times:
/// it runs again under the execution context of the forward (training mode, step seed, so seeded dropout draws the
/// same mask), and it must not depend on state that changes in between. Without grad mode, or when neither x nor
/// a parameter needs a gradient, this is just body(x).
public func checkpointed(_ x: Tensor, parameters: [Tensor], _ body: @escaping (Tensor) -> Tensor) -> Tensor {
    let trainable = parameters.filter(\.needsGrad)
    guard Autograd.isEnabled, x.needsGrad || !trainable.isEmpty else { return body(x) }
    let context = ExecutionContext.current
    let output = Autograd.withoutGrad { body(x) }
    // The result gets its own node: body may hand back a tensor that shares another one's storage.
    let y = output.detached()
    let input = x.detached(), inputNode = x.node
    return y.recording("checkpoint", [x] + trainable) { g in
        context.run {
            let leaf = input.detached()
            leaf.requiresGrad = inputNode.needsGrad
            body(leaf).backward(gradient: g)
            guard inputNode.needsGrad, let gradient = leaf.grad, !inputNode.adoptGradient(gradient) else { return }
            let gx = inputNode.gradPointer()
            for i in 0..<gradient.count { gx[i] += gradient.data[i] }
        }
    }
}
