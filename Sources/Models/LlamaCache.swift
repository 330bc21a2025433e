import Engine
import Foundation
import Layers

/// The keys and values a Llama model has computed so far, per block, for a batch of sequences of one padded length:
/// each step appends the new tokens' rotated keys and values, so the next tokens attend to them without recomputing.
public final class LlamaKVCache {
    public let batch: Int
    /// Tokens the cache can hold per row.
    public let capacity: Int
    /// Tokens held per row so far (padding included).
    public internal(set) var length = 0
    let width: Int
    var keys: [[Float]]
    var values: [[Float]]
    /// Additive key mask, batch x capacity (0: a token, -infinity: padding).
    var keyMask: [Float]
    /// The rotary position of each row's next real token.
    var nextPosition: [Int]

    /// An empty cache for `batch` rows of up to `capacity` tokens of `model`.
    public init(for model: LlamaModel, batch: Int, capacity: Int) throws {
        let c = model.configuration
        guard batch > 0, capacity > 0, capacity <= c.contextLength else {
            throw LlamaError("a cache of \(batch) rows x \(capacity) tokens: both must be positive and the tokens at most the context of \(c.contextLength)")
        }
        self.batch = batch
        self.capacity = capacity
        width = c.keyValueHeads * c.headDimension
        keys = Array(repeating: [Float](repeating: 0, count: batch * capacity * width), count: c.layers)
        values = keys
        keyMask = [Float](repeating: 0, count: batch * capacity)
        nextPosition = [Int](repeating: 0, count: batch)
    }
}

extension LlamaModel {
    /// Runs `ids` (B rows of n new tokens) through the model after the tokens already in `cache`, appends their keys
    /// and values to it, and returns the logits of the new tokens [B, n, vocabulary]. `attentionMask` (B x n, 1 for a
    /// token, 0 for padding) marks padding among the new tokens; padding is never attended to and takes no position.
    /// Runs without recording gradients.
    public func forward(_ ids: [[Int32]], attentionMask: [[Int]]? = nil, cache: LlamaKVCache) throws -> Tensor {
        let c = configuration
        let batch = ids.count, count = ids.first?.count ?? 0
        guard batch == cache.batch, count > 0, ids.allSatisfy({ $0.count == count }) else {
            throw LlamaError("expected \(cache.batch) rows of one non-zero length, got \(ids.map(\.count))")
        }
        guard cache.length + count <= cache.capacity else {
            throw LlamaError("\(cache.length) + \(count) tokens exceed the cache's \(cache.capacity)")
        }
        try checkTokenIDs(ids)
        if let attentionMask, attentionMask.count != batch || !attentionMask.allSatisfy({ $0.count == count }) {
            throw LlamaError("the attention mask must be \(batch) x \(count)")
        }
        let start = cache.length
        var positions = [Int](repeating: 0, count: batch * count)
        for b in 0..<batch {
            for t in 0..<count {
                let real = attentionMask?[b][t] ?? 1 != 0
                cache.keyMask[b * cache.capacity + start + t] = real ? 0 : -.infinity
                positions[b * count + t] = cache.nextPosition[b]
                if real { cache.nextPosition[b] += 1 }
            }
        }
        let angles = RotaryAngles(positions: positions, headDimension: c.headDimension, base: c.ropeBase)
        // A decoding step (one new token per row) is a few hundred short parallel calls: helpers that stay awake
        // between them pay there.
        func step() -> Tensor { Autograd.withoutGrad {
            var x = decoder.embedding(ids.flatMap { $0 }, shape: [batch, count])
            for (layer, block) in decoder.blocks.enumerated() {
                x = block(x, angles: angles) { q, k, v in
                    append(k, v, to: cache, layer: layer, at: start)
                    return cachedAttention(q, cache: cache, layer: layer, start: start)
                }
            }
            cache.length = start + count
            return outputLogits(decoder.norm(x))
        } }
        return count == 1 ? Parallel.withSpinningHelpers(step) : step()
    }

