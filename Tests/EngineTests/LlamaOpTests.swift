import XCTest
import Foundation
import Engine

/// The ops of a Llama decoder: each has a finite-difference gradient test and a test of what defines it.
final class LlamaOpTests: XCTestCase {
    func testRMSNormNormalisesRowsAndItsGradientsMatchFiniteDifferences() {
        let x = random([3, 2, 8], seed: 1), weight = random([8], seed: 2)
        let y = Autograd.withoutGrad { rmsNorm(x, weight: weight, eps: 1e-5) }
        for r in 0..<6 {
            let row = Array(x.values[(r * 8)..<(r * 8 + 8)])
            let rms = (row.map { $0 * $0 }.reduce(0, +) / 8 + 1e-5).squareRoot()
            for j in 0..<8 { XCTAssertEqual(y.values[r * 8 + j], row[j] / rms * weight.values[j], accuracy: 1e-5) }
        }
        checkGradients("rmsNorm", inputs: [x, weight]) { t in rmsNorm(t[0], weight: t[1], eps: 1e-5) }
    }

    func testRotaryRotatesHalvesByPositionAndKeepsNormsAndDotProductsRelative() {
        let heads = 2, headDim = 8
        let x = random([1, 3, heads * headDim], seed: 3)
        let positions = [0, 1, 5]
        let y = Autograd.withoutGrad { rotaryEmbedding(x, heads: heads, positions: positions, base: 10_000) }
        // Position 0 is the identity; rotation keeps every head's norm.
        XCTAssertEqual(Array(y.values[0..<16]), Array(x.values[0..<16]))
        for t in 0..<3 {
            for h in 0..<heads {
                let range = (t * 16 + h * headDim)..<(t * 16 + (h + 1) * headDim)
                let before = x.values[range].map { $0 * $0 }.reduce(0, +), after = y.values[range].map { $0 * $0 }.reduce(0, +)
                XCTAssertEqual(before, after, accuracy: 1e-4)
            }
        }
        // Pair (i, i + D/2) at position p turns by p * base^(-2i/D).
        let angle = Float(5) * Float(pow(10_000.0, -2.0 / 8.0))
        let a = x.values[32 + 1], b = x.values[32 + 5]
        XCTAssertEqual(y.values[32 + 1], a * cos(angle) - b * sin(angle), accuracy: 1e-5)
        XCTAssertEqual(y.values[32 + 5], b * cos(angle) + a * sin(angle), accuracy: 1e-5)
        // q . k depends on positions only through their difference.
        let q = random([1, 1, headDim], seed: 4), k = random([1, 1, headDim], seed: 5)
        func dot(_ p: Int, _ s: Int) -> Float {
            Autograd.withoutGrad {
                let rq = rotaryEmbedding(q, heads: 1, positions: [p], base: 100), rk = rotaryEmbedding(k, heads: 1, positions: [s], base: 100)
                return zip(rq.values, rk.values).map(*).reduce(0, +)
            }
        }
        XCTAssertEqual(dot(7, 3), dot(4, 0), accuracy: 1e-4)
        checkGradients("rotary", inputs: [x]) { t in rotaryEmbedding(t[0], heads: heads, positions: positions, base: 10_000) }
    }

    func testSiLUAndRepeatHeads() {
        let x = random([2, 3, 4], seed: 6)
        let y = Autograd.withoutGrad { silu(x) }
        for i in 0..<x.count { XCTAssertEqual(y.values[i], x.values[i] / (1 + exp(-x.values[i])), accuracy: 1e-6) }
        checkGradients("silu", inputs: [x]) { t in silu(t[0]) }
        let kv = random([2, 3, 2 * 4], seed: 7)
        let repeated = Autograd.withoutGrad { repeatHeads(kv, heads: 2, groups: 3) }
        XCTAssertEqual(repeated.shape, [2, 3, 24])
        for t in 0..<6 {
            for h in 0..<6 {
                let source = Array(kv.values[(t * 8 + (h / 3) * 4)..<(t * 8 + (h / 3) * 4 + 4)])
                XCTAssertEqual(Array(repeated.values[(t * 24 + h * 4)..<(t * 24 + h * 4 + 4)]), source)
            }
        }
        checkGradients("repeatHeads", inputs: [kv]) { t in repeatHeads(t[0], heads: 2, groups: 3) }
    }

    func testCausalAttentionSeesOnlyEarlierTokensAndItsGradientsMatch() {
        let q = random([2, 5, 8], seed: 8), k = random([2, 5, 8], seed: 9), v = random([2, 5, 8], seed: 10)
        let out = Autograd.withoutGrad { scaledDotProductAttention(query: q, key: k, value: v, heads: 2, causal: true) }
        // Token i's output is the non-causal attention over the first i + 1 tokens alone.
        for i in 0..<5 {
            let prefix = i + 1
            func take(_ t: Tensor) -> Tensor { t.slice(axis: 1, 0..<prefix).copy() }
            let alone = Autograd.withoutGrad { scaledDotProductAttention(query: take(q), key: take(k), value: take(v), heads: 2) }
            for b in 0..<2 {
                let got = Array(out.values[(b * 40 + i * 8)..<(b * 40 + i * 8 + 8)])
                let expected = Array(alone.values[(b * prefix * 8 + i * 8)..<(b * prefix * 8 + i * 8 + 8)])
                for (g, e) in zip(got, expected) { XCTAssertEqual(g, e, accuracy: 1e-5) }
            }
        }
        // The first token attends to itself only: its output is its value.
        XCTAssertEqual(Array(out.values[0..<8]).map { ($0 * 1e4).rounded() }, Array(v.values[0..<8]).map { ($0 * 1e4).rounded() })
        checkGradients("causal attention", inputs: [q, k, v]) { t in
            scaledDotProductAttention(query: t[0], key: t[1], value: t[2], heads: 2, causal: true)
        }
    }
}
