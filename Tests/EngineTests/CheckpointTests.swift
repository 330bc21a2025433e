import XCTest
import Engine
import TestSupport

/// `checkpointed`: the same values and the same gradients (for the input and for parameters the body reads) as the
/// body run directly, gradients that match finite differences, nothing recorded without grad mode.
final class CheckpointTests: XCTestCase {
    func body(_ weight: Tensor, _ bias: Tensor) -> (Tensor) -> Tensor {
        { x in gelu(linear(gelu(linear(x, weight, bias)), weight)) + x }
    }

    func testValuesAndGradientsEqualTheBodyRunDirectly() {
        var generator = RandomGenerator(seed: 5)
        let weight = Tensor.randomNormal([6, 6], std: 0.5, generator: &generator)
        let bias = Tensor.randomNormal([6], std: 0.5, generator: &generator)
        let frozen = Tensor.randomNormal([6, 6], std: 0.5, generator: &generator)
        weight.requiresGrad = true
        bias.requiresGrad = true
        let x = Tensor.randomNormal([5, 6], generator: &generator)
        x.requiresGrad = true
        let probe = Tensor.randomNormal([5, 6], generator: &generator)
        func run(_ checkpoint: Bool) -> (values: [Float], gx: [Float], gw: [Float], gb: [Float]) {
            for t in [x, weight, bias] { t.grad = nil }
            // Used twice and after a frozen product, so the graph around the checkpoint is more than a chain.
            let inner = linear(x, frozen)
            let f = body(weight, bias)
            let y = checkpoint ? checkpointed(inner, parameters: [weight, bias, frozen], f) : f(inner)
            let out = y * inner
            out.backward(gradient: probe)
            return (out.values, x.grad!.values, weight.grad!.values, bias.grad!.values)
        }
        let plain = run(false), saved = run(true)
        XCTAssertEqual(saved.values, plain.values)
        for (name, a, b) in [("x", saved.gx, plain.gx), ("weight", saved.gw, plain.gw), ("bias", saved.gb, plain.gb)] {
            XCTAssertEqual(a.count, b.count)
            for (u, v) in zip(a, b) { XCTAssertEqual(u, v, accuracy: 1e-5 * max(1, abs(v)), name) }
        }
    }

    func testGradientsMatchFiniteDifferences() {
        var generator = RandomGenerator(seed: 6)
        let x = Tensor.randomNormal([4, 6], generator: &generator)
        let weight = Tensor.randomNormal([6, 6], std: 0.5, generator: &generator)
        let bias = Tensor.randomNormal([6], std: 0.5, generator: &generator)
        checkGradients("checkpointed", inputs: [x, weight, bias]) { t in
            checkpointed(t[0], parameters: [t[1], t[2]], self.body(t[1], t[2]))
        }
    }

    func testAParameterAloneGetsItsGradientAndNoGraphWithoutGradMode() {
        var generator = RandomGenerator(seed: 7)
        let weight = Tensor.randomNormal([6, 6], std: 0.5, generator: &generator)
        let bias = Tensor.randomNormal([6], generator: &generator)
        weight.requiresGrad = true
        let x = Tensor.randomNormal([3, 6], generator: &generator)  // needs no gradient, as a frozen embedding's output
        let y = checkpointed(x, parameters: [weight, bias], body(weight, bias))
        XCTAssertEqual(y.producerName, "checkpoint")
        y.backward(gradient: Tensor(shape: y.shape, repeating: 1))
        XCTAssertNotNil(weight.grad)
        XCTAssertNil(x.grad, "an input that needs no gradient gets none")
        XCTAssertNil(bias.grad, "a parameter that needs no gradient gets none")
        let quiet = Autograd.withoutGrad { checkpointed(x, parameters: [weight], body(weight, bias)) }
        XCTAssertNil(quiet.producerName)
    }
}
