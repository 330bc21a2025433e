// The residual add of a transformer block with an optional per-channel scale on the branch (DINOv2's LayerScale)
// as one op: one pass over the activations instead of a multiply and an add, and no zero-filled gradient buffer
// for the scaled branch in backward.

/// x + branch * scale, with x and branch of the same shape [..., d] and scale [d] (or no scale: x + branch).
///
/// Backward, for g = d(out): dx += g (x takes over g's buffer when it can); dbranch += g * scale;
/// dscale += column sums of g * branch (branch's values are kept only when scale trains).
public func residualAdd(_ x: Tensor, _ branch: Tensor, scale: Tensor? = nil) -> Tensor {
    precondition(x.shape == branch.shape, "residualAdd: shapes differ, \(x.shape) and \(branch.shape)")
    let width = x.shape.last ?? 1
    if let scale {
        precondition(scale.count == width, "residualAdd: scale \(scale.shape) for rows of \(width)")
    }
    let rows = x.count / max(width, 1)
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, pb = branch.data, ps = scale?.data, po = out.data
    let grain = max(1, 16_384 / max(width, 1))
    Parallel.forEachChunk(rows, grain: grain) { range in
        for r in range {
            let xr = px + r * width, br = pb + r * width, orow = po + r * width
            if let ps {
                for j in 0..<width { orow[j] = xr[j] + br[j] * ps[j] }
            } else {
                for j in 0..<width { orow[j] = xr[j] + br[j] }
            }
        }
    }
    var inputs = [x, branch]
    if let scale { inputs.append(scale) }
    let xNode = x.node, branchNode = branch.node
    let savedBranch: Tensor? = scale?.needsGrad == true ? branch : nil
    return out.recording("residualAdd", inputs) { g in
        let pg = g.data
        if branchNode.needsGrad {
            let (gb, fresh) = branchNode.gradPointerForWriting()
            Parallel.forEachChunk(rows, grain: grain) { range in
                for r in range {
                    let dy = pg + r * width, db = gb + r * width
                    switch (ps, fresh) {
                    case (let ps?, true): for j in 0..<width { db[j] = dy[j] * ps[j] }
                    case (let ps?, false): for j in 0..<width { db[j] += dy[j] * ps[j] }
                    case (nil, true): for j in 0..<width { db[j] = dy[j] }
                    case (nil, false): for j in 0..<width { db[j] += dy[j] }
                    }
                }
            }
        }
        if let scale, let savedBranch, scale.needsGrad {
            let ds = scale.gradPointer(), pb = savedBranch.data
            Parallel.forEachChunk(width, grain: 64) { columns in
                for r in 0..<rows {
                    let dy = pg + r * width, br = pb + r * width
                    for j in columns { ds[j] += dy[j] * br[j] }
                }
            }
        }
        // Last: x may take over g's buffer.
        if xNode.needsGrad && !xNode.adoptGradient(g) { accumulate(pg, into: xNode.gradPointer(), count: g.count) }
    }
}
