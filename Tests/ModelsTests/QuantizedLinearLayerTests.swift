import XCTest
import Engine
import Layers

/// A `Linear` over a quantised W: computes with the blocks, lists no float32 weight, and expands W once when
/// something reads `weight` (merging, SHiRA, saving), computing with that copy from then on.
final class QuantizedLinearLayerTests: XCTestCase {
    func testALayerComputesQuantisedUntilItsWeightIsReadThenWithTheCopy() throws {
        var generator = RandomGenerator(seed: 3)
        var bytes: [UInt8] = []
        for _ in 0..<(6 * 2) {  // 6 rows of 64 columns, Q8_0: f16 scale 1/64 then 32 bytes
            bytes += [0x00, 0x24] + (0..<32).map { _ in UInt8(generator.next() % 256) }
        }
        let matrix = try bytes.withUnsafeBytes { try QuantizedMatrix(format: .q8_0, rows: 6, columns: 64, bytes: $0) }
        let layer = Linear(quantized: matrix, bias: Tensor(shape: [6], values: [1, 2, 3, 4, 5, 6]))
        XCTAssertEqual([layer.inFeatures, layer.outFeatures], [64, 6])
        XCTAssertTrue(layer.computesQuantized)
        XCTAssertEqual(layer.ownParameters.map(\.0), ["bias"], "a quantised W has no float32 tensor to list")
        let x = Tensor.randomNormal([3, 64], std: 1, generator: &generator)
        let quantized = Autograd.withoutGrad { layer(x) }.values
        XCTAssertTrue(layer.computesQuantized, "the forward does not expand W")
        let weight = layer.weight
        XCTAssertEqual(weight.shape, [6, 64])
        XCTAssertEqual(weight.values, matrix.dequantized().values)
        XCTAssertFalse(layer.computesQuantized)
        XCTAssertTrue(layer.weight === weight, "expanded once")
        XCTAssertEqual(layer.ownParameters.map(\.0), ["weight", "bias"])
        // An edit of the expanded W (as a merge makes) is what the layer computes with now.
        weight.data[0] += 1
        let edited = Autograd.withoutGrad { layer(x) }.values
        for r in 0..<3 {
            XCTAssertEqual(edited[r * 6], quantized[r * 6] + x.values[r * 64], accuracy: 1e-4)
            XCTAssertEqual(edited[r * 6 + 1], quantized[r * 6 + 1], accuracy: 1e-4)
        }
    }
}
