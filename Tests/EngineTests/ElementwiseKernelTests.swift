import Foundation
import XCTest
import Engine

/// Every kernel family this CPU runs (AVX-512, AVX2+FMA, the portable Swift SIMD code) must compute the same
/// values and gradients; each is also checked against float64 references and by finite differences.
final class ElementwiseKernelTests: XCTestCase {
    /// The C families this CPU runs (the portable path is the reference they are compared with).
    private var vectorSets: [KernelSet] { KernelSet.available.filter { $0 != .portable } }

    /// Runs `body` with the given family in force.
    private func withKernels<T>(_ set: KernelSet, _ body: () throws -> T) rethrows -> T {
        try ExecutionContext.with({ $0.kernels = set }, body)
    }

    private func requireVectorKernels() throws {
        try XCTSkipIf(vectorSets.isEmpty, "this CPU has neither AVX2 nor AVX-512: only the Swift path exists")
    }

    /// Forward output and the gradient of every input for sum(f(inputs) * probe).
    private func run(_ inputs: [Tensor], _ set: KernelSet, _ f: ([Tensor]) -> Tensor) -> (out: [Float], grads: [[Float]]) {
        withKernels(set) {
            XCTAssertEqual(ElementwiseKernels.active, set)
            let copies = inputs.map { Tensor(shape: $0.shape, values: $0.values, requiresGrad: true) }
            let out = f(copies)
            var generator = RandomGenerator(seed: 5)
            out.backward(gradient: Tensor.randomNormal(out.shape, generator: &generator))
            return (out.values, copies.map { $0.grad?.values ?? [] })
        }
    }

    /// Each C family against the portable path, outputs and every gradient.
    private func assertPathsAgree(_ name: String, _ inputs: [Tensor], tolerance: Float = 2e-5,
                                  file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor) {
        let portable = run(inputs, .portable, f)
        for set in vectorSets {
            let fast = run(inputs, set, f)
            func check(_ a: [Float], _ b: [Float], _ what: String) {
                XCTAssertEqual(a.count, b.count, "\(name) \(what): sizes", file: file, line: line)
                XCTAssertFalse(a.isEmpty, "\(name) \(what): empty", file: file, line: line)
                let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
                XCTAssertLessThan(worst, tolerance, "\(name) \(what): \(set) and the Swift path differ by \(worst)",
                                  file: file, line: line)
            }
            check(fast.out, portable.out, "output")
            for (index, (g1, g2)) in zip(fast.grads, portable.grads).enumerated() { check(g1, g2, "gradient \(index)") }
        }
    }

    func testTheBestSupportedFamilyRunsByDefault() {
        XCTAssertTrue(KernelSet.best.isSupported)
        XCTAssertEqual(KernelSet.available.last, KernelSet.best)
        XCTAssertEqual(KernelSet(name: "generic"), .portable)
        XCTAssertEqual(KernelSet(name: "AVX2"), .avx2)
        XCTAssertNil(KernelSet(name: "sse9"))
        // Asking for more than the CPU has gives the best it has, never a kernel it cannot run.
        withKernels(.avx512) { XCTAssertEqual(ElementwiseKernels.active, KernelSet.best) }
        withKernels(.portable) { XCTAssertEqual(ElementwiseKernels.active, .portable) }
    }

    func testGELUPathsAgreeIncludingTails() throws {
        try requireVectorKernels()
        for count in [1, 7, 8, 9, 15, 16, 17, 1000, 1537] {
            assertPathsAgree("gelu[\(count)]", [random([count], seed: UInt64(count), std: 3)]) { gelu($0[0]) }
        }
    }

    func testGELUMatchesFloat64Reference() {
        let xs: [Float] = stride(from: -12, through: 12, by: 0.37).map { Float($0) } + [0, -0.0, 1e-6, 40, -40]
        for set in KernelSet.available {
            let y = withKernels(set) { gelu(Tensor(shape: [xs.count], values: xs)).values }
            for (x, value) in zip(xs, y) {
                let reference = 0.5 * Double(x) * (1 + erf(Double(x) / 2.0.squareRoot()))
                XCTAssertEqual(Double(value), reference, accuracy: 1e-6 * max(1, abs(reference)), "gelu(\(x)) with \(set)")
            }
        }
    }

    /// GELU's derivative, Phi(x) + x phi(x), from float64 on every family (the backward with probe 1).
    func testGELUDerivativeMatchesFloat64Reference() {
        let xs: [Float] = stride(from: -9, through: 9, by: 0.29).map { Float($0) } + [0, 1e-5, -1e-5]
        for set in KernelSet.available {
            let derivative: [Float] = withKernels(set) {
                let x = Tensor(shape: [xs.count], values: xs, requiresGrad: true)
                gelu(x).backward(gradient: Tensor(shape: [xs.count], values: [Float](repeating: 1, count: xs.count)))
                return x.grad?.values ?? []
            }
            XCTAssertEqual(derivative.count, xs.count)
            for (x, value) in zip(xs, derivative) {
                let v = Double(x)
                let reference = 0.5 * (1 + erf(v / 2.0.squareRoot())) + v * exp(-v * v / 2) / (2 * Double.pi).squareRoot()
                XCTAssertEqual(Double(value), reference, accuracy: 2e-6, "gelu'(\(x)) with \(set)")
            }
        }
    }

