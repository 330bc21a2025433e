// Image ops: cutting images into patches (a stride-p convolution becomes one GEMM), bicubic resampling weights.

/// Cuts images [B, C, H, W] into non-overlapping p x p patches: [B, (H/p)*(W/p), C*p*p], each patch flattened
/// as (channel, row, column) to match a convolution weight [D, C, p, p]. Rows/columns beyond a whole patch are
/// dropped, as a stride-p convolution without padding does.
public func patchify(_ images: Tensor, patchSize p: Int) -> Tensor {
    precondition(images.rank == 4, "patchify: images must be [B, C, H, W], got \(images.shape)")
    let b = images.shape[0], c = images.shape[1], h = images.shape[2], w = images.shape[3]
    let gh = h / p, gw = w / p
    precondition(gh > 0 && gw > 0, "patchify: image \(h)x\(w) smaller than patch \(p)")
    let patchLength = c * p * p
    let out = Tensor(uninitialized: [b, gh * gw, patchLength])
    let src = images.data, dst = out.data
    // The copy and its adjoint visit the same (patch, channel, row) triples.
    func walk(_ body: (_ patchRow: UnsafeMutablePointer<Float>, _ imageRow: UnsafeMutablePointer<Float>) -> Void,
              from: UnsafeMutablePointer<Float>, to: UnsafeMutablePointer<Float>) {
        Parallel.forEachChunk(b * gh, grain: 1) { range in
            for bi in range {
                let image = bi / gh, py = bi % gh
                for px in 0..<gw {
                    let patch = to + ((image * gh + py) * gw + px) * patchLength
                    for ch in 0..<c {
                        for ky in 0..<p {
                            let row = from + ((image * c + ch) * h + py * p + ky) * w + px * p
                            body(patch + (ch * p + ky) * p, row)
                        }
                    }
                }
            }
        }
    }
    walk({ patchRow, imageRow in patchRow.update(from: imageRow, count: p) }, from: src, to: dst)
    let imagesNode = images.node
    return out.recording("patchify", [images]) { g in
        walk({ patchRow, imageRow in for i in 0..<p { imageRow[i] += patchRow[i] } },
             from: imagesNode.gradPointer(), to: g.data)
    }
}

/// Weights [outSize, inSize] of 1-D bicubic interpolation (cubic convolution, a = -0.75, half-pixel centres,
/// no antialias, edge samples clamped), as PyTorch's `interpolate(mode="bicubic", align_corners=False)`.
/// `scale` is the source step per output pixel; by default inSize / outSize.
public func bicubicWeights(inSize: Int, outSize: Int, scale: Double? = nil) -> Tensor {
    let a = -0.75
    func cubicNear(_ x: Double) -> Double { ((a + 2) * x - (a + 3)) * x * x + 1 }          // |x| <= 1
    func cubicFar(_ x: Double) -> Double { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }      // 1 < |x| < 2
    let step = scale ?? Double(inSize) / Double(outSize)
    let weights = Tensor(zeros: [outSize, inSize])
    for o in 0..<outSize {
        let source = (Double(o) + 0.5) * step - 0.5
        let base = source.rounded(.down)
        let t = source - base
        let coefficients = [cubicFar(t + 1), cubicNear(t), cubicNear(1 - t), cubicFar(2 - t)]
        for (tap, coefficient) in coefficients.enumerated() {
            let index = min(max(Int(base) - 1 + tap, 0), inSize - 1)
            weights.data[o * inSize + index] += Float(coefficient)
        }
    }
    return weights
}

/// Resamples a grid [H, W, C] to [outH, outW, C] with separable weights rowsWeights [outH, H] and
/// columnWeights [outW, W]; differentiable in the grid.
public func resampleGrid(_ grid: Tensor, rowWeights: Tensor, columnWeights: Tensor) -> Tensor {
    precondition(grid.rank == 3, "resampleGrid: grid must be [H, W, C], got \(grid.shape)")
    let h = grid.shape[0], w = grid.shape[1], c = grid.shape[2]
    let outH = rowWeights.shape[0], outW = columnWeights.shape[0]
    precondition(rowWeights.shape[1] == h && columnWeights.shape[1] == w, "resampleGrid: weights do not fit \(grid.shape)")
    let rowsDone = matmul(rowWeights, grid.reshaped([h, w * c]))                     // [outH, W*C]
    let columnsFirst = rowsDone.reshaped([outH, w, c]).permuted([1, 0, 2])              // [W, outH, C]
    let both = matmul(columnWeights, columnsFirst.reshaped([w, outH * c]))              // [outW, outH*C]
    return both.reshaped([outW, outH, c]).permuted([1, 0, 2])                          // [outH, outW, C]
}
