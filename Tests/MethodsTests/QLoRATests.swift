import XCTest
import Engine
import Layers
import Methods
import TestSupport

/// LoRA on a layer whose frozen W is held quantised (QLoRA): the output is the quantised base plus the update, W is
/// never expanded, and A, B and the input get the gradients finite differences give.
final class QLoRATests: XCTestCase {
    func testLoRAOnAQuantisedLayerAddsItsUpdateAndTrainsWithoutExpandingTheBase() throws {
        var generator = RandomGenerator(seed: 21)
        var bytes: [UInt8] = []
        for _ in 0..<(12 * 2) {  // 12 rows of 64 columns in Q4_1: d = 1/32, m = -1/4, random nibbles
            bytes += [0x00, 0x28, 0x00, 0xB4] + (0..<16).map { _ in UInt8(generator.next() % 256) }
        }
        let matrix = try bytes.withUnsafeBytes { try QuantizedMatrix(format: .q4_1, rows: 12, columns: 64, bytes: $0) }
        let layer = Linear(quantized: matrix)
        let adapter = LoRAAdapter(inFeatures: 64, outFeatures: 12, rank: 4, alpha: 8, generator: &generator)
        adapter.b.assign(Tensor.randomNormal([12, 4], std: 0.5, generator: &generator))
        layer.adapter = adapter
        let x = Tensor.randomNormal([10, 64], std: 1, generator: &generator)
        let dense = Linear(weight: matrix.dequantized(), bias: nil)
        let expected = Autograd.withoutGrad { dense(x) + adapter.delta(x) }.values
        let got = Autograd.withoutGrad { layer(x) }.values
        for (a, b) in zip(got, expected) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        checkGradients("QLoRA", inputs: [x, adapter.a, adapter.b]) { t in layer(t[0]) }
        XCTAssertTrue(layer.computesQuantized, "neither the forward nor the backward expands W")
        XCTAssertNil(layer.ownParameters.first { $0.0 == "weight" })
        // One fingerprint whether W is quantised or expanded (an adapter trained on one loads onto the other).
        let plain = Linear(quantized: matrix), expanded = Linear(weight: matrix.dequantized(), bias: nil)
        XCTAssertEqual(weightFingerprint(plain), weightFingerprint(expanded))
        XCTAssertTrue(plain.computesQuantized, "fingerprinting does not expand W")
        expanded.weight.data[257] += 1  // a sampled element (every 257th)
        XCTAssertNotEqual(weightFingerprint(plain), weightFingerprint(expanded))
    }
}
