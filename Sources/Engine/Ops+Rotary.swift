import Foundation

// Rotary position embeddings (RoPE) in Hugging Face's "rotate half" layout, forward and backward.

/// The cos and sin of every token's rotary angles, theta_i = position * base^(-2i / D) for i < D/2: computed once
/// per forward and shared by the q and k of every block.
public struct RotaryAngles: Sendable {
    public let tokens: Int
    /// D / 2.
    public let half: Int
    let cosines: [Float]
    let sines: [Float]

    public init(positions: [Int], headDimension: Int, base: Float) {
        precondition(headDimension % 2 == 0, "rotary: head width \(headDimension) must be even")
        tokens = positions.count
        half = headDimension / 2
        var cosines = [Float](repeating: 0, count: tokens * half), sines = cosines
        var frequencies = [Float](repeating: 0, count: half)
        for i in 0..<half { frequencies[i] = 1 / Float(pow(Double(base), Double(2 * i) / Double(headDimension))) }
        for t in 0..<tokens {
            let position = Float(positions[t])
            for i in 0..<half {
                let angle = Double(position * frequencies[i])
                cosines[t * half + i] = Float(cos(angle))
                sines[t * half + i] = Float(sin(angle))
            }
        }
        self.cosines = cosines
        self.sines = sines
    }
}

/// Rotates each head of x [B, N, H * D] by its token's position: for i < D/2, with
/// theta_i = position * base^(-2i / D), the pair (x_i, x_{i + D/2}) becomes
/// (x_i cos - x_{i + D/2} sin, x_{i + D/2} cos + x_i sin) (transformers' `rotate_half`; llama.cpp's GGUF files
/// store q and k rows permuted for interleaved pairs, which the loader undoes). `positions` holds B * N positions.
/// Backward: the gradient is rotated back by -theta.
public func rotaryEmbedding(_ x: Tensor, heads: Int, positions: [Int], base: Float) -> Tensor {
    precondition(x.rank == 3 && x.shape[2] % heads == 0, "rotaryEmbedding: x must be [B, N, H*D], got \(x.shape)")
    return rotaryEmbedding(x, heads: heads, angles: RotaryAngles(positions: positions, headDimension: x.shape[2] / heads, base: base))
}

/// `rotaryEmbedding` with the angles computed beforehand.
public func rotaryEmbedding(_ x: Tensor, heads: Int, angles: RotaryAngles) -> Tensor {
    precondition(x.rank == 3, "rotaryEmbedding: x must be [B, N, H*D], got \(x.shape)")
    let tokens = x.shape[0] * x.shape[1], width = x.shape[2]
    precondition(angles.tokens == tokens, "rotaryEmbedding: angles for \(angles.tokens) tokens, x has \(tokens)")
    precondition(width == heads * 2 * angles.half, "rotaryEmbedding: width \(width), \(heads) heads of \(2 * angles.half)")
    let headDim = 2 * angles.half, half = angles.half
    func rotate(_ source: UnsafePointer<Float>, _ target: UnsafeMutablePointer<Float>, sign: Float, accumulate: Bool) {
        angles.cosines.withUnsafeBufferPointer { cosBuffer in
            angles.sines.withUnsafeBufferPointer { sinBuffer in
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
