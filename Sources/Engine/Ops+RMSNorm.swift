// Root-mean-square normalisation (Llama's RMSNorm), forward and backward.

/// y = x / sqrt(mean(x^2) + eps) * weight over the last dimension (x [..., D], weight [D]).
/// Backward, with r = 1 / sqrt(mean(x^2) + eps) per row: dw += sum over rows of dy x r;
/// dx = r (dy w - x r^2 mean(dy w x)).
public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) -> Tensor {
    let width = x.shape.last ?? 1
    precondition(weight.shape == [width], "rmsNorm: weight \(weight.shape) for width \(width)")
    let rows = x.count / max(width, 1)
    let out = Tensor(uninitialized: x.shape)
    var inverse = [Float](repeating: 0, count: rows)
    let px = x.data, pw = weight.data, py = out.data
    inverse.withUnsafeMutableBufferPointer { inv in
        let pinv = inv.baseAddress!
        Parallel.forEachChunk(rows, grain: 16) { range in
            for r in range {
                let row = px + r * width
                var squares: Float = 0
                for j in 0..<width { squares += row[j] * row[j] }
                let factor = 1 / (squares / Float(width) + eps).squareRoot()
                pinv[r] = factor
                let target = py + r * width
                for j in 0..<width { target[j] = row[j] * factor * pw[j] }
            }
        }
    }
    return out.recording("rmsNorm", [x, weight]) { g in
        let pg = g.data
        inverse.withUnsafeBufferPointer { inv in
            let pinv = inv.baseAddress!
            if weight.needsGrad {
                let gw = weight.gradPointer()
                for r in 0..<rows {
                    let row = px + r * width, grow = pg + r * width, factor = pinv[r]
                    for j in 0..<width { gw[j] += grow[j] * row[j] * factor }
                }
            }
            guard x.needsGrad else { return }
            let gx = x.gradPointer()
            Parallel.forEachChunk(rows, grain: 16) { range in
                for r in range {
                    let row = px + r * width, grow = pg + r * width, target = gx + r * width, factor = pinv[r]
                    var dot: Float = 0
                    for j in 0..<width { dot += grow[j] * pw[j] * row[j] }
                    let correction = factor * factor * dot / Float(width)
                    for j in 0..<width { target[j] += factor * (grow[j] * pw[j] - row[j] * correction) }
                }
            }
        }
    }
}
