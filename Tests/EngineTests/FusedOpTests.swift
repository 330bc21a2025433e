import XCTest
import Engine

/// The fused ops (LoRA's `lowRankLinear`, the block's `residualAdd`, the GEMM bias epilogue): finite-difference
/// gradients, and agreement with the unfused ops they replace.
final class FusedOpTests: XCTestCase {
    func testLowRankLinearGradients() {
        let x = random([2, 3, 6], seed: 1), u = random([2, 3, 6], seed: 2)
        let w = random([5, 6], seed: 3), bias = random([5], seed: 4)
        let a = random([2, 6], seed: 5), b = random([5, 2], seed: 6)
        checkGradients("lowRankLinear", inputs: [x, w, bias, u, a, b]) {
            lowRankLinear($0[0], weight: $0[1], bias: $0[2], lowRankInput: $0[3], a: $0[4], b: $0[5], scale: 0.7)
        }
        // The low-rank path reading x itself: x's gradient collects both paths.
        checkGradients("lowRankLinear on x", inputs: [x, w, a, b]) {
            lowRankLinear($0[0], weight: $0[1], bias: nil, lowRankInput: $0[0], a: $0[2], b: $0[3], scale: 2)
        }
    }

    /// At sizes where every product is split over the cores, the fused op gives the unfused
    /// x W^T + b + scale (u A^T) B^T and its gradients, with W frozen as in LoRA.
    func testLowRankLinearMatchesUnfusedOps() {
        let x = random([3, 100, 96], seed: 7), u = random([3, 100, 96], seed: 8)
        let w = random([128, 96], seed: 9, std: 0.1), bias = random([128], seed: 10)
        let a = random([4, 96], seed: 11, std: 0.1), b = random([128, 4], seed: 12, std: 0.1)
        let probe = random([3, 100, 128], seed: 13)
        func run(_ fused: Bool) -> [[Float]] {
            for t in [x, u, a, b] { t.requiresGrad = true; t.grad = nil }
            let y = fused
                ? lowRankLinear(x, weight: w, bias: bias, lowRankInput: u, a: a, b: b, scale: 0.5)
                : linear(x, w, bias) + linear(linear(u, a), b).scaled(by: 0.5)
            y.backward(gradient: probe)
            return [y.values] + [x, u, a, b].map { $0.grad?.values ?? [] }
        }
        let fused = run(true), reference = run(false)
        for (index, name) in ["output", "dx", "du", "dA", "dB"].enumerated() {
            XCTAssertFalse(fused[index].isEmpty, name)
            assertClose(fused[index], reference[index], tolerance: 1e-4, name)
        }
        XCTAssertNil(w.grad, "the frozen weight gets no gradient")
    }

    /// Attention writes dV, dQ and dK into fresh gradient buffers without zero-filling them; a tensor passed as
    /// two or three of the inputs must still get the sum of its gradients.
    func testAttentionWithSharedInputs() {
        let x = random([2, 5, 8], seed: 25), y = random([2, 5, 8], seed: 26)
        checkGradients("attention(x, x, x)", inputs: [x], epsilon: 1e-3) {
            scaledDotProductAttention(query: $0[0], key: $0[0], value: $0[0], heads: 2)
        }
        checkGradients("attention(x, y, x)", inputs: [x, y], epsilon: 1e-3) {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[0], heads: 2)
        }
        checkGradients("attention(x, x, y)", inputs: [x, y], epsilon: 1e-3) {
            scaledDotProductAttention(query: $0[0], key: $0[0], value: $0[1], heads: 2)
        }
        checkGradients("attention(y, x, x)", inputs: [x, y], epsilon: 1e-3) {
            scaledDotProductAttention(query: $0[1], key: $0[0], value: $0[0], heads: 2)
        }
    }

    func testResidualAddGradients() {
        let x = random([2, 3, 5], seed: 14), branch = random([2, 3, 5], seed: 15), scale = random([5], seed: 16)
        checkGradients("residualAdd scaled", inputs: [x, branch, scale]) { residualAdd($0[0], $0[1], scale: $0[2]) }
        checkGradients("residualAdd", inputs: [x, branch]) { residualAdd($0[0], $0[1]) }
        checkGradients("residualAdd of x and x", inputs: [x, scale]) { residualAdd($0[0], $0[0], scale: $0[1]) }
    }

    /// Same values and gradients as x + branch * scale, where x is an intermediate result (so it takes over the
    /// output gradient's buffer) and the scale is frozen.
    func testResidualAddMatchesUnfusedOps() {
        let source = random([4, 65, 48], seed: 17), branch = random([4, 65, 48], seed: 18)
        let scale = random([48], seed: 19), probe = random([4, 65, 48], seed: 20)
        func run(_ fused: Bool) -> [[Float]] {
            for t in [source, branch] { t.requiresGrad = true; t.grad = nil }
            let x = source.scaled(by: 1.5)
            let y = fused ? residualAdd(x, branch, scale: scale) : x + branch * scale
            y.backward(gradient: probe)
            return [y.values, source.grad?.values ?? [], branch.grad?.values ?? []]
        }
        let fused = run(true), reference = run(false)
        for (index, name) in ["output", "d source", "d branch"].enumerated() {
            XCTAssertFalse(fused[index].isEmpty, name)
            assertClose(fused[index], reference[index], tolerance: 1e-6, name)
        }
    }

    /// C = alpha A op(B) + bias + beta C on OpenBLAS, split by rows (tall C) and by columns (wide C), for beta 0
    /// and beta != 0, against a float64 reference.
    func testGEMMBiasEpilogue() {
        for (m, n, k) in [(300, 80, 96), (40, 700, 96), (5, 7, 3)] {
            for beta in [Float(0), Float(0.5)] {
                let a = random([m, k], seed: 21), b = random([n, k], seed: 22)
                let bias = random([n], seed: 23), c = random([m, n], seed: 24)
                let initial = c.values
                gemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 2, a: a.data, lda: k, b: b.data, ldb: k,
                     bias: bias.data, beta: beta, c: c.data, ldc: n)
                var worst: Float = 0
                for i in 0..<m {
                    for j in 0..<n {
                        var dot = 0.0
                        for p in 0..<k { dot += Double(a.data[i * k + p]) * Double(b.data[j * k + p]) }
                        let expected = 2 * dot + Double(bias.data[j]) + Double(beta) * Double(initial[i * n + j])
                        worst = max(worst, Float(abs(Double(c.data[i * n + j]) - expected)))
                    }
                }
                XCTAssertLessThan(worst, 1e-3, "m \(m) n \(n) k \(k) beta \(beta)")
            }
        }
    }
}
