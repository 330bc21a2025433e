// Helpers shared by the test targets: finite-difference gradient checks and value comparisons.
import XCTest
import Engine

/// Finite-difference check of an op's gradients: the loss is sum(f(inputs) * probe) computed in Double;
/// analytic gradients come from backward(gradient: probe); central differences perturb each input element.
public func checkGradients(
    _ name: String, inputs: [Tensor], epsilon: Float = 1e-2, tolerance: Double = 1e-2,
    maxElementsPerInput: Int = 64, file: StaticString = #filePath, line: UInt = #line,
    _ f: ([Tensor]) -> Tensor
) {
    var generator = RandomGenerator(seed: 99)
    for input in inputs { input.requiresGrad = true; input.grad = nil }
    let output = f(inputs)
    let probe = Tensor.randomNormal(output.shape, generator: &generator)
    output.backward(gradient: probe)
    func loss() -> Double {
        Autograd.withoutGrad {
            let out = f(inputs)
            var total = 0.0
            for i in 0..<out.count { total += Double(out.data[i]) * Double(probe.data[i]) }
            return total
        }
    }
    for (inputIndex, input) in inputs.enumerated() {
        guard let analytic = input.grad else {
            XCTFail("\(name): input \(inputIndex) got no gradient", file: file, line: line); continue
        }
        let stride = max(1, input.count / maxElementsPerInput)
        var numeric: [Double] = [], computed: [Double] = []
        for i in Swift.stride(from: 0, to: input.count, by: stride) {
            let saved = input.data[i]
            input.data[i] = saved + epsilon
            let plus = loss()
            input.data[i] = saved - epsilon
            let minus = loss()
            input.data[i] = saved
            numeric.append((plus - minus) / (2 * Double(epsilon)))
            computed.append(Double(analytic.data[i]))
        }
        let difference = zip(numeric, computed).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
        let scale = max(numeric.map { $0 * $0 }.reduce(0, +).squareRoot(),
                        computed.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-6)
        XCTAssertLessThan(difference / scale, tolerance,
                          "\(name): input \(inputIndex) relative gradient error \(difference / scale)",
                          file: file, line: line)
        XCTAssertGreaterThan(scale, 1e-5, "\(name): input \(inputIndex) gradient is all zero", file: file, line: line)
    }
}

public func random(_ shape: [Int], seed: UInt64, std: Float = 1) -> Tensor {
    var generator = RandomGenerator(seed: seed)
    return Tensor.randomNormal(shape, std: std, generator: &generator)
}

public func assertClose(_ a: [Float], _ b: [Float], tolerance: Float = 1e-4, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, message, file: file, line: line)
    for (i, (x, y)) in zip(a, b).enumerated() where abs(x - y) > tolerance * max(1, abs(y)) {
        XCTFail("\(message) element \(i): \(x) vs \(y)", file: file, line: line)
        return
    }
}
