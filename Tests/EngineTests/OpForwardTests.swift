import XCTest
import Foundation
import Engine
import BLASBinding

/// Forward results against direct (naive) computations.
final class OpForwardTests: XCTestCase {
    func testOpenBLASUsesFastKernelsOnThisCPU() {
        let blas = OpenBLAS.shared
        XCTAssertNotEqual(blas.coreName.lowercased(), "prescott", "OpenBLAS runs its slowest kernels: \(blas.summary)")
    }

    func testExpAndErfAccuracy() {
        for x in stride(from: -20.0 as Float, through: 20, by: 0.37) {
            let e = vectorExp(Float16x(repeating: x))[0]
            XCTAssertEqual(e, Foundation.exp(x), accuracy: Foundation.exp(x) * 1e-6, "exp(\(x))")
        }
        for x in stride(from: -6.0 as Float, through: 6, by: 0.05) {
            XCTAssertEqual(vectorErf(Float16x(repeating: x))[0], Foundation.erf(x), accuracy: 3e-7, "erf(\(x))")
        }
    }

    func testGeluMatchesErfDefinition() {
        let x = random([1000], seed: 1, std: 3)
        let y = gelu(x)
        for i in 0..<x.count {
            let v = Double(x.data[i])
            XCTAssertEqual(Double(y.data[i]), 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot())), accuracy: 1e-6)
        }
    }

    func testMatmulMatchesNaive() {
        let a = random([7, 9], seed: 2), b = random([9, 5], seed: 3)
        let c = matmul(a, b)
        for i in 0..<7 { for j in 0..<5 {
            var s: Float = 0
            for k in 0..<9 { s += a[i, k] * b[k, j] }
            XCTAssertEqual(c[i, j], s, accuracy: 1e-4)
        } }
    }

    func testLinearMatchesMatmulPlusBias() {
        let x = random([3, 4], seed: 4), w = random([6, 4], seed: 5), b = random([6], seed: 6)
        let expected = matmul(x, w, transposeB: true) + b
        assertClose(linear(x, w, b).values, expected.values)
    }

    func testAttentionMatchesComposedOps() {
        let q = random([2, 6, 8], seed: 7), k = random([2, 6, 8], seed: 8), v = random([2, 6, 8], seed: 9)
        let fused = scaledDotProductAttention(query: q, key: k, value: v, heads: 2)
        func heads(_ t: Tensor) -> Tensor { t.reshaped([2, 6, 2, 4]).permuted([0, 2, 1, 3]) }
        let scores = matmul(heads(q), heads(k), transposeB: true).scaled(by: 0.5)
        let composed = matmul(softmax(scores), heads(v)).permuted([0, 2, 1, 3]).reshaped([2, 6, 8])
        assertClose(fused.values, composed.values, tolerance: 1e-5)
    }

    func testLayerNormNormalises() {
        let x = random([5, 64], seed: 10, std: 4)
        let y = layerNorm(x, weight: Tensor(shape: [64], repeating: 1), bias: Tensor(zeros: [64]), eps: 1e-6)
        for r in 0..<5 {
            let row = (0..<64).map { y[r, $0] }
            XCTAssertEqual(row.reduce(0, +) / 64, 0, accuracy: 1e-5)
            XCTAssertEqual(row.map { $0 * $0 }.reduce(0, +) / 64, 1, accuracy: 1e-3)
        }
    }

    func testCrossEntropyValue() {
        let logits = Tensor(shape: [1, 3], values: [1, 2, 3])
        let logZ = Foundation.log(Foundation.exp(1.0) + Foundation.exp(2.0) + Foundation.exp(3.0))
        XCTAssertEqual(Double(crossEntropy(logits, labels: [2]).item), logZ - 3, accuracy: 1e-5)
        let smoothed = 0.9 * (logZ - 3) + 0.1 / 3 * ((logZ - 1) + (logZ - 2) + (logZ - 3))
        XCTAssertEqual(Double(crossEntropy(logits, labels: [2], smoothing: 0.1).item), smoothed, accuracy: 1e-5)
    }

    func testBicubicWeightsMatchCubicConvolution() {
        let w = bicubicWeights(inSize: 37, outSize: 8)
        for o in 0..<8 { XCTAssertEqual((0..<37).map { w[o, $0] }.reduce(0, +), 1, accuracy: 1e-5) }
        // Identity when sizes agree.
        let same = bicubicWeights(inSize: 5, outSize: 5)
        for i in 0..<5 { for j in 0..<5 { XCTAssertEqual(same[i, j], i == j ? 1 : 0, accuracy: 1e-6) } }
    }

    func testPatchifyLayout() {
        let images = Tensor(shape: [1, 2, 4, 4], values: (0..<32).map(Float.init))
        let patches = patchify(images, patchSize: 2)
        XCTAssertEqual(patches.shape, [1, 4, 8])
        // Patch 1 (top right): channel 0 rows 0-1 cols 2-3, then channel 1.
        XCTAssertEqual((0..<8).map { patches[0, 1, $0] }, [2, 3, 6, 7, 18, 19, 22, 23])
    }

    func testBackwardAccumulatesAndFreesGraph() {
        let w = Tensor(shape: [2], values: [1, 2], requiresGrad: true)
        let y = (w * w).sum()
        y.backward()
        XCTAssertEqual(w.grad?.values, [2, 4])
        XCTAssertNil(y.producerName, "graph should be released after backward")
        (w * w).sum().backward()
        XCTAssertEqual(w.grad?.values, [4, 8], "gradients accumulate until zeroGrad")
    }

    func testNoGradRecordsNothing() {
        let w = Tensor(shape: [2], values: [1, 2], requiresGrad: true)
        let y = Autograd.withoutGrad { (w * w).sum() }
        XCTAssertNil(y.producerName)
    }
}
