import BF16Kernels
import BLASBinding
import Foundation

/// Precision of the large matrix products that may run in reduced precision.
public enum GEMMPrecision: String, Sendable, CaseIterable {
    /// Float32 everywhere (OpenBLAS SGEMM).
    case float32 = "fp32"
    /// Inputs rounded to bfloat16, products accumulated and stored in float32 (AVX-512 BF16 kernels). Weights,
    /// gradients and optimiser state stay float32; only the operands of the linear layers' products (forward,
    /// input gradient, weight gradient; large enough ones) and of attention's per-head products are rounded.
    /// Falls back to float32 on CPUs without AVX-512 BF16.
    case bfloat16 = "bf16"
}

/// GEMM precision of the running code: `ExecutionContext.current.precision` (which starts from the environment
/// variable `PEFT_GEMM`, `bf16` or `fp32`, default fp32).
public enum GEMMSettings {
    /// Whether this CPU and OS can run the bfloat16 kernels.
    public static let bfloat16Supported: Bool = peft_bf16_supported() != 0

    /// The precision requested for reduced-precision-capable products.
    public static var precision: GEMMPrecision { ExecutionContext.current.precision }

    /// True when eligible products actually run in bfloat16.
    @inline(__always) static var usesBFloat16: Bool { precision == .bfloat16 && bfloat16Supported }
}

/// SGEMM split over the cores: C = alpha op(A) op(B) + bias + beta C (row-major; `bias`, when given, holds n
/// values added to every row of C). Each worker computes a block of C's rows (or columns, when C is wider than
/// tall) with a single-threaded OpenBLAS call. Keeping all threading in the engine means OpenBLAS's own pool
/// never spins between calls against our kernels. With `reducedPrecision`, large products run in bfloat16 when
/// `GEMMSettings` asks for it (the bias then joins in the kernel's epilogue instead of a separate pass).
public func gemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, bias: UnsafePointer<Float>? = nil,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, reducedPrecision: Bool = false
) {
    let work = Double(m) * Double(n) * Double(k)
    let useBF16 = reducedPrecision && GEMMSettings.usesBFloat16 && work >= 2_000_000 && m >= 16 && n >= 16 && k >= 16
    guard let profile = Profiler.active else {
        return gemmUnprofiled(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
                              ldb: ldb, bias: bias, beta: beta, c: c, ldc: ldc, bfloat16: useBF16)
    }
    profile.countGEMM(m: m, n: n, k: k)
    let start = Profiler.now()
    gemmUnprofiled(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                   bias: bias, beta: beta, c: c, ldc: ldc, bfloat16: useBF16)
    profile.gemmFinished(GEMMShape(m: m, n: n, k: k, transA: transA, transB: transB, bfloat16: useBF16),
                         seconds: Double(Profiler.now() &- start) / 1e9)
}

