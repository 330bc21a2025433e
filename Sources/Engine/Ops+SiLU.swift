import Foundation

/// SiLU (swish), x sigmoid(x): the gate of Llama's SwiGLU feed-forward.
/// Backward: dx += dy s (1 + x (1 - s)), s = sigmoid(x).
public func silu(_ x: Tensor) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, py = out.data
    Parallel.forEachChunk(x.count, grain: 4096) { range in
        for i in range { py[i] = px[i] / (1 + Foundation.exp(-px[i])) }
    }
    return out.recording("silu", [x]) { g in
        let gx = x.gradPointer(), pg = g.data
        Parallel.forEachChunk(x.count, grain: 4096) { range in
            for i in range {
                let s = 1 / (1 + Foundation.exp(-px[i]))
                gx[i] += pg[i] * s * (1 + px[i] * (1 - s))
            }
        }
    }
}

/// Grouped-query attention's key/value sharing: x [B, N, Hkv * D] becomes [B, N, Hkv * groups * D] with each head
/// repeated `groups` times in a row (head h of the result is head h / groups of x, as transformers' `repeat_kv`).
/// Backward: the gradients of the copies add up.
public func repeatHeads(_ x: Tensor, heads: Int, groups: Int) -> Tensor {
    precondition(x.rank == 3 && x.shape[2] % heads == 0, "repeatHeads: x \(x.shape), \(heads) heads")
    if groups == 1 { return x }
    let tokens = x.shape[0] * x.shape[1], width = x.shape[2], headDim = width / heads
    let out = Tensor(uninitialized: [x.shape[0], x.shape[1], width * groups])
    let px = x.data, py = out.data
    Parallel.forEachChunk(tokens, grain: 16) { range in
        for t in range {
            for h in 0..<heads {
                let source = px + t * width + h * headDim
                for g in 0..<groups {
                    (py + t * width * groups + (h * groups + g) * headDim).update(from: source, count: headDim)
                }
            }
        }
    }
    return out.recording("repeatHeads", [x]) { g in
        let gx = x.gradPointer(), pg = g.data
        Parallel.forEachChunk(tokens, grain: 16) { range in
            for t in range {
                for h in 0..<heads {
                    let target = gx + t * width + h * headDim
                    for copy in 0..<groups {
                        let source = pg + t * width * groups + (h * groups + copy) * headDim
                        for d in 0..<headDim { target[d] += source[d] }
                    }
                }
            }
        }
    }
}
