import XCTest
import Engine

/// The autograd graph keeps an intermediate result's values only when a backward formula reads them.
final class ActivationMemoryTests: XCTestCase {
    func testFrozenLinearDoesNotKeepItsInputAndGradientsStayRight() {
        var generator = RandomGenerator(seed: 3)
        let rows = 64, width = 512, outputs = 256
        let input = Tensor.randomNormal([rows, width], generator: &generator)
        let scale = Tensor(shape: [width], repeating: 1.5, requiresGrad: true)
        let weight = Tensor.randomNormal([outputs, width], std: 0.05, generator: &generator)   // frozen
        let baseline = TensorMemory.liveBytes
        var output: Tensor?
        do {
            let scaled = input * scale              // needs a gradient (path to `scale`), 128 KiB
            output = linear(scaled, weight)         // frozen weight: dx = dy W does not read `scaled`
        }
        // Only the output is alive (the scaled input was freed when it went out of scope).
        XCTAssertEqual(TensorMemory.liveBytes - baseline, rows * outputs * MemoryLayout<Float>.size)
        output!.sum().backward()
        // d sum(y) / d scale_j = sum_i input[i, j] * sum_o weight[o, j].
        for j in Swift.stride(from: 0, to: width, by: 37) {
            var columnSum = 0.0, inputSum = 0.0
            for o in 0..<outputs { columnSum += Double(weight[o, j]) }
            for i in 0..<rows { inputSum += Double(input[i, j]) }
            XCTAssertEqual(Double(scale.grad![j]), inputSum * columnSum, accuracy: 1e-3 * (1 + abs(inputSum * columnSum)))
        }
    }

    /// A node that keeps its own gradient (requiresGrad on a computed tensor) still gets it when its consumer
    /// hands gradient buffers on (add adopts the output gradient).
    func testComputedTensorWithRequiresGradKeepsItsGradient() {
        let a = Tensor(shape: [4, 8192], repeating: 2, requiresGrad: true)
        let hidden = a * 3
        hidden.requiresGrad = true
        let total = (hidden + a).sum()
        total.backward()
        XCTAssertEqual(hidden.grad?.values.allSatisfy { $0 == 1 }, true)
        XCTAssertEqual(a.grad?.values.allSatisfy { $0 == 4 }, true)
    }
}
