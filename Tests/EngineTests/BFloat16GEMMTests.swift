import XCTest
import Engine

/// The bfloat16 GEMM (AVX-512 BF16) against a float64 reference, and linear layers in bf16 mode against float32.
final class BFloat16GEMMTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(GEMMSettings.bfloat16Supported, "this CPU has no AVX-512 BF16")
    }

    /// Every element within the error bound of rounding both operands to bfloat16 (relative 2^-8 each):
    /// |C - C_ref| <= 2 * 2^-8 * sum_k |a_ik b_kj| (+ float32 accumulation, far smaller).
    func testMatchesFloat64ReferenceWithinBFloat16Bound() {
        var generator = RandomGenerator(seed: 5)
        // (m, n, k): edge panels (n not a multiple of 32), odd k, rows not a multiple of 12, several k blocks.
        let shapes = [(37, 45, 33), (100, 70, 64), (130, 96, 800), (24, 32, 2), (61, 530, 47)]
        for (m, n, k) in shapes {
            for transB in [false, true] {
                let cases: [(Float, Float, Bool)] = [(1, 0, false), (0.5, 1, false), (2, -0.5, true), (1, 0, true)]
                for (alpha, beta, withBias) in cases {
                    let a = Tensor.randomNormal([m, k], generator: &generator)
                    let b = Tensor.randomNormal(transB ? [n, k] : [k, n], generator: &generator)
                    let c = Tensor.randomNormal([m, n], generator: &generator)
                    let bias = Tensor.randomNormal([n], generator: &generator)
                    let initial = c.values
                    bfloat16GEMM(transB: transB, m: m, n: n, k: k, alpha: alpha, a: a.data, lda: k,
                                 b: b.data, ldb: transB ? k : n, bias: withBias ? UnsafePointer(bias.data) : nil,
                                 beta: beta, c: c.data, ldc: n)
                    var worst = 0.0
                    for i in 0..<m {
                        for j in 0..<n {
                            var exact = 0.0, magnitude = 0.0
                            for p in 0..<k {
                                let bv = Double(transB ? b.data[j * k + p] : b.data[p * n + j])
                                exact += Double(a.data[i * k + p]) * bv
                                magnitude += abs(Double(a.data[i * k + p]) * bv)
                            }
                            let expected = Double(alpha) * exact + Double(beta) * Double(initial[i * n + j])
                                + (withBias ? Double(bias.data[j]) : 0)
                            let bound = 2 * pow(2, -8) * abs(Double(alpha)) * magnitude + 1e-5 * (1 + abs(expected))
                            worst = max(worst, abs(Double(c.data[i * n + j]) - expected) / bound)
                        }
                    }
                    XCTAssertLessThanOrEqual(worst, 1, "m \(m) n \(n) k \(k) transB \(transB) alpha \(alpha) beta \(beta) bias \(withBias)")
                }
            }
        }
    }

    /// Strided operands (leading dimensions larger than the row length) read and write only their own columns.
    func testLeadingDimensions() {
        var generator = RandomGenerator(seed: 6)
        let m = 30, n = 40, k = 20, lda = 25, ldb = 44, ldc = 50
        let a = Tensor.randomNormal([m, lda], generator: &generator)
        let b = Tensor.randomNormal([k, ldb], generator: &generator)
        let c = Tensor(shape: [m, ldc], repeating: 7)
        bfloat16GEMM(transB: false, m: m, n: n, k: k, alpha: 1, a: a.data, lda: lda, b: b.data, ldb: ldb,
                     beta: 0, c: c.data, ldc: ldc)
        for i in 0..<m {
            for j in 0..<ldc {
                if j >= n { XCTAssertEqual(c.data[i * ldc + j], 7); continue }
                var exact: Float = 0
                for p in 0..<k { exact += a.data[i * lda + p] * b.data[p * ldb + j] }
                XCTAssertEqual(c.data[i * ldc + j], exact, accuracy: 0.05)
            }
        }
    }

    /// A linear layer's output, input gradient and weight gradient in bf16 mode stay within bfloat16 error of
    /// float32 (and do change: the products really ran in bf16); the bias gradient (a float32 sum) agrees closely.
    func testLinearInBFloat16ModeMatchesFloat32() {
        var generator = RandomGenerator(seed: 7)
        let x = Tensor.randomNormal([4, 64, 96], generator: &generator)
        let w = Tensor.randomNormal([128, 96], std: 0.1, generator: &generator)
        let bias = Tensor.randomNormal([128], generator: &generator)
        let probe = Tensor.randomNormal([4, 64, 128], generator: &generator)
        func run(_ precision: GEMMPrecision) -> (out: [Float], dx: [Float], dw: [Float], db: [Float]) {
            ExecutionContext.with({ $0.precision = precision }) {
                for t in [x, w, bias] { t.requiresGrad = true; t.grad = nil }
                let out = linear(x, w, bias)
                out.backward(gradient: probe)
                defer { for t in [x, w, bias] { t.requiresGrad = false; t.grad = nil } }
                return (out.values, x.grad!.values, w.grad!.values, bias.grad!.values)
            }
        }
        let reference = run(.float32), reduced = run(.bfloat16)
        XCTAssertLessThan(relativeError(reduced.out, reference.out), 6e-3)
        XCTAssertGreaterThan(relativeError(reduced.out, reference.out), 0, "bf16 mode did not change the forward")
        XCTAssertLessThan(relativeError(reduced.dx, reference.dx), 6e-3)
        XCTAssertLessThan(relativeError(reduced.dw, reference.dw), 6e-3)
        XCTAssertGreaterThan(relativeError(reduced.dw, reference.dw), 0, "bf16 mode did not change the weight gradient")
        XCTAssertLessThan(relativeError(reduced.db, reference.db), 1e-6)
    }

    /// Finite differences of a bf16-mode linear layer, taken in float32 mode (the exact function the
    /// bf16 product approximates), agree with its backward within bfloat16 error.
    func testLinearBFloat16GradientAgainstFiniteDifferences() {
        var generator = RandomGenerator(seed: 8)
        let x = Tensor.randomNormal([2, 80, 100], generator: &generator)
        let w = Tensor.randomNormal([120, 100], std: 0.1, generator: &generator)
        x.requiresGrad = true
        let probe = Tensor.randomNormal([2, 80, 120], generator: &generator)
        let analytic = ExecutionContext.with({ $0.precision = .bfloat16 }) {
            let out = linear(x, w)
            out.backward(gradient: probe)
            return x.grad!
        }
        // The finite differences below run in float32 (the exact function the bf16 product approximates).
        let epsilon: Float = 1e-2
        var numeric: [Double] = [], computed: [Double] = []
        for i in Swift.stride(from: 0, to: x.count, by: x.count / 40) {
            let original = x.data[i]
            func loss() -> Double {
                let y = Autograd.withoutGrad { linear(x, w) }
                return (0..<y.count).reduce(0.0) { $0 + Double(y.data[$1]) * Double(probe.data[$1]) }
            }
            x.data[i] = original + epsilon; let plus = loss()
            x.data[i] = original - epsilon; let minus = loss()
            x.data[i] = original
            numeric.append((plus - minus) / Double(2 * epsilon))
            computed.append(Double(analytic.data[i]))
        }
        let difference = zip(numeric, computed).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
        let scale = numeric.map { $0 * $0 }.reduce(0, +).squareRoot()
        XCTAssertLessThan(difference / scale, 1e-2)
    }

    /// Attention in bf16 mode (its per-head products in bfloat16) against float32: forward and all three input
    /// gradients within bfloat16 error, and different from float32 (the bf16 products really ran). Odd and even
    /// token counts, a head size that is not a multiple of 32, and a padding mask.
    func testAttentionInBFloat16ModeMatchesFloat32() {
        for (tokens, width, heads) in [(65, 96, 2), (30, 72, 3)] {
            let q = random([2, tokens, width], seed: 80), k = random([2, tokens, width], seed: 81)
            let v = random([2, tokens, width], seed: 82), probe = random([2, tokens, width], seed: 83)
            var mask = [Float](repeating: 0, count: 2 * tokens)
            mask[tokens - 1] = -.infinity; mask[2 * tokens - 3] = -.infinity
            func run(_ precision: GEMMPrecision) -> [[Float]] {
                ExecutionContext.with({ $0.precision = precision }) {
                    for t in [q, k, v] { t.requiresGrad = true; t.grad = nil }
                    let out = scaledDotProductAttention(query: q, key: k, value: v, heads: heads, keyMask: mask)
                    out.backward(gradient: probe)
                    defer { for t in [q, k, v] { t.requiresGrad = false; t.grad = nil } }
                    return [out.values] + [q, k, v].map { $0.grad!.values }
                }
            }
            let reference = run(.float32), reduced = run(.bfloat16)
            for (index, name) in ["output", "dq", "dk", "dv"].enumerated() {
                let error = relativeError(reduced[index], reference[index])
                XCTAssertLessThan(error, 2e-2, "\(name) at \(tokens) tokens")
                XCTAssertGreaterThan(error, 0, "\(name) at \(tokens) tokens: bf16 mode changed nothing")
            }
        }
    }

    /// In bf16 mode too, recomputing P in the backward gives bit-identical gradients to keeping it.
    func testAttentionBFloat16RecomputeEqualsStored() {
        func run(threshold: Int) -> [[Float]] {
            ExecutionContext.with({ $0.precision = .bfloat16; $0.attentionRecomputeAboveTokens = threshold }) { runOnce() }
        }
        func runOnce() -> [[Float]] {
            let inputs = [random([2, 33, 64], seed: 84), random([2, 33, 64], seed: 85), random([2, 33, 64], seed: 86)]
            for x in inputs { x.requiresGrad = true }
            let out = scaledDotProductAttention(query: inputs[0], key: inputs[1], value: inputs[2], heads: 2)
            out.backward(gradient: random(out.shape, seed: 87))
            return [out.values] + inputs.map { $0.grad!.values }
        }
        XCTAssertEqual(run(threshold: 1_000), run(threshold: 0))
    }

    private func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        let difference = zip(a, b).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
        return difference / max(b.map { Double($0) * Double($0) }.reduce(0, +).squareRoot(), 1e-12)
    }
}