    private func append(_ k: Tensor, _ v: Tensor, to cache: LlamaKVCache, layer: Int, at start: Int) {
        let batch = cache.batch, count = k.shape[1], width = cache.width
        let pk = k.data, pv = v.data
        cache.keys[layer].withUnsafeMutableBufferPointer { keys in
            cache.values[layer].withUnsafeMutableBufferPointer { values in
                for b in 0..<batch {
                    for t in 0..<count {
                        let target = (b * cache.capacity + start + t) * width, source = (b * count + t) * width
                        (keys.baseAddress! + target).update(from: pk + source, count: width)
                        (values.baseAddress! + target).update(from: pv + source, count: width)
                    }
                }
            }
        }
    }

    /// softmax(q K^T / sqrt(d) + mask) V for the new queries against every cached key up to their own position
    /// (grouped-query: query head h reads key/value head h / groups).
    private func cachedAttention(_ q: Tensor, cache: LlamaKVCache, layer: Int, start: Int) -> Tensor {
        let c = configuration
        let batch = cache.batch, count = q.shape[1], heads = c.heads, headDim = c.headDimension
        let groups = heads / c.keyValueHeads, width = cache.width, qWidth = heads * headDim
        let scale = 1 / Float(headDim).squareRoot()
        let out = Tensor(zeros: [batch, count, qWidth])
        let pq = q.data, po = out.data
        cache.keys[layer].withUnsafeBufferPointer { keys in
            cache.values[layer].withUnsafeBufferPointer { values in
                cache.keyMask.withUnsafeBufferPointer { mask in
                    let pk = keys.baseAddress!, pv = values.baseAddress!, pm = mask.baseAddress!
                    Parallel.forEachChunk(batch * count * heads, grain: 4) { range in
                        var scores = [Float](repeating: 0, count: start + count)
                        for item in range {
                            let h = item % heads, t = (item / heads) % count, b = item / (heads * count)
                            let visible = start + t + 1
                            let query = pq + (b * count + t) * qWidth + h * headDim
                            let kvOffset = (h / groups) * headDim
                            var maximum = -Float.infinity
                            for j in 0..<visible {
                                let key = pk + (b * cache.capacity + j) * width + kvOffset
                                let score = dotProduct(query, key, headDim) * scale + pm[b * cache.capacity + j]
                                scores[j] = score
                                maximum = max(maximum, score)
                            }
                            guard maximum > -.infinity else { continue }
                            var total: Float = 0
                            for j in 0..<visible { scores[j] = Foundation.exp(scores[j] - maximum); total += scores[j] }
                            let target = po + (b * count + t) * qWidth + h * headDim
                            for j in 0..<visible where scores[j] > 0 {
                                let weight = scores[j] / total
                                addScaled(weight, pv + (b * cache.capacity + j) * width + kvOffset, to: target, headDim)
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}

/// The dot product of n floats, eight lanes at a time in two accumulators (a head's query with one cached key).
@inline(__always)
private func dotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    var even = SIMD8<Float>(), odd = SIMD8<Float>()
    var d = 0
    while d + 16 <= n {
        even += ra.loadUnaligned(fromByteOffset: 4 * d, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: 4 * d, as: SIMD8<Float>.self)
        odd += ra.loadUnaligned(fromByteOffset: 4 * d + 32, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: 4 * d + 32, as: SIMD8<Float>.self)
        d += 16
    }
    var total = (even + odd).sum()
    while d < n { total += a[d] * b[d]; d += 1 }
    return total
}

/// target[0..<n] += weight * value[0..<n], eight lanes at a time (one cached value row into a head's output).
@inline(__always)
private func addScaled(_ weight: Float, _ value: UnsafePointer<Float>, to target: UnsafeMutablePointer<Float>, _ n: Int) {
    let source = UnsafeRawPointer(value), destination = UnsafeMutableRawPointer(target)
    let w = SIMD8<Float>(repeating: weight)
    var d = 0
    while d + 8 <= n {
        let sum = destination.loadUnaligned(fromByteOffset: 4 * d, as: SIMD8<Float>.self)
            + w * source.loadUnaligned(fromByteOffset: 4 * d, as: SIMD8<Float>.self)
        destination.storeBytes(of: sum, toByteOffset: 4 * d, as: SIMD8<Float>.self)
        d += 8
    }
    while d < n { target[d] += weight * value[d]; d += 1 }
}