    func testLayerNormPathsAgree() throws {
        try requireVectorKernels()
        for width in [5, 8, 16, 37, 384] {
            let x = random([3, 7, width], seed: 40, std: 2), w = random([width], seed: 41), b = random([width], seed: 42)
            assertPathsAgree("layerNorm[\(width)]", [x, w, b]) { layerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-6) }
        }
    }

    /// LayerNorm's output from float64 on every family, with a large common offset (where a one-pass variance
    /// would lose its digits).
    func testLayerNormMatchesFloat64Reference() {
        let width = 37, rows = 4
        let base = random([rows, width], seed: 44, std: 1).values
        let xs = base.enumerated().map { $0.element + ($0.offset < width ? 300 : 0) }
        let w = random([width], seed: 45).values, b = random([width], seed: 46).values
        for set in KernelSet.available {
            let y = withKernels(set) {
                layerNorm(Tensor(shape: [rows, width], values: xs), weight: Tensor(shape: [width], values: w),
                          bias: Tensor(shape: [width], values: b), eps: 1e-6).values
            }
            for r in 0..<rows {
                let row = xs[(r * width)..<((r + 1) * width)].map(Double.init)
                let mean = row.reduce(0, +) / Double(width)
                let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width)
                for i in 0..<width {
                    let reference = (row[i] - mean) / (variance + 1e-6).squareRoot() * Double(w[i]) + Double(b[i])
                    XCTAssertEqual(Double(y[r * width + i]), reference, accuracy: 5e-4 * max(1, abs(reference)),
                                   "row \(r), column \(i) with \(set)")
                }
            }
        }
    }

    func testSoftmaxAndAttentionPathsAgree() throws {
        try requireVectorKernels()
        for width in [3, 8, 37] {
            assertPathsAgree("softmax[\(width)]", [random([5, width], seed: 50, std: 4)]) { softmax($0[0]) }
        }
        // Two heads of 12, 20 and 8 columns (with and without a tail vector), token counts across the 6-row tiles.
        for (tokens, width) in [(19, 24), (13, 40), (6, 16)] {
            let q = random([2, tokens, width], seed: 51), k = random([2, tokens, width], seed: 52)
            let v = random([2, tokens, width], seed: 53)
            assertPathsAgree("attention \(tokens)x\(width)", [q, k, v]) {
                scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 2)
            }
            var mask = [Float](repeating: 0, count: 2 * tokens)
            for j in (tokens - 4)..<tokens { mask[j] = -.infinity }
            assertPathsAgree("attention \(tokens)x\(width) with key mask", [q, k, v]) {
                scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 2, keyMask: mask)
            }
            assertPathsAgree("causal attention \(tokens)x\(width)", [q, k, v]) {
                scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 2, causal: true)
            }
        }
    }

    /// Attention on every family from a float64 computation of softmax(Q K^T / sqrt(d)) V.
    func testAttentionMatchesFloat64Reference() {
        let tokens = 11, heads = 2, headDim = 12, width = heads * headDim
        let q = random([1, tokens, width], seed: 54), k = random([1, tokens, width], seed: 55)
        let v = random([1, tokens, width], seed: 56)
        var reference = [Double](repeating: 0, count: tokens * width)
        for h in 0..<heads {
            for i in 0..<tokens {
                var scores = (0..<tokens).map { j in
                    (0..<headDim).reduce(0.0) { $0 + Double(q.values[i * width + h * headDim + $1]) * Double(k.values[j * width + h * headDim + $1]) }
                        / Double(headDim).squareRoot()
                }
                let top = scores.max() ?? 0
                scores = scores.map { exp($0 - top) }
                let total = scores.reduce(0, +)
                for d in 0..<headDim {
                    reference[i * width + h * headDim + d] =
                        (0..<tokens).reduce(0.0) { $0 + scores[$1] / total * Double(v.values[$1 * width + h * headDim + d]) }
                }
            }
        }
        for set in KernelSet.available {
            let out = withKernels(set) { scaledDotProductAttention(query: q, key: k, value: v, heads: heads).values }
            let worst = zip(out, reference).map { abs(Double($0) - $1) }.max() ?? 1
            XCTAssertLessThan(worst, 1e-5, "attention with \(set)")
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
        if !vectorSets.isEmpty { assertPathsAgree("sparseUpdateLinear", [x, values, bias], f) }
        for set in KernelSet.available {
            let (out, grads) = run([x, values, bias], set, f)
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
                               "value \(i) with \(set)")
            }
        }
    }

    func testSoftmaxOfFullyMaskedRowIsZero() {
        for set in KernelSet.available {
            let values = [Float](repeating: -.infinity, count: 20) + (0..<20).map { Float($0) }
            let y = withKernels(set) { softmax(Tensor(shape: [2, 20], values: values)).values }
            XCTAssertEqual(Array(y[0..<20]), [Float](repeating: 0, count: 20), "\(set)")
            XCTAssertEqual(Double(y[20..<40].reduce(0, +)), 1, accuracy: 1e-5, "\(set)")
        }
    }

    /// The existing finite-difference tests run the default family; these run every family.
    func testFiniteDifferenceGradientsOnEveryFamily() {
        for set in KernelSet.available {
            withKernels(set) {
                checkGradients("gelu (\(set))", inputs: [random([3, 21], seed: 60)], epsilon: 1e-3) { gelu($0[0]) }
                let x = random([2, 3, 37], seed: 61), w = random([37], seed: 62), b = random([37], seed: 63)
                checkGradients("layerNorm (\(set))", inputs: [x, w, b], epsilon: 1e-3) {
                    layerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-6)
                }
                checkGradients("softmax (\(set))", inputs: [random([3, 20], seed: 64)], epsilon: 1e-3) { softmax($0[0]) }
                let q = random([2, 5, 8], seed: 65), k = random([2, 5, 8], seed: 66), v = random([2, 5, 8], seed: 67)
                checkGradients("attention (\(set))", inputs: [q, k, v], epsilon: 1e-3) {
                    scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 2)
                }
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
