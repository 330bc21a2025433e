// LayerNorm and softmax over the last dimension, with fused backward kernels.

import VectorKernels

/// LayerNorm over the last dimension: y = (x - mean) / sqrt(var + eps) * weight + bias.
/// The forward keeps the per-row mean and 1/std for the backward:
/// dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * weight.
public func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float) -> Tensor {
    let c = x.shape.last ?? 1
    precondition(weight.count == c && bias.count == c, "layerNorm: weight \(weight.shape)/bias \(bias.shape) for width \(c)")
    let rows = x.count / max(c, 1)
    let out = Tensor(uninitialized: x.shape)
    let means = Tensor(uninitialized: [rows]), rstds = Tensor(uninitialized: [rows])
    let px = x.data, py = out.data, pw = weight.data, pb = bias.data, pm = means.data, pr = rstds.data
    let kernels = ElementwiseKernels.table
    Parallel.forEachChunk(rows, grain: max(1, 8192 / max(c, 1))) { range in
        if let kernels {
            let start = range.lowerBound
            kernels.layerNormForward(px + start * c, pw, pb, py + start * c, pm + start, pr + start,
                                     range.count, c, eps)
            return
        }
        for r in range {
            let row = px + r * c, dst = py + r * c
            var sum: Float = 0
            for i in 0..<c { sum += row[i] }
            let mean = sum / Float(c)
            var variance: Float = 0
            for i in 0..<c { let d = row[i] - mean; variance += d * d }
            let rstd = 1 / (variance / Float(c) + eps).squareRoot()
            pm[r] = mean; pr[r] = rstd
            for i in 0..<c { dst[i] = (row[i] - mean) * rstd * pw[i] + pb[i] }
        }
    }
    return out.recording("layerNorm", [x, weight, bias]) { g in
        // Capture the saved statistics by tensor (not only by pointer) so they live as long as the graph.
        let pm = means.data, pr = rstds.data
        let pg = g.data
        let workers = Parallel.workerCount
        // Per-worker partial sums for dweight and dbias.
        let partial = Tensor(zeros: [workers, 2, c])
        let gx = x.needsGrad ? x.gradPointer() : nil
        let chunkCount = min(workers, max(1, rows))
        DispatchQueueBridge.concurrentPerform(chunkCount) { chunk in
            let start = rows * chunk / chunkCount, end = rows * (chunk + 1) / chunkCount
            let dw = partial.data + chunk * 2 * c, db = dw + c
            if let kernels {
                kernels.layerNormBackward(px + start * c, pg + start * c, pw, pm + start, pr + start,
                                          gx.map { $0 + start * c }, dw, db, end - start, c)
                return
            }
            for r in start..<end {
                let row = px + r * c, grow = pg + r * c
                let mean = pm[r], rstd = pr[r]
                var sumDxhat: Float = 0, sumDxhatXhat: Float = 0
                for i in 0..<c {
                    let xhat = (row[i] - mean) * rstd
                    let dxhat = grow[i] * pw[i]
                    sumDxhat += dxhat; sumDxhatXhat += dxhat * xhat
                    dw[i] += grow[i] * xhat; db[i] += grow[i]
                }
                if let gx {
                    let meanDxhat = sumDxhat / Float(c), meanDxhatXhat = sumDxhatXhat / Float(c)
                    let dst = gx + r * c
                    for i in 0..<c {
                        let xhat = (row[i] - mean) * rstd
                        dst[i] += rstd * (grow[i] * pw[i] - meanDxhat - xhat * meanDxhatXhat)
                    }
                }
            }
        }
        if weight.needsGrad {
            let gw = weight.gradPointer()
            for w in 0..<chunkCount { let dw = partial.data + w * 2 * c; for i in 0..<c { gw[i] += dw[i] } }
        }
        if bias.needsGrad {
            let gb = bias.gradPointer()
            for w in 0..<chunkCount { let db = partial.data + w * 2 * c + c; for i in 0..<c { gb[i] += db[i] } }
        }
    }
}

/// Softmax of `count` floats in place (max-subtracted, vectorised exp); `kernels` is `ElementwiseKernels.table`,
/// read once by the caller rather than per row.
@inline(__always)
func softmaxRowInPlace(_ row: UnsafeMutablePointer<Float>, _ n: Int, kernels: VectorKernelTable?) {
    if let kernels { kernels.softmaxRows(row, 1, n, n); return }
    var maxValue = -Float.infinity
    for i in 0..<n { maxValue = max(maxValue, row[i]) }
    if maxValue == -.infinity { row.update(repeating: 0, count: n); return }
    var sum: Float = 0
    var i = 0
    while i + 16 <= n {
        let e = vectorExp(loadVector(row + i) - Float16x(repeating: maxValue))
        storeVector(e, row + i)
        sum += e.sum()
        i += 16
    }
    while i < n {
        let e = scalarViaVector(row[i] - maxValue, vectorExp)
        row[i] = e; sum += e; i += 1
    }
    let inverse = 1 / sum
    for j in 0..<n { row[j] *= inverse }
}

/// Softmax over the last dimension. Backward: dx = y * (dy - sum(dy * y)).
public func softmax(_ x: Tensor) -> Tensor {
    let n = x.shape.last ?? 1
    let rows = x.count / max(n, 1)
    let out = x.copy()
    let py = out.data
    let kernels = ElementwiseKernels.table
    Parallel.forEachChunk(rows, grain: max(1, 4096 / max(n, 1))) { r in
        for row in r { softmaxRowInPlace(py + row * n, n, kernels: kernels) }
    }
    let outputValues = out.storage, xNode = x.node  // backward reads the output, not the input
    return out.recording("softmax", [x]) { g in
        let gx = xNode.gradPointer(), pg = g.data
        let py = outputValues.pointer
        Parallel.forEachChunk(rows, grain: max(1, 4096 / max(n, 1))) { r in
            for row in r {
                let y = py + row * n, dy = pg + row * n, dx = gx + row * n
                var dot: Float = 0
                for i in 0..<n { dot += dy[i] * y[i] }
                for i in 0..<n { dx[i] += y[i] * (dy[i] - dot) }
            }
        }
    }
}
