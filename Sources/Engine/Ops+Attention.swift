import BLASBinding

// Multi-head scaled dot-product attention as one fused op.

/// softmax(Q K^T * scale + mask) V per head, for q, k, v of shape [B, N, H*D] (heads interleaved in the
/// last dimension as produced by the query/key/value projections), giving [B, N, H*D]. No transposes are
/// materialised: each head is a strided view with leading dimension H*D.
///
/// `keyMask`, if given, holds B*N additive values (0 to attend, -infinity to ignore a key), e.g. padding.
/// The forward keeps the attention probabilities P [B, H, N, N] for the backward:
/// dP = dO V^T; dS = P * (dP - rowsum(dP * P)); dQ = scale dS K; dK = scale dS^T Q; dV = P^T dO.
public func scaledDotProductAttention(
    query q: Tensor, key k: Tensor, value v: Tensor, heads: Int, keyMask: [Float]? = nil
) -> Tensor {
    precondition(q.rank == 3 && q.shape == k.shape && q.shape == v.shape,
                 "attention: query \(q.shape), key \(k.shape), value \(v.shape) must all be [B, N, C]")
    let batch = q.shape[0], tokens = q.shape[1], width = q.shape[2]
    precondition(width % heads == 0, "attention: width \(width) not divisible by \(heads) heads")
    if let keyMask { precondition(keyMask.count == batch * tokens, "attention: key mask needs \(batch * tokens) values") }
    let headDim = width / heads
    let scale = 1 / Float(headDim).squareRoot()
    let probabilities = Tensor(uninitialized: [batch, heads, tokens, tokens])
    let out = Tensor(uninitialized: q.shape)
    let pq = q.data, pk = k.data, pv = v.data, pp = probabilities.data, po = out.data
    let mask = keyMask
    // Per head: scores (N x N x D) and output (N x D x N) products, 2 FLOPs per multiply-add.
    let productFLOPs = 2 * Double(tokens) * Double(tokens) * Double(headDim) * Double(batch * heads)
    if Profiler.enabledFlag { Profiler.countAttention(2 * productFLOPs) }
    forEachHead(batch * heads) { pair in
        let b = pair / heads, h = pair % heads
        let offset = b * tokens * width + h * headDim
        let scores = pp + pair * tokens * tokens
        blas.sgemm(transA: false, transB: true, m: tokens, n: tokens, k: headDim, alpha: scale,
                   a: pq + offset, lda: width, b: pk + offset, ldb: width, c: scores, ldc: tokens)
        for i in 0..<tokens {
            let row = scores + i * tokens
            if let mask { for j in 0..<tokens { row[j] += mask[b * tokens + j] } }
            softmaxRowInPlace(row, tokens)
        }
        blas.sgemm(transA: false, transB: false, m: tokens, n: headDim, k: tokens,
                   a: scores, lda: tokens, b: pv + offset, ldb: width, c: po + offset, ldc: width)
    }
    return out.recording("attention", [q, k, v]) { g in
        let pp = probabilities.data  // keeps the saved probabilities alive with the graph
        let pg = g.data
        let gq = q.needsGrad ? q.gradPointer() : nil
        let gk = k.needsGrad ? k.gradPointer() : nil
        let gv = v.needsGrad ? v.gradPointer() : nil
        let scratch = Tensor(uninitialized: [Parallel.workerCount, tokens, tokens])
        if Profiler.enabledFlag {
            let products = (gv != nil ? 1 : 0) + (gq != nil || gk != nil ? 1 : 0) + (gq != nil ? 1 : 0) + (gk != nil ? 1 : 0)
            Profiler.countAttention(Double(products) * productFLOPs)
        }
        forEachHead(batch * heads) { pair, worker in
            let b = pair / heads, h = pair % heads
            let offset = b * tokens * width + h * headDim
            let probs = pp + pair * tokens * tokens
            if let gv {
                blas.sgemm(transA: true, transB: false, m: tokens, n: headDim, k: tokens,
                           a: probs, lda: tokens, b: pg + offset, ldb: width, beta: 1, c: gv + offset, ldc: width)
            }
            if gq == nil && gk == nil { return }
            let dScores = scratch.data + worker * tokens * tokens
            blas.sgemm(transA: false, transB: true, m: tokens, n: tokens, k: headDim,
                       a: pg + offset, lda: width, b: pv + offset, ldb: width, c: dScores, ldc: tokens)
            for i in 0..<tokens {
                let p = probs + i * tokens, d = dScores + i * tokens
                var dot: Float = 0
                for j in 0..<tokens { dot += p[j] * d[j] }
                for j in 0..<tokens { d[j] = p[j] * (d[j] - dot) }
            }
            if let gq {
                blas.sgemm(transA: false, transB: false, m: tokens, n: headDim, k: tokens, alpha: scale,
                           a: dScores, lda: tokens, b: pk + offset, ldb: width, beta: 1, c: gq + offset, ldc: width)
            }
            if let gk {
                blas.sgemm(transA: true, transB: false, m: tokens, n: headDim, k: tokens, alpha: scale,
                           a: dScores, lda: tokens, b: pq + offset, ldb: width, beta: 1, c: gk + offset, ldc: width)
            }
        }
    }
}

/// Runs `body(pairIndex, worker)` for every (batch, head) pair, the pairs split over the cores.
/// Each worker makes single-threaded OpenBLAS calls.
func forEachHead(_ pairs: Int, _ body: (Int, Int) -> Void) {
    let workers = min(Parallel.workerCount, pairs)
    if workers <= 1 { for p in 0..<pairs { body(p, 0) }; return }
    DispatchQueueBridge.concurrentPerform(workers) { worker in
        var p = worker
        while p < pairs { body(p, worker); p += workers }
    }
}

func forEachHead(_ pairs: Int, _ body: (Int) -> Void) { forEachHead(pairs) { p, _ in body(p) } }
