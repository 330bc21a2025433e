// Sparse-update linear layer for SHiRA: y = x (W + S)^T + b with S nonzero only at fixed (row, column) positions.

import VectorKernels

/// Transposes a [rows, columns] matrix (row stride `sourceStride`, default `columns`) into `destination`
/// [columns, rows], split over the cores.
func transposeMatrix(_ source: UnsafePointer<Float>, rows: Int, columns: Int, sourceStride: Int? = nil,
                     into destination: UnsafeMutablePointer<Float>) {
    let stride = sourceStride ?? columns
    if let kernels = ElementwiseKernels.table {
        // Bands of one register's width of source rows: each band writes its own columns of every destination row.
        let band = kernels.lanes, bands = (rows + band - 1) / band
        Parallel.forEachChunk(bands, grain: 1) { range in
            let r0 = range.lowerBound * band, r1 = min(range.upperBound * band, rows)
            kernels.transpose(source + r0 * stride, stride, r1 - r0, columns, destination + r0, rows)
        }
        return
    }
    let block = 32
    Parallel.forEachChunk((columns + block - 1) / block, grain: 1) { blocks in
        for blockIndex in blocks {
            let c0 = blockIndex * block, c1 = min(c0 + block, columns)
            var r0 = 0
            while r0 < rows {
                let r1 = min(r0 + block, rows)
                for c in c0..<c1 {
                    let dst = destination + c * rows
                    for r in r0..<r1 { dst[r] = source[r * stride + c] }
                }
                r0 = r1
            }
        }
    }
}

/// y = x W'^T + b where `fusedWeight` W' [out, in] already holds W + valueScale * S, and S's nonzeros are
/// `values` at positions (`rows[i]`, `columns[i]`).
///
/// Backward: dx = dy W' (a GEMM); the gradient of each stored value is computed only at its position,
/// dvalues[i] = valueScale * sum over tokens t of dy[t, rows[i]] * x[t, columns[i]] (a sampled dense-dense product), never
/// forming the dense [out, in] weight gradient. Both operands are transposed to feature-major first so each
/// of those sums reads contiguous memory.
public func sparseUpdateLinear(_ x: Tensor, fusedWeight: Tensor, bias: Tensor?, values: Tensor, valueScale: Float = 1,
                               rows: [Int32], columns: [Int32]) -> Tensor {
    precondition(values.count == rows.count && rows.count == columns.count, "sparseUpdateLinear: index/value counts differ")
    let out = Autograd.withoutGrad { linear(x, fusedWeight, bias) }
    let inFeatures = fusedWeight.shape[1], outFeatures = fusedWeight.shape[0]
    let tokens = x.count / inFeatures
    var inputs = [x, values]
    if let bias { inputs.append(bias) }
    return out.recording("sparseUpdateLinear", inputs) { g in
        // dx and the bias gradient as for a plain linear layer with W'; the weight itself gets no gradient.
        linearBackward(g, rows: tokens, xNode: x.node, weight: fusedWeight, savedX: nil, bias: bias)
        if values.needsGrad {
            let gradientByFeature = Tensor(uninitialized: [outFeatures, tokens])
            let inputByFeature = Tensor(uninitialized: [inFeatures, tokens])
            transposeMatrix(g.data, rows: tokens, columns: outFeatures, into: gradientByFeature.data)
            transposeMatrix(x.data, rows: tokens, columns: inFeatures, into: inputByFeature.data)
            sampledDotProducts(gradientByFeature.data, inputByFeature.data, length: tokens, rows: rows,
                               columns: columns, scale: valueScale, accumulateInto: values.gradPointer())
        }
    }
}

/// destination[i] += scale * dot(left[rows[i], :], right[columns[i], :]) over `length` contiguous floats.
func sampledDotProducts(_ left: UnsafePointer<Float>, _ right: UnsafePointer<Float>, length: Int,
                        rows: [Int32], columns: [Int32], scale: Float,
                        accumulateInto destination: UnsafeMutablePointer<Float>) {
    let kernels = ElementwiseKernels.table
    rows.withUnsafeBufferPointer { rowIndex in
        columns.withUnsafeBufferPointer { columnIndex in
            Parallel.forEachChunk(rowIndex.count, grain: 64) { range in
                if let kernels, let rowBase = rowIndex.baseAddress, let columnBase = columnIndex.baseAddress {
                    let start = range.lowerBound
                    kernels.sampledDots(left, right, length, rowBase + start, columnBase + start, range.count, scale,
                                        destination + start)
                    return
                }
                for i in range {
                    let a = left + Int(rowIndex[i]) * length, b = right + Int(columnIndex[i]) * length
                    var accumulator = Float16x(repeating: 0)
                    var t = 0
                    while t + 16 <= length {
                        accumulator += loadVector(a + t) * loadVector(b + t)
                        t += 16
                    }
                    var sum = accumulator.sum()
                    while t < length { sum += a[t] * b[t]; t += 1 }
                    destination[i] += scale * sum
                }
            }
        }
    }
}
