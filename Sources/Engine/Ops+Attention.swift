import BF16Kernels
import BLASBinding
import Foundation
import VectorKernels

// Multi-head scaled dot-product attention as one fused op.

/// softmax(Q K^T * scale + mask) V per head, for q, k, v of shape [B, N, H*D] (heads interleaved in the
/// last dimension as produced by the query/key/value projections), giving [B, N, H*D]. No transposes are
/// materialised: each head is a strided view with leading dimension H*D.
///
/// `keyMask`, if given, holds B*N additive values (0 to attend, -infinity to ignore a key), e.g. padding. With
/// `causal`, query i attends to keys 0...i only (a decoder's mask); a query with no key left gets zero output.
/// Backward: dP = dO V^T; dS = P * (dP - rowsum(dP * P)); dQ = scale dS K; dK = scale dS^T Q; dV = P^T dO.
/// The probabilities P [B, H, N, N] are kept from the forward when N is at most
/// `AttentionSettings.recomputeAboveTokens`; above it (and without autograd) only one head's P exists at a
/// time, and the backward recomputes each head's P (one more Q K^T product and softmax per head).
public func scaledDotProductAttention(
    query q: Tensor, key k: Tensor, value v: Tensor, heads: Int, keyMask: [Float]? = nil, causal: Bool = false
) -> Tensor {
    precondition(q.rank == 3 && q.shape == k.shape && q.shape == v.shape,
                 "attention: query \(q.shape), key \(k.shape), value \(v.shape) must all be [B, N, C]")
    let batch = q.shape[0], tokens = q.shape[1], width = q.shape[2]
    precondition(width % heads == 0, "attention: width \(width) not divisible by \(heads) heads")
    if let keyMask { precondition(keyMask.count == batch * tokens, "attention: key mask needs \(batch * tokens) values") }
    let headDim = width / heads
    let scale = 1 / Float(headDim).squareRoot()
    let store = Autograd.isEnabled && tokens <= AttentionSettings.recomputeAboveTokens
    // Stored probabilities, or one N x N buffer per worker.
    let probabilities = Tensor(uninitialized: store ? [batch, heads, tokens, tokens] : [Parallel.workerCount, tokens, tokens])
    let out = Tensor(uninitialized: q.shape)
    let pq = q.data, pk = k.data, pv = v.data, po = out.data
    let products = HeadProducts(tokens: tokens, headDim: headDim)
    let forwardScratch = products.scratch()
    // Per head: scores (N x N x D) and output (N x D x N) products, 2 FLOPs per multiply-add.
    let productFLOPs = 2 * Double(tokens) * Double(tokens) * Double(headDim) * Double(batch * heads)
    Profiler.active?.countAttention(2 * productFLOPs)

    /// Where (batch, head) pair `pair`'s columns start in q, k, v and their gradients.
    func headOffset(_ pair: Int) -> Int { (pair / heads) * tokens * width + (pair % heads) * headDim }

    /// P = softmax(scale Q K^T + mask) of one (batch, head) pair into `scores` (N x N).
    func headProbabilities(_ pair: Int, _ scores: UnsafeMutablePointer<Float>, _ scratch: UnsafeMutablePointer<Float>) {
        let b = pair / heads, offset = headOffset(pair)
        products.gemm(transA: false, transB: true, m: tokens, n: tokens, k: headDim, alpha: scale,
                      a: pq + offset, lda: width, b: pk + offset, ldb: width, c: scores, ldc: tokens, scratch: scratch)
        for i in 0..<tokens {
            let row = scores + i * tokens
            if let keyMask { for j in 0..<tokens { row[j] += keyMask[b * tokens + j] } }
            if causal { for j in (i + 1)..<tokens { row[j] = -.infinity } }
            softmaxRowInPlace(row, tokens, kernels: products.kernels)
        }
    }

    forEachHead(batch * heads) { pair, worker in
        let offset = headOffset(pair)
        let scores = probabilities.data + (store ? pair : worker) * tokens * tokens
        let scratch = products.workerScratch(forwardScratch, worker)
        headProbabilities(pair, scores, scratch)
        products.gemm(transA: false, transB: false, m: tokens, n: headDim, k: tokens,
                      a: scores, lda: tokens, b: pv + offset, ldb: width, c: po + offset, ldc: width, scratch: scratch)
    }
    let saved = store ? probabilities : nil
    return out.recording("attention", [q, k, v]) { g in
        let pg = g.data
        // Each head's products write its own columns of dV, dQ and dK once, in that order: a fresh gradient buffer
        // is written (beta 0) instead of zero-filled and added to. Taken in the same order, so a tensor passed
        // twice gets its fresh buffer at its first write and is added to after.
        let (gv, vBeta) = gradientBuffer(v)
        let (gq, qBeta) = gradientBuffer(q)
        let (gk, kBeta) = gradientBuffer(k)
        // Per worker: dS, and P when it is recomputed.
        let scratch = Tensor(uninitialized: [Parallel.workerCount, saved == nil ? 2 : 1, tokens, tokens])
        let backwardScratch = products.scratch()
        if let profile = Profiler.active {
            let recompute = saved == nil ? 1 : 0
            let products = recompute + (gv != nil ? 1 : 0) + (gq != nil || gk != nil ? 1 : 0) + (gq != nil ? 1 : 0) + (gk != nil ? 1 : 0)
            profile.countAttention(Double(products) * productFLOPs)
        }
        forEachHead(batch * heads) { pair, worker in
            let offset = headOffset(pair)
            let operandScratch = products.workerScratch(backwardScratch, worker)
            let dScores = scratch.data + worker * scratch.shape[1] * tokens * tokens
            let probs: UnsafeMutablePointer<Float>
            if let saved {
                probs = saved.data + pair * tokens * tokens
            } else {
                probs = dScores + tokens * tokens
                headProbabilities(pair, probs, operandScratch)
            }
            if let gv {
                products.gemm(transA: true, transB: false, m: tokens, n: headDim, k: tokens,
                              a: probs, lda: tokens, b: pg + offset, ldb: width, beta: vBeta, c: gv + offset, ldc: width,
                              scratch: operandScratch)
            }
            if gq == nil && gk == nil { return }
            products.gemm(transA: false, transB: true, m: tokens, n: tokens, k: headDim,
                          a: pg + offset, lda: width, b: pv + offset, ldb: width, c: dScores, ldc: tokens,
                          scratch: operandScratch)
            if let kernels = products.kernels {
                kernels.softmaxBackwardRows(probs, dScores, tokens, tokens)
            } else {
                for i in 0..<tokens {
                    let p = probs + i * tokens, d = dScores + i * tokens
                    var dot: Float = 0
                    for j in 0..<tokens { dot += p[j] * d[j] }
                    for j in 0..<tokens { d[j] = p[j] * (d[j] - dot) }
                }
            }
            if let gq {
                products.gemm(transA: false, transB: false, m: tokens, n: headDim, k: tokens, alpha: scale,
                              a: dScores, lda: tokens, b: pk + offset, ldb: width, beta: qBeta, c: gq + offset, ldc: width,
                              scratch: operandScratch)
            }
            if let gk {
                products.gemm(transA: true, transB: false, m: tokens, n: headDim, k: tokens, alpha: scale,
                              a: dScores, lda: tokens, b: pq + offset, ldb: width, beta: kBeta, c: gk + offset, ldc: width,
                              scratch: operandScratch)
            }
        }
    }
}

