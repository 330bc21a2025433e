import BLASBinding

// Matrix products on OpenBLAS: linear layers, plain and batched matmul.

@inline(__always) var blas: OpenBLAS { OpenBLAS.shared }

/// Column sums of a rows x columns matrix accumulated into `destination` (bias gradients).
func accumulateColumnSums(_ source: UnsafePointer<Float>, rows: Int, columns: Int, into destination: UnsafeMutablePointer<Float>) {
    Parallel.forEachChunk(columns, grain: 64) { cols in
        for r in 0..<rows {
            let row = source + r * columns
            for c in cols { destination[c] += row[c] }
        }
    }
}

/// y = x W^T + b for x [..., in], W [out, in], b [out].
/// Backward: dx += dy W; dW += dy^T x; db += column sums of dy. Frozen weights get no gradient work.
public func linear(_ x: Tensor, _ weight: Tensor, _ bias: Tensor? = nil) -> Tensor {
    precondition(weight.rank == 2, "linear: weight must be [out, in], got \(weight.shape)")
    let inFeatures = weight.shape[1], outFeatures = weight.shape[0]
    precondition(x.shape.last == inFeatures,
                 "linear\(weight.name.map { " " + $0 } ?? ""): input \(x.shape) does not end in \(inFeatures)")
    if let bias { precondition(bias.count == outFeatures, "linear: bias \(bias.shape) for \(outFeatures) outputs") }
    let rows = x.count / max(inFeatures, 1)
    let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outFeatures])
    gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures, a: x.data, lda: inFeatures,
         b: weight.data, ldb: inFeatures, bias: bias?.data, c: out.data, ldc: outFeatures, reducedPrecision: true)
    var inputs = [x, weight]
    if let bias { inputs.append(bias) }
    // The input's values are kept for backward only when the weight trains (dW needs them).
    let xNode = x.node, savedX: Tensor? = weight.needsGrad ? x : nil
    return out.recording("linear", inputs) { g in
        linearBackward(g, rows: rows, xNode: xNode, weight: weight, savedX: savedX, bias: bias)
    }
}

/// The backward of y = x W^T + b for the output gradient g [rows, out]: dx += g W (into a fresh buffer with
/// beta 0 when x has no gradient yet), dW += g^T x when W trains (`savedX` holds x then), db += column sums of g.
/// Shared by the linear-layer ops (`linear`, `lowRankLinear`, `sparseUpdateLinear`, which passes no `savedX`).
func linearBackward(_ g: Tensor, rows: Int, xNode: GradNode, weight: Tensor, savedX: Tensor?, bias: Tensor?) {
    let inFeatures = weight.shape[1], outFeatures = weight.shape[0]
    if xNode.needsGrad {
        let (gx, fresh) = xNode.gradPointerForWriting()
        gemm(transA: false, transB: false, m: rows, n: inFeatures, k: outFeatures, a: g.data, lda: outFeatures,
             b: weight.data, ldb: inFeatures, beta: fresh ? 0 : 1, c: gx, ldc: inFeatures, reducedPrecision: true)
    }
    if let savedX, weight.needsGrad {
        gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows, a: g.data, lda: outFeatures,
             b: savedX.data, ldb: inFeatures, beta: 1, c: weight.gradPointer(), ldc: inFeatures, reducedPrecision: true)
    }
    if let bias, bias.needsGrad {
        accumulateColumnSums(g.data, rows: rows, columns: outFeatures, into: bias.gradPointer())
    }
}

/// Matrix product. `a` is [..., m, k]; `b` is [k, n] (shared by every leading index of `a`) or
/// [..., k, n] with the same leading dimensions as `a`. With `transposeB`, `b` holds [..., n, k].
public func matmul(_ a: Tensor, _ b: Tensor, transposeB: Bool = false) -> Tensor {
    precondition(a.rank >= 2 && b.rank >= 2, "matmul: needs rank >= 2, got \(a.shape) and \(b.shape)")
    let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1]
    let bRows = b.shape[b.rank - 2], bCols = b.shape[b.rank - 1]
    let n = transposeB ? bRows : bCols
    precondition((transposeB ? bCols : bRows) == k, "matmul: inner dimensions differ, \(a.shape) x \(b.shape)")
    let sharedB = b.rank == 2
    if !sharedB {
        precondition(Array(a.shape.dropLast(2)) == Array(b.shape.dropLast(2)),
                     "matmul: batch dimensions differ, \(a.shape) x \(b.shape)")
    }
    let batch = a.shape.dropLast(2).reduce(1, *)
    let out = Tensor(uninitialized: Array(a.shape.dropLast(2)) + [m, n])
    if sharedB {
        // One GEMM over all leading rows.
        gemm(transA: false, transB: transposeB, m: batch * m, n: n, k: k, a: a.data, lda: k,
                   b: b.data, ldb: bCols, c: out.data, ldc: n)
    } else {
        for i in 0..<batch {
            gemm(transA: false, transB: transposeB, m: m, n: n, k: k, a: a.data + i * m * k, lda: k,
                       b: b.data + i * k * n, ldb: bCols, c: out.data + i * m * n, ldc: n)
        }
    }
    return out.recording("matmul", [a, b]) { g in
        let rowsA = sharedB ? batch * m : m
        let batches = sharedB ? 1 : batch
        for i in 0..<batches {
            let gOut = g.data + i * m * n
            let aBlock = a.data + i * m * k
            let bBlock = b.data + (sharedB ? 0 : i * k * n)
            if a.needsGrad {
                // dA = dC op(B)^T
                gemm(transA: false, transB: !transposeB, m: rowsA, n: k, k: n, a: gOut, lda: n,
                           b: bBlock, ldb: bCols, beta: 1, c: a.gradPointer() + i * m * k, ldc: k)
            }
            if b.needsGrad {
                let gB = b.gradPointer() + (sharedB ? 0 : i * k * n)
                if transposeB {
                    // dB[n, k] = dC^T A
                    gemm(transA: true, transB: false, m: n, n: k, k: rowsA, a: gOut, lda: n,
                               b: aBlock, ldb: k, beta: 1, c: gB, ldc: k)
                } else {
                    // dB[k, n] = A^T dC
                    gemm(transA: true, transB: false, m: k, n: n, k: rowsA, a: aBlock, lda: k,
                               b: gOut, ldb: n, beta: 1, c: gB, ldc: n)
                }
            }
        }
    }
}
