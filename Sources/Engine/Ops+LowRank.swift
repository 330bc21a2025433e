// A linear layer plus a low-rank update in one op (LoRA's forward), so the update accumulates straight into the
// layer's output instead of going through three full-size intermediates (x A^T B^T, its scaled copy, the sum).

/// y = x W^T + bias + scale * (u A^T) B^T for x and u [..., in] (u is the input of the low-rank path: x itself, or
/// x after dropout), W [out, in], A [r, in], B [out, r].
///
/// Forward: one product for x W^T (the bias joins in its epilogue), h = u A^T [rows, r], then scale * h B^T is
/// accumulated into y (GEMM beta 1). Only h is kept beyond the inputs.
/// Backward, for g = dy: dx += g W; dW += g^T x (when W trains); dbias += column sums of g;
/// dB += scale g^T h; dh = scale g B; dA += dh^T u; du += dh A.
public func lowRankLinear(_ x: Tensor, weight: Tensor, bias: Tensor?, lowRankInput u: Tensor, a: Tensor, b: Tensor,
                          scale: Float) -> Tensor {
    precondition(weight.rank == 2 && a.rank == 2 && b.rank == 2,
                 "lowRankLinear: W, A and B must be matrices, got \(weight.shape), \(a.shape), \(b.shape)")
    let inFeatures = weight.shape[1], outFeatures = weight.shape[0], rank = a.shape[0]
    precondition(x.shape.last == inFeatures && u.shape == x.shape,
                 "lowRankLinear: inputs \(x.shape) and \(u.shape) must match and end in \(inFeatures)")
    precondition(a.shape[1] == inFeatures && b.shape == [outFeatures, rank],
                 "lowRankLinear: A \(a.shape) must be [r, \(inFeatures)] and B \(b.shape) [\(outFeatures), r]")
    if let bias { precondition(bias.count == outFeatures, "lowRankLinear: bias \(bias.shape) for \(outFeatures) outputs") }
    let rows = x.count / max(inFeatures, 1)
    let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outFeatures])
    gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures, a: x.data, lda: inFeatures,
         b: weight.data, ldb: inFeatures, bias: bias?.data, c: out.data, ldc: outFeatures, reducedPrecision: true)
    let h = Tensor(uninitialized: [rows, rank])
    gemm(transA: false, transB: true, m: rows, n: rank, k: inFeatures, a: u.data, lda: inFeatures,
         b: a.data, ldb: inFeatures, c: h.data, ldc: rank)
    gemm(transA: false, transB: true, m: rows, n: outFeatures, k: rank, alpha: scale, a: h.data, lda: rank,
         b: b.data, ldb: rank, beta: 1, c: out.data, ldc: outFeatures)
    var inputs = [x, weight, u, a, b]
    if let bias { inputs.append(bias) }
    let xNode = x.node, uNode = u.node
    // x's values are kept only when W trains; u's when A trains.
    let savedX: Tensor? = weight.needsGrad ? x : nil
    let savedU: Tensor? = a.needsGrad ? u : nil
    return out.recording("lowRankLinear", inputs) { g in
        linearBackward(g, rows: rows, xNode: xNode, weight: weight, savedX: savedX, bias: bias)
        if b.needsGrad {
            gemm(transA: true, transB: false, m: outFeatures, n: rank, k: rows, alpha: scale, a: g.data, lda: outFeatures,
                 b: h.data, ldb: rank, beta: 1, c: b.gradPointer(), ldc: rank)
        }
        guard a.needsGrad || uNode.needsGrad else { return }
        let dh = Tensor(uninitialized: [rows, rank])
        gemm(transA: false, transB: false, m: rows, n: rank, k: outFeatures, alpha: scale, a: g.data, lda: outFeatures,
             b: b.data, ldb: rank, c: dh.data, ldc: rank)
        if let savedU, a.needsGrad {
            gemm(transA: true, transB: false, m: rank, n: inFeatures, k: rows, a: dh.data, lda: rank,
                 b: savedU.data, ldb: inFeatures, beta: 1, c: a.gradPointer(), ldc: inFeatures)
        }
        if uNode.needsGrad {
            gemm(transA: false, transB: false, m: rows, n: inFeatures, k: rank, a: dh.data, lda: rank,
                 b: a.data, ldb: inFeatures, beta: 1, c: uNode.gradPointer(), ldc: inFeatures)
        }
    }
}
