import BLASBinding

/// SGEMM split over the cores: C = alpha op(A) op(B) + beta C (row-major), each worker computing a block of
/// C's rows (or columns, when C is wider than tall) with a single-threaded OpenBLAS call. Keeping all threading
/// in the engine means OpenBLAS's own pool never spins between calls against our kernels.
public func gemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let blas = OpenBLAS.shared
    let work = Double(m) * Double(n) * Double(k)
    let workers = Parallel.workerCount
    if workers <= 1 || work < 2_000_000 || (m < 2 * 16 && n < 2 * 16) {
        blas.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                   b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        return
    }
    let splitRows = m >= n
    let extent = splitRows ? m : n
    DispatchQueueBridge.concurrentPerform(workers) { worker in
        // Block boundaries on multiples of 16 keep the kernels' panels whole.
        let start = (extent * worker / workers) / 16 * 16
        let end = worker == workers - 1 ? extent : (extent * (worker + 1) / workers) / 16 * 16
        if end <= start { return }
        if splitRows {
            let aBlock = transA ? a + start : a + start * lda
            blas.sgemm(transA: transA, transB: transB, m: end - start, n: n, k: k, alpha: alpha, a: aBlock, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c + start * ldc, ldc: ldc)
        } else {
            let bBlock = transB ? b + start * ldb : b + start
            blas.sgemm(transA: transA, transB: transB, m: m, n: end - start, k: k, alpha: alpha, a: a, lda: lda,
                       b: bBlock, ldb: ldb, beta: beta, c: c + start, ldc: ldc)
        }
    }
}