/// The gradient buffer of `t` (nil when it needs none) and the beta for a product that writes every element
/// once: 0 into a fresh, uninitialised buffer, 1 to add to an existing gradient.
private func gradientBuffer(_ t: Tensor) -> (UnsafeMutablePointer<Float>?, Float) {
    guard t.needsGrad else { return (nil, 1) }
    let (pointer, fresh) = t.gradPointerForWriting()
    return (pointer, fresh ? 0 : 1)
}

/// Whether attention keeps its probabilities for the backward or recomputes them there.
public enum AttentionSettings {
    /// Sequences longer than this recompute P in the backward instead of keeping it: B x H x N^2 floats per
    /// block (1.2 GB over DINOv2-S's 12 blocks at 224 px, batch 32) against one extra Q K^T product and softmax
    /// per head. Starts from the environment variable `PEFT_ATTENTION_RECOMPUTE_ABOVE` (a token count).
    /// (`ExecutionContext.current.attentionRecomputeAboveTokens`.)
    public static var recomputeAboveTokens: Int { ExecutionContext.current.attentionRecomputeAboveTokens }
}

/// The per-head matrix products of attention. With AVX2 or AVX-512 and up to `smallKernelTokenLimit` tokens they
/// run on our register-blocked kernels: in float32 (a transposed B is first copied to per-worker scratch), or, when
/// `GEMMSettings` asks for bfloat16 and the AVX-512 kernels run, in bf16 with float32 accumulation (each operand converted to the pair layout
/// of VDPBF16PS in per-worker scratch; see BF16SmallKernels.c). A BLAS call on 65 x 64 matrices spends more
/// time packing and dispatching than multiplying (measured: 13 GFLOP/s for attention at 112 px through
/// OpenBLAS), so OpenBLAS serves only longer sequences.
struct HeadProducts {
    static let smallKernelTokenLimit = 1024
    let tokens: Int, headDim: Int, useSmallKernel: Bool, useBFloat16: Bool
    /// `ElementwiseKernels.table`, read once per op (it is a task-local read).
    let kernels: VectorKernelTable?
    /// Floats of scratch per worker.
    let scratchPerWorker: Int

