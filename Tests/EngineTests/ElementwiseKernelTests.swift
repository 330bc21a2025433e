import Foundation
import XCTest
import Engine

/// The AVX-512 elementwise kernels (VectorKernels) and the portable Swift SIMD code must compute the same
/// values and gradients; both paths also get their own finite-difference checks.
final class ElementwiseKernelTests: XCTestCase {
    /// Runs `body` with the AVX-512 kernels switched on or off, restoring the previous setting.
    private func withKernels<T>(avx512: Bool, _ body: () throws -> T) rethrows -> T {
        try ExecutionContext.with({ $0.prefersAVX512Kernels = avx512 }, body)
    }

    private func requireAVX512() throws {
        try XCTSkipUnless(ElementwiseKernels.avx512Supported, "this CPU has no AVX-512: only the Swift path exists")
    }

    /// Forward output and the gradient of every input for sum(f(inputs) * probe).
    private func run(_ inputs: [Tensor], avx512: Bool, _ f: ([Tensor]) -> Tensor) -> (out: [Float], grads: [[Float]]) {
        withKernels(avx512: avx512) {
            let copies = inputs.map { Tensor(shape: $0.shape, values: $0.values, requiresGrad: true) }
            let out = f(copies)
            var generator = RandomGenerator(seed: 5)
            out.backward(gradient: Tensor.randomNormal(out.shape, generator: &generator))
            return (out.values, copies.map { $0.grad?.values ?? [] })
        }
    }

    private func assertPathsAgree(_ name: String, _ inputs: [Tensor], tolerance: Float = 2e-5,
                                  file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor) {
        let fast = run(inputs, avx512: true, f), portable = run(inputs, avx512: false, f)
        func check(_ a: [Float], _ b: [Float], _ what: String) {
            XCTAssertEqual(a.count, b.count, "\(name) \(what): sizes", file: file, line: line)
            XCTAssertFalse(a.isEmpty, "\(name) \(what): empty", file: file, line: line)
            let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
            XCTAssertLessThan(worst, tolerance, "\(name) \(what): AVX-512 and Swift paths differ by \(worst)",
                              file: file, line: line)
        }
        check(fast.out, portable.out, "output")
        for (index, (g1, g2)) in zip(fast.grads, portable.grads).enumerated() { check(g1, g2, "gradient \(index)") }
    }

    func testGELUPathsAgreeIncludingTails() throws {
        try requireAVX512()
        for count in [1, 15, 16, 17, 1000, 1537] {
            assertPathsAgree("gelu[\(count)]", [random([count], seed: UInt64(count), std: 3)]) { gelu($0[0]) }
        }
    }

    func testGELUMatchesFloat64Reference() {
        let xs: [Float] = stride(from: -12, through: 12, by: 0.37).map { Float($0) } + [0, -0.0, 1e-6, 40, -40]
        for avx512 in [true, false] where !avx512 || ElementwiseKernels.avx512Supported {
            let y = withKernels(avx512: avx512) { gelu(Tensor(shape: [xs.count], values: xs)).values }
            for (x, value) in zip(xs, y) {
                let reference = 0.5 * Double(x) * (1 + erf(Double(x) / 2.0.squareRoot()))
                XCTAssertEqual(Double(value), reference, accuracy: 1e-6 * max(1, abs(reference)),
                               "gelu(\(x)) with avx512 \(avx512)")
            }
        }
    }