private func gemmUnprofiled(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, bias: UnsafePointer<Float>?,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, bfloat16 useBF16: Bool
) {
    if useBF16 {
        if transA {
            // The kernel reads A by rows: copy op(A) (A is stored k x m) transposed first.
            let transposed = Tensor(uninitialized: [m, k])
            transposeMatrix(a, rows: k, columns: m, sourceStride: lda, into: transposed.data)
            bfloat16GEMM(transB: transB, m: m, n: n, k: k, alpha: alpha, a: transposed.data, lda: k, b: b, ldb: ldb,
                         bias: bias, beta: beta, c: c, ldc: ldc)
            return
        }
        bfloat16GEMM(transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, bias: bias,
                     beta: beta, c: c, ldc: ldc)
        return
    }
    let blas = OpenBLAS.shared
    let work = Double(m) * Double(n) * Double(k)
    let workers = blas.confinedToLoadingThread ? 1 : Parallel.workerCount
    // C's rows [r0, r1) become bias + beta C, so that the product can accumulate (beta 1) on top.
    func prepareRows(_ r0: Int, _ r1: Int) {
        guard let bias else { return }
        for r in r0..<r1 {
            let row = c + r * ldc
            if beta == 0 {
                row.update(from: bias, count: n)
            } else {
                for j in 0..<n { row[j] = beta * row[j] + bias[j] }
            }
        }
    }
    let productBeta: Float = bias == nil ? beta : 1
    if workers <= 1 || work < 2_000_000 || (m < 2 * 16 && n < 2 * 16) {
        prepareRows(0, m)
        blas.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                   b: b, ldb: ldb, beta: productBeta, c: c, ldc: ldc)
        return
    }
    let splitRows = m >= n
    let extent = splitRows ? m : n
    if !splitRows && bias != nil {
        Parallel.forEachChunk(m, grain: max(1, 16_384 / max(n, 1))) { prepareRows($0.lowerBound, $0.upperBound) }
    }
    DispatchQueueBridge.concurrentPerform(workers) { worker in
        // Block boundaries on multiples of 16 keep the kernels' panels whole.
        let start = (extent * worker / workers) / 16 * 16
        let end = worker == workers - 1 ? extent : (extent * (worker + 1) / workers) / 16 * 16
        if end <= start { return }
        if splitRows {
            // Each worker prepares its own rows, so they are still in cache for the product.
            prepareRows(start, end)
            let aBlock = transA ? a + start : a + start * lda
            blas.sgemm(transA: transA, transB: transB, m: end - start, n: n, k: k, alpha: alpha, a: aBlock, lda: lda,
                       b: b, ldb: ldb, beta: productBeta, c: c + start * ldc, ldc: ldc)
        } else {
            let bBlock = transB ? b + start * ldb : b + start
            blas.sgemm(transA: transA, transB: transB, m: m, n: end - start, k: k, alpha: alpha, a: a, lda: lda,
                       b: bBlock, ldb: ldb, beta: productBeta, c: c + start, ldc: ldc)
        }
    }
}

/// C = alpha A op(B) + bias + beta C with A and op(B) rounded to bfloat16 and float32 accumulation (needs
/// `GEMMSettings.bfloat16Supported`; `bias`, when given, holds n values added to every row): op(B) is packed
/// once (its panels split over the cores), then each core computes a block of C's rows.
public func bfloat16GEMM(
    transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, bias: UnsafePointer<Float>? = nil, beta: Float, c: UnsafeMutablePointer<Float>,
    ldc: Int
) {
    let packedCount = peft_bf16_packed_b_count(Int32(k), Int32(n))
    // Pool-backed scratch (two bf16 per float).
    let scratch = Tensor(uninitialized: [(packedCount + 1) / 2])
    let packed = UnsafeMutableRawPointer(scratch.data).bindMemory(to: UInt16.self, capacity: packedCount)
    let panels = Int(peft_bf16_panel_count(Int32(n)))
    let workers = max(1, min(Parallel.workerCount, panels))
    DispatchQueueBridge.concurrentPerform(workers) { worker in
        let start = panels * worker / workers, end = panels * (worker + 1) / workers
        peft_bf16_pack_b(transB ? 1 : 0, Int32(k), Int32(n), b, Int32(ldb), packed, Int32(start), Int32(end))
    }
    let rowWorkers = max(1, min(Parallel.workerCount, m / 12))
    DispatchQueueBridge.concurrentPerform(rowWorkers) { worker in
        // Blocks of whole 12-row micro-tiles.
        let start = (m * worker / rowWorkers) / 12 * 12
        let end = worker == rowWorkers - 1 ? m : (m * (worker + 1) / rowWorkers) / 12 * 12
        if end <= start { return }
        peft_bf16_gemm_packed(Int32(end - start), Int32(n), Int32(k), alpha, a + start * lda, Int32(lda), packed,
                              bias, beta, c + start * ldc, Int32(ldc))
    }
    withExtendedLifetime(scratch) {}
}
