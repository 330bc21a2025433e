import VectorKernels

/// Input rows up to which `quantizedLinear` multiplies block by block in registers (decode); above it, row panels
/// of the weights are expanded to float32 and multiplied by the SGEMM (prefill, training).
let quantizedDirectRowLimit = 8
/// Float32 values of one expanded panel (4 MiB: a panel of a 576-column matrix is 1,820 rows).
let quantizedPanelValues = 1 << 20

/// y = x W^T for x [..., in] and a frozen quantised W [out, in]. Small inputs (at most 8 rows, as in decoding)
/// read each weight block once and expand it in registers for every row (the AVX-512, AVX2 or portable kernel, as
/// `ExecutionContext.kernels` allows); larger ones expand panels of at most 4 MiB of weights, in turn, and multiply
/// them with the SGEMM (in bfloat16 when `GEMMSettings` asks for it, as `linear` does), so no float32 copy of W is
/// ever held. Backward: dx += dy W through the same panels (W has no
/// gradient: it is frozen).
public func quantizedLinear(_ x: Tensor, _ weight: QuantizedMatrix, bias: Tensor? = nil) -> Tensor {
    let inFeatures = weight.columns, outFeatures = weight.rows
    precondition(x.shape.last == inFeatures, "quantizedLinear: input \(x.shape) does not end in \(inFeatures)")
    if let bias { precondition(bias.count == outFeatures, "quantizedLinear: bias \(bias.shape) for \(outFeatures) outputs") }
    let rows = x.count / max(inFeatures, 1)
    let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outFeatures])
    if rows <= quantizedDirectRowLimit {
        quantizedMatvec(weight, x: x.data, rows: rows, y: out.data)
        if let bias {
            for r in 0..<rows { for j in 0..<outFeatures { out.data[r * outFeatures + j] += bias.data[j] } }
        }
    } else {
        forEachPanel(of: weight) { n0, n1, panel in
            gemm(transA: false, transB: true, m: rows, n: n1 - n0, k: inFeatures, a: x.data, lda: inFeatures,
                 b: panel, ldb: inFeatures, bias: bias.map { $0.data + n0 }, c: out.data + n0, ldc: outFeatures,
                 reducedPrecision: true)
        }
    }
    var inputs = [x]
    if let bias { inputs.append(bias) }
    let xNode = x.node
    return out.recording("quantizedLinear", inputs) { g in
        if xNode.needsGrad {
            let (gx, fresh) = xNode.gradPointerForWriting()
            var first = true
            forEachPanel(of: weight) { n0, n1, panel in
                gemm(transA: false, transB: false, m: rows, n: inFeatures, k: n1 - n0, a: g.data + n0, lda: outFeatures,
                     b: panel, ldb: inFeatures, beta: first && fresh ? 0 : 1, c: gx, ldc: inFeatures,
                     reducedPrecision: true)
                first = false
            }
        }
        if let bias, bias.needsGrad {
            accumulateColumnSums(g.data, rows: rows, columns: outFeatures, into: bias.gradPointer())
        }
    }
}

/// y [rows, out] = x [rows, in] W^T with the register-expanding kernels, the output columns split over the cores.
func quantizedMatvec(_ weight: QuantizedMatrix, x: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>) {
    let w = weight.bytes.assumingMemoryBound(to: UInt8.self)
    let format = weight.format.rawValue, columns = weight.columns, n = weight.rows
    let kernels = ElementwiseKernels.active
    // Enough output columns per chunk that a thread's share is worth sending (about 64 KiB of weights).
    // Four pieces per thread: a decoding step is about 200 such calls of well under a millisecond each, and a
    // worker woken late would otherwise leave the caller doing its whole share alone.
    let grain = max(16, 32_768 / max(weight.rowBytes, 1))
    Parallel.forEachChunk(n, grain: grain, chunksPerWorker: 4) { range in
        let n0 = range.lowerBound, n1 = range.upperBound
        switch kernels {
        case .avx512: peft_quant_matvec_avx512(format, w, columns, n0, n1, x, rows, columns, y, n)
        case .avx2: peft_quant_matvec_avx2(format, w, columns, n0, n1, x, rows, columns, y, n)
        case .portable: peft_quant_matvec_portable(format, w, columns, n0, n1, x, rows, columns, y, n)
        }
    }
}

/// Calls `body(n0, n1, panel)` for consecutive row ranges of W with the rows expanded to float32 in `panel`
/// (row stride = columns), one pool-backed scratch buffer of at most `quantizedPanelValues` floats.
func forEachPanel(of weight: QuantizedMatrix, _ body: (Int, Int, UnsafePointer<Float>) -> Void) {
    let panelRows = max(1, min(weight.rows, quantizedPanelValues / weight.columns))
    let scratch = Tensor(uninitialized: [panelRows * weight.columns])
    var n0 = 0
    while n0 < weight.rows {
        let n1 = min(weight.rows, n0 + panelRows)
        weight.dequantizeRows(n0, n1, into: scratch.data, stride: weight.columns)
        body(n0, n1, scratch.data)
        n0 = n1
    }
    withExtendedLifetime(scratch) {}
}
