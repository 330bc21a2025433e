import XCTest
import Engine

/// Every differentiable op against central finite differences.
final class OpGradientTests: XCTestCase {
    func testBroadcastBinaryOps() {
        let a = random([3, 4, 5], seed: 1), b = random([4, 1], seed: 2), c = random([5], seed: 3)
        checkGradients("add", inputs: [a, b]) { $0[0] + $0[1] }
        checkGradients("subtract", inputs: [a, c]) { $0[0] - $0[1] }
        checkGradients("multiply", inputs: [a, b]) { $0[0] * $0[1] }
        let positive = Tensor(shape: [4, 1], values: [1.5, 2, 2.5, 3])
        checkGradients("divide", inputs: [a, positive]) { $0[0] / $0[1] }
        let same = random([3, 4, 5], seed: 4)
        checkGradients("multiply same shape", inputs: [a, same]) { $0[0] * $0[1] }
        checkGradients("divide same shape", inputs: [a, same.affine(scale: 0.1, offset: 3)]) { $0[0] / $0[1] }
    }

    func testUnaryOps() {
        let x = random([4, 37], seed: 5, std: 2)
        checkGradients("affine", inputs: [x]) { $0[0].affine(scale: -1.5, offset: 0.3) }
        checkGradients("gelu", inputs: [x], epsilon: 1e-3) { gelu($0[0]) }
        let awayFromKink = x.copy()
        for i in 0..<awayFromKink.count where abs(awayFromKink.data[i]) < 0.05 { awayFromKink.data[i] = 0.5 }
        checkGradients("relu", inputs: [awayFromKink]) { relu($0[0]) }
    }

    func testReductions() {
        let x = random([3, 4, 5], seed: 6)
        checkGradients("sum", inputs: [x]) { $0[0].sum() }
        checkGradients("mean", inputs: [x]) { $0[0].mean() }
        checkGradients("sum axis 1", inputs: [x]) { $0[0].sum(axis: 1) }
        checkGradients("mean axis -1 keepDims", inputs: [x]) { $0[0].mean(axis: -1, keepDims: true) }
    }

    func testLinear() {
        let x = random([2, 3, 6], seed: 7), w = random([5, 6], seed: 8), b = random([5], seed: 9)
        checkGradients("linear", inputs: [x, w, b]) { linear($0[0], $0[1], $0[2]) }
        checkGradients("linear without bias", inputs: [x, w]) { linear($0[0], $0[1]) }
    }

    func testMatmul() {
        let a = random([2, 3, 4], seed: 10), shared = random([4, 5], seed: 11), batched = random([2, 4, 5], seed: 12)
        checkGradients("matmul shared", inputs: [a, shared]) { matmul($0[0], $0[1]) }
        checkGradients("matmul batched", inputs: [a, batched]) { matmul($0[0], $0[1]) }
        let bt = random([2, 5, 4], seed: 13)
        checkGradients("matmul transposeB", inputs: [a, bt]) { matmul($0[0], $0[1], transposeB: true) }
    }

    func testShapeOps() {
        let x = random([2, 3, 4], seed: 14), y = random([2, 2, 4], seed: 15)
        checkGradients("reshape", inputs: [x]) { $0[0].reshaped([6, -1]) * $0[0].reshaped([6, 4]) }
        checkGradients("permute", inputs: [x]) { $0[0].permuted([2, 0, 1]) }
        checkGradients("transpose", inputs: [x]) { $0[0].transposed() }
        checkGradients("slice", inputs: [x]) { $0[0].slice(axis: 1, 1..<3) }
        checkGradients("concat", inputs: [x, y]) { concat([$0[0], $0[1]], axis: 1) }
        let table = random([7, 3], seed: 16)
        checkGradients("gatherRows", inputs: [table]) { gatherRows($0[0], indices: [1, 5, 1, 0], indexShape: [2, 2]) }
    }

    func testLayerNorm() {
        let x = random([2, 3, 16], seed: 17), w = random([16], seed: 18), b = random([16], seed: 19)
        checkGradients("layerNorm", inputs: [x, w, b], epsilon: 1e-3) { layerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-6) }
    }

    func testSoftmax() {
        let x = random([3, 20], seed: 20)
        checkGradients("softmax", inputs: [x], epsilon: 1e-3) { softmax($0[0]) }
    }

    func testAttention() {
        let q = random([2, 5, 8], seed: 21), k = random([2, 5, 8], seed: 22), v = random([2, 5, 8], seed: 23)
        checkGradients("attention", inputs: [q, k, v], epsilon: 1e-3) {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 2)
        }
        var mask = [Float](repeating: 0, count: 10)
        mask[8] = -.infinity; mask[9] = -.infinity
        checkGradients("attention with key mask", inputs: [q, k, v], epsilon: 1e-3) {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 4, keyMask: mask)
        }
    }

    func testCrossEntropy() {
        let logits = random([4, 6], seed: 24)
        checkGradients("crossEntropy", inputs: [logits], epsilon: 1e-3) { crossEntropy($0[0], labels: [0, 5, 2, 2]) }
        checkGradients("crossEntropy smoothed", inputs: [logits], epsilon: 1e-3) {
            crossEntropy($0[0], labels: [1, 3, 4, 0], smoothing: 0.1)
        }
    }

    func testDropout() {
        let x = random([4, 50], seed: 25)
        checkGradients("dropout", inputs: [x]) { inputs in
            var generator = RandomGenerator(seed: 3)
            return dropout(inputs[0], probability: 0.3, generator: &generator)
        }
    }

    func testPatchify() {
        let images = random([2, 3, 9, 8], seed: 26)
        checkGradients("patchify", inputs: [images]) { patchify($0[0], patchSize: 4) }
    }

    func testResampleGrid() {
        let grid = random([5, 5, 3], seed: 27)
        let rows = bicubicWeights(inSize: 5, outSize: 3), columns = bicubicWeights(inSize: 5, outSize: 7)
        checkGradients("resampleGrid", inputs: [grid]) { resampleGrid($0[0], rowWeights: rows, columnWeights: columns) }
    }
}