    init(tokens: Int, headDim: Int) {
        self.tokens = tokens
        self.headDim = headDim
        kernels = ElementwiseKernels.table
        useSmallKernel = kernels != nil && tokens <= Self.smallKernelTokenLimit
        useBFloat16 = useSmallKernel && ElementwiseKernels.useAVX512 && GEMMSettings.usesBFloat16
        let side = max(tokens, headDim), pairs = (side + 1) / 2
        // bf16: A in row pairs, B in column pairs, and one buffer for an operand before its transpose.
        scratchPerWorker = !useSmallKernel ? 0 : useBFloat16 ? 3 * side * pairs : tokens * headDim
    }

    /// Scratch for the per-worker operand copies; empty with OpenBLAS.
    func scratch() -> Tensor {
        Tensor(uninitialized: [Parallel.workerCount * scratchPerWorker])
    }

    func workerScratch(_ scratch: Tensor, _ worker: Int) -> UnsafeMutablePointer<Float> {
        scratch.data + worker * scratchPerWorker
    }

    /// C = alpha op(A) op(B) + beta C, row-major (the same contract as `sgemm`).
    func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
              a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
              beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, scratch: UnsafeMutablePointer<Float>) {
        guard useSmallKernel, let kernels else {
            blas.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                       a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        if useBFloat16 {
            bfloat16Product(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
                            ldb: ldb, beta: beta, c: c, ldc: ldc, scratch: scratch)
            return
        }
        var b = b, ldb = ldb
        if transB {  // B is stored n x k: copy it transposed (the kernel reads B by rows)
            precondition(n * k <= tokens * headDim, "HeadProducts: transposed B larger than the scratch")
            kernels.transpose(b, ldb, n, k, scratch, n)
            b = UnsafePointer(scratch); ldb = n
        }
        // A transposed (stored k x m) is read through its strides, without a copy.
        kernels.smallGEMM(m, n, k, alpha, a, transA ? 1 : lda, transA ? lda : 1, b, ldb, beta, c, ldc)
    }

    /// The bf16 product: A to row pairs, B to column pairs (an operand stored the other way round is converted
    /// to the other layout, then transposed as 32-bit words), then the bf16 kernel.
    private func bfloat16Product(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let pairs = (k + 1) / 2
        let side = max(tokens, headDim), part = side * ((side + 1) / 2)
        precondition(max(m, n) <= side && pairs <= (side + 1) / 2, "HeadProducts: operand larger than the scratch")
        let words = UnsafeMutableRawPointer(scratch).assumingMemoryBound(to: UInt32.self)
        let aPairs = words, bPairs = words + part, staging = words + 2 * part
        /// Transposes a rows x cols block of 32-bit words (moved intact by the float transpose).
        func transposeWords(_ source: UnsafeMutablePointer<UInt32>, rows: Int, cols: Int,
                            into destination: UnsafeMutablePointer<UInt32>) {
            let from = UnsafeMutableRawPointer(source).assumingMemoryBound(to: Float.self)
            let to = UnsafeMutableRawPointer(destination).assumingMemoryBound(to: Float.self)
            peft_transpose_avx512(from, cols, rows, cols, to, rows)
        }
        if transA {  // A stored k x m: its column pairs [pairs, m], transposed to row pairs [m, pairs].
            peft_bf16_column_pairs(a, lda, k, m, staging, m)
            transposeWords(staging, rows: pairs, cols: m, into: aPairs)
        } else {
            peft_bf16_row_pairs(a, lda, m, k, aPairs, pairs)
        }
        if transB {  // B stored n x k: its row pairs [n, pairs], transposed to column pairs [pairs, n].
            peft_bf16_row_pairs(b, ldb, n, k, staging, pairs)
            transposeWords(staging, rows: n, cols: pairs, into: bPairs)
        } else {
            peft_bf16_column_pairs(b, ldb, k, n, bPairs, n)
        }
        peft_bf16_small_gemm(m, n, pairs, alpha, aPairs, pairs, bPairs, n, beta, c, ldc)
    }
}

/// Runs `body(pairIndex, worker)` for every (batch, head) pair, the pairs split over the cores.
/// Each worker makes single-threaded OpenBLAS calls.
func forEachHead(_ pairs: Int, _ body: (Int, Int) -> Void) {
    // Under an address-space limit OpenBLAS may only be called from one thread (see `confinedToLoadingThread`).
    let workers = OpenBLAS.shared.confinedToLoadingThread ? 1 : min(Parallel.workerCount, pairs)
    if workers <= 1 { for p in 0..<pairs { body(p, 0) }; return }
    DispatchQueueBridge.concurrentPerform(workers) { worker in
        var p = worker
        while p < pairs { body(p, worker); p += workers }
    }
}

func forEachHead(_ pairs: Int, _ body: (Int) -> Void) { forEachHead(pairs) { p, _ in body(p) } }
