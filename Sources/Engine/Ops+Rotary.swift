import Foundation

// Rotary position embeddings (RoPE) in Hugging Face's "rotate half" layout, forward and backward.

/// Rotates each head of x [B, N, H * D] by its token's position: for i < D/2, with
/// theta_i = position * base^(-2i / D), the pair (x_i, x_{i + D/2}) becomes
/// (x_i cos - x_{i + D/2} sin, x_{i + D/2} cos + x_i sin) (transformers' `rotate_half`; llama.cpp's GGUF files
/// store q and k rows permuted for interleaved pairs, which the loader undoes). `positions` holds B * N positions.
/// Backward: the gradient is rotated back by -theta.
public func rotaryEmbedding(_ x: Tensor, heads: Int, positions: [Int], base: Float) -> Tensor {
    precondition(x.rank == 3, "rotaryEmbedding: x must be [B, N, H*D], got \(x.shape)")
    let tokens = x.shape[0] * x.shape[1], width = x.shape[2]
    precondition(positions.count == tokens, "rotaryEmbedding: \(positions.count) positions for \(tokens) tokens")
    precondition(width % heads == 0 && (width / heads) % 2 == 0, "rotaryEmbedding: width \(width), \(heads) heads")
    let headDim = width / heads, half = headDim / 2
    // cos and sin per token and frequency, [tokens, half] each.
    var cosines = [Float](repeating: 0, count: tokens * half), sines = cosines
    var frequencies = [Float](repeating: 0, count: half)
    for i in 0..<half { frequencies[i] = 1 / Float(pow(Double(base), Double(2 * i) / Double(headDim))) }
    for t in 0..<tokens {
        let position = Float(positions[t])
        for i in 0..<half {
            let angle = Double(position * frequencies[i])
            cosines[t * half + i] = Float(cos(angle))
            sines[t * half + i] = Float(sin(angle))
        }
    }
    func rotate(_ source: UnsafePointer<Float>, _ target: UnsafeMutablePointer<Float>, sign: Float, accumulate: Bool) {
        cosines.withUnsafeBufferPointer { cosBuffer in
            sines.withUnsafeBufferPointer { sinBuffer in
                let pc = cosBuffer.baseAddress!, ps = sinBuffer.baseAddress!
                Parallel.forEachChunk(tokens, grain: 8) { range in
                    for t in range {
                        let c = pc + t * half, s = ps + t * half
                        for h in 0..<heads {
                            let offset = t * width + h * headDim
                            let a = source + offset, out = target + offset
                            for i in 0..<half {
                                let first = a[i] * c[i] - sign * a[i + half] * s[i]
                                let second = a[i + half] * c[i] + sign * a[i] * s[i]
                                if accumulate { out[i] += first; out[i + half] += second }
                                else { out[i] = first; out[i + half] = second }
                            }
                        }
                    }
                }
            }
        }
    }
    let out = Tensor(uninitialized: x.shape)
    rotate(x.data, out.data, sign: 1, accumulate: false)
    return out.recording("rotary", [x]) { g in
        rotate(g.data, x.gradPointer(), sign: -1, accumulate: true)
    }
}