    func testLayerNormPathsAgree() throws {
        try requireAVX512()
        for width in [16, 37, 384] {
            let x = random([3, 7, width], seed: 40, std: 2), w = random([width], seed: 41), b = random([width], seed: 42)
            assertPathsAgree("layerNorm[\(width)]", [x, w, b]) { layerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-6) }
        }
    }

    func testSoftmaxAndAttentionPathsAgree() throws {
        try requireAVX512()
        assertPathsAgree("softmax", [random([5, 37], seed: 50, std: 4)]) { softmax($0[0]) }
        let q = random([2, 19, 24], seed: 51), k = random([2, 19, 24], seed: 52), v = random([2, 19, 24], seed: 53)
        assertPathsAgree("attention", [q, k, v]) {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 3)
        }
        var mask = [Float](repeating: 0, count: 38)
        for j in 15..<19 { mask[j] = -.infinity }
        assertPathsAgree("attention with key mask", [q, k, v]) {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 3, keyMask: mask)
        }
    }

    /// SHiRA's sparse-update linear uses the transpose and sampled-dot kernels in its backward.
    func testSparseUpdateLinearPathsAgreeWithFloat64Reference() throws {
        let tokens = 37, inFeatures = 19, outFeatures = 23
        let rows: [Int32] = [0, 0, 3, 7, 7, 12, 22, 22], columns: [Int32] = [1, 18, 5, 0, 9, 13, 2, 18]
        let x = random([tokens, inFeatures], seed: 80), weight = random([outFeatures, inFeatures], seed: 81)
        let values = random([rows.count], seed: 82), bias = random([outFeatures], seed: 83)
        let f: ([Tensor]) -> Tensor = {
            sparseUpdateLinear($0[0], fusedWeight: weight, bias: $0[2], values: $0[1], valueScale: 0.5,
                               rows: rows, columns: columns)
        }
        if ElementwiseKernels.avx512Supported { assertPathsAgree("sparseUpdateLinear", [x, values, bias], f) }
        for avx512 in [true, false] where !avx512 || ElementwiseKernels.avx512Supported {
            let (out, grads) = run([x, values, bias], avx512: avx512, f)
            XCTAssertEqual(out.count, tokens * outFeatures)
            // The probe of `run` is RandomGenerator(seed: 5) over the output.
            var generator = RandomGenerator(seed: 5)
            let probe = Tensor.randomNormal([tokens, outFeatures], generator: &generator).values
            for i in 0..<rows.count {
                var reference = 0.0
                for t in 0..<tokens {
                    reference += Double(probe[t * outFeatures + Int(rows[i])]) * Double(x.values[t * inFeatures + Int(columns[i])])
                }
                XCTAssertEqual(Double(grads[1][i]), 0.5 * reference, accuracy: 1e-4 * max(1, abs(reference)),
                               "value \(i), avx512 \(avx512)")
            }
        }
    }

    func testSoftmaxOfFullyMaskedRowIsZero() {
        for avx512 in [true, false] where !avx512 || ElementwiseKernels.avx512Supported {
            let values = [Float](repeating: -.infinity, count: 20) + (0..<20).map { Float($0) }
            let y = withKernels(avx512: avx512) { softmax(Tensor(shape: [2, 20], values: values)).values }
            XCTAssertEqual(Array(y[0..<20]), [Float](repeating: 0, count: 20), "avx512 \(avx512)")
            XCTAssertEqual(Double(y[20..<40].reduce(0, +)), 1, accuracy: 1e-5, "avx512 \(avx512)")
        }
    }

    /// The existing finite-difference tests run the default path; these run the other one.
    func testFiniteDifferenceGradientsOnTheOtherPath() {
        let other = !ElementwiseKernels.useAVX512 && ElementwiseKernels.avx512Supported
        withKernels(avx512: other) {
            checkGradients("gelu", inputs: [random([3, 21], seed: 60)], epsilon: 1e-3) { gelu($0[0]) }
            let x = random([2, 3, 37], seed: 61), w = random([37], seed: 62), b = random([37], seed: 63)
            checkGradients("layerNorm", inputs: [x, w, b], epsilon: 1e-3) {
                layerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-6)
            }
            checkGradients("softmax", inputs: [random([3, 20], seed: 64)], epsilon: 1e-3) { softmax($0[0]) }
            let q = random([2, 5, 8], seed: 65), k = random([2, 5, 8], seed: 66), v = random([2, 5, 8], seed: 67)
            checkGradients("attention", inputs: [q, k, v], epsilon: 1e-3) {
                scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 2)
            }
        }
    }
}

/// Attention either keeps its probabilities for the backward or recomputes them per head; both must give the
/// same gradients, and recomputing must not keep the B x H x N x N tensor alive.
final class AttentionRecomputeTests: XCTestCase {
    private func withThreshold<T>(_ tokens: Int, _ body: () throws -> T) rethrows -> T {
        try ExecutionContext.with({ $0.attentionRecomputeAboveTokens = tokens }, body)
    }

    private func gradients(threshold: Int, mask: [Float]?) -> [[Float]] {
        withThreshold(threshold) {
            let inputs = [random([2, 9, 12], seed: 70), random([2, 9, 12], seed: 71), random([2, 9, 12], seed: 72)]
            for x in inputs { x.requiresGrad = true }
            let out = scaledDotProductAttention(query: inputs[0], key: inputs[1], value: inputs[2], heads: 3, keyMask: mask)
            var generator = RandomGenerator(seed: 73)
            out.backward(gradient: Tensor.randomNormal(out.shape, generator: &generator))
            return [out.values] + inputs.map { $0.grad?.values ?? [] }
        }
    }

    func testRecomputedBackwardEqualsStoredBackward() {
        var mask = [Float](repeating: 0, count: 18)
        mask[7] = -.infinity; mask[16] = -.infinity
        for keyMask in [nil, mask] {
            let stored = gradients(threshold: 1_000, mask: keyMask), recomputed = gradients(threshold: 0, mask: keyMask)
            for (a, b) in zip(stored, recomputed) {
                XCTAssertFalse(a.isEmpty)
                // Same kernels, same order: the recomputed probabilities are bit-identical.
                XCTAssertEqual(a, b, "mask \(keyMask != nil)")
            }
        }
    }

    func testRecomputeFiniteDifferences() {
        withThreshold(0) {
            let q = random([2, 5, 8], seed: 74), k = random([2, 5, 8], seed: 75), v = random([2, 5, 8], seed: 76)
            checkGradients("attention (recomputed P)", inputs: [q, k, v], epsilon: 1e-3) {
                scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 2)
            }
        }
    }

    func testRecomputeKeepsNoProbabilities() {
        // Tensor bytes alive after the forward (output and anything kept for the backward).
        func kept(threshold: Int) -> Int {
            withThreshold(threshold) {
                let q = random([4, 64, 32], seed: 77), k = random([4, 64, 32], seed: 78), v = random([4, 64, 32], seed: 79)
                for x in [q, k, v] { x.requiresGrad = true }
                let before = TensorMemory.liveBytes
                let out = scaledDotProductAttention(query: q, key: k, value: v, heads: 4)
                let alive = TensorMemory.liveBytes - before
                out.backward(gradient: Tensor(shape: out.shape, values: [Float](repeating: 1, count: out.count)))
                return alive
            }
        }
        let probabilityBytes = 4 * 4 * 64 * 64 * MemoryLayout<Float>.size
        let stored = kept(threshold: 1_000), recomputed = kept(threshold: 0)
        XCTAssertGreaterThanOrEqual(stored - recomputed, probabilityBytes, "stored \(stored), recomputed \(recomputed)")
        XCTAssertLessThan(recomputed, probabilityBytes / 2, "recomputing must not keep P")
    }
}
