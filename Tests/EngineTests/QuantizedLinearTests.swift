import XCTest
import Engine
import TestSupport

/// Products with block-quantised weights: every kernel family against the float32 product with the same values,
/// at the row counts of the register path (1 to 8) and of the panel path (above 8), backward against the dense
/// backward and finite differences, and the layout (nibble order, scales, minimum) against values decoded here.
final class QuantizedLinearTests: XCTestCase {
    /// Half-precision bits of a float in the normal range (round to nearest by adding half an ulp).
    static func halfBits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF) - 127 + 15
        let mantissa = (bits & 0x7F_FFFF) + 0x1000
        if mantissa & 0x80_0000 != 0 { return sign | UInt16((exponent + 1) << 10) }
        return sign | UInt16(exponent << 10) | UInt16(mantissa >> 13)
    }

    static func half(_ bits: UInt16) -> Float {
        let exponent = Int((bits >> 10) & 0x1F), mantissa = Float(bits & 0x3FF)
        let magnitude = exponent == 0 ? mantissa / 1024 * pow(2, -14) : (1 + mantissa / 1024) * pow(2, Float(exponent - 15))
        return bits & 0x8000 != 0 ? -magnitude : magnitude
    }

    /// Random blocks of `format` for a rows x columns matrix, and the values they hold decoded by the formats'
    /// definition (independently of the kernels).
    static func randomMatrix(_ format: QuantizedMatrix.Format, rows: Int, columns: Int, seed: UInt64) throws -> (QuantizedMatrix, [Float]) {
        var generator = RandomGenerator(seed: seed)
        var bytes: [UInt8] = []
        var values = [Float](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            for b in 0..<(columns / 32) {
                let dBits = halfBits(Float(generator.next() % 1000 + 1) / 20_000)
                let d = half(dBits)
                bytes += [UInt8(dBits & 0xFF), UInt8(dBits >> 8)]
                var offset: Float = 0
                if format == .q4_1 {
                    let mBits = halfBits(-Float(generator.next() % 1000 + 1) / 8_000)
                    offset = half(mBits)
                    bytes += [UInt8(mBits & 0xFF), UInt8(mBits >> 8)]
                }
                let base = r * columns + b * 32
                if format == .q8_0 {
                    for j in 0..<32 {
                        let q = Int8(truncatingIfNeeded: Int(generator.next() % 256) - 128)
                        bytes.append(UInt8(bitPattern: q))
                        values[base + j] = d * Float(q)
                    }
                } else {
                    for j in 0..<16 {
                        let low = UInt8(generator.next() % 16), high = UInt8(generator.next() % 16)
                        bytes.append(low | high << 4)
                        values[base + j] = format == .q4_0 ? d * (Float(low) - 8) : d * Float(low) + offset
                        values[base + j + 16] = format == .q4_0 ? d * (Float(high) - 8) : d * Float(high) + offset
                    }
                }
            }
        }
        let matrix = try bytes.withUnsafeBytes { try QuantizedMatrix(format: format, rows: rows, columns: columns, bytes: $0) }
        return (matrix, values)
    }

    func withKernels<R>(_ set: KernelSet, _ body: () throws -> R) rethrows -> R {
        try ExecutionContext.with({ $0.kernels = set }, body)
    }

    func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var generator = RandomGenerator(seed: seed)
        return Tensor.randomNormal(shape, std: 1, generator: &generator)
    }

    func testDequantisedValuesFollowTheBlockLayoutOnEveryKernelFamily() throws {
        for format in QuantizedMatrix.Format.allCases {
            let (matrix, values) = try Self.randomMatrix(format, rows: 5, columns: 96, seed: 1)
            XCTAssertEqual(matrix.byteCount, 5 * 3 * format.blockBytes)
            for set in KernelSet.available {
                XCTAssertEqual(withKernels(set) { matrix.dequantized().values }, values, "\(format) with \(set)")
            }
        }
    }

    func testProductsMatchTheFloatProductAtEveryRowCountAndFamily() throws {
        for format in QuantizedMatrix.Format.allCases {
            // Three blocks per row: the AVX-512 kernel's two-block steps and its one-block tail.
            let (matrix, values) = try Self.randomMatrix(format, rows: 37, columns: 96, seed: 2)
            let dense = Tensor(shape: [37, 96], values: values)
            let bias = random([37], seed: 3)
            for rows in [1, 2, 3, 4, 5, 7, 8, 9, 20] {
                let x = random([rows, 96], seed: UInt64(rows))
                let expected = Autograd.withoutGrad { linear(x, dense, bias) }.values
                for set in KernelSet.available {
                    let got = withKernels(set) { Autograd.withoutGrad { quantizedLinear(x, matrix, bias: bias) } }
                    XCTAssertEqual(got.shape, [rows, 37])
                    for (a, b) in zip(got.values, expected) {
                        XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(b)), "\(format), \(rows) rows, \(set)")
                    }
                }
            }
        }
    }

    func testPanelsCoverMatricesLargerThanOnePanel() throws {
        // 1 << 20 values per panel: 33,000 rows of 32 columns take two panels, the second partial.
        let (matrix, values) = try Self.randomMatrix(.q8_0, rows: 33_000, columns: 32, seed: 4)
        let x = random([10, 32], seed: 5)
        let got = Autograd.withoutGrad { quantizedLinear(x, matrix) }.values
        let expected = Autograd.withoutGrad { linear(x, Tensor(shape: [33_000, 32], values: values)) }.values
        XCTAssertEqual(got.count, expected.count)
        let worst = zip(got, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        XCTAssertLessThan(worst, 1e-4)
    }

    func testBackwardGivesTheDenseInputGradientAndMatchesFiniteDifferences() throws {
        let (matrix, values) = try Self.randomMatrix(.q4_1, rows: 24, columns: 64, seed: 6)
        let dense = Tensor(shape: [24, 64], values: values)
        for rows in [3, 12] {
            let x = random([rows, 64], seed: 7), probe = random([rows, 24], seed: 8)
            x.requiresGrad = true
            (quantizedLinear(x, matrix) * probe).sum().backward()
            let quantizedGradient = try XCTUnwrap(x.grad).values
            let y = Tensor(shape: x.shape, values: x.values, requiresGrad: true)
            (linear(y, dense) * probe).sum().backward()
            for (a, b) in zip(quantizedGradient, try XCTUnwrap(y.grad).values) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        }
        let bias = random([24], seed: 9)
        checkGradients("quantizedLinear", inputs: [random([9, 64], seed: 10), bias]) { t in quantizedLinear(t[0], matrix, bias: t[1]) }
    }

    func testRowPermutationAndBadShapesAndSizes() throws {
        let (matrix, values) = try Self.randomMatrix(.q4_0, rows: 4, columns: 32, seed: 11)
        matrix.permuteRows([2, 0, 3, 1])
        let permuted = matrix.dequantized().values
        for (i, from) in [2, 0, 3, 1].enumerated() {
            XCTAssertEqual(Array(permuted[(i * 32)..<(i * 32 + 32)]), Array(values[(from * 32)..<(from * 32 + 32)]))
        }
        let bytes = [UInt8](repeating: 0, count: 40)
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try QuantizedMatrix(format: .q4_1, rows: 1, columns: 48, bytes: $0) }) {
            XCTAssertTrue("\($0)".contains("multiple of 32"), "\($0)")
        }
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try QuantizedMatrix(format: .q4_1, rows: 3, columns: 32, bytes: $0) }) {
            XCTAssertTrue("\($0)".contains("takes 60 bytes, got 40"), "\($0)")
        }
        var infinite = [UInt8](repeating: 0, count: 18)
        infinite[1] = 0x7C  // scale +infinity
        let bad = try infinite.withUnsafeBytes { try QuantizedMatrix(format: .q4_0, rows: 1, columns: 32, bytes: $0) }
        XCTAssertEqual(bad.firstNonFiniteBlock(), 0)
        XCTAssertNil(matrix.firstNonFiniteBlock())
    }
}
