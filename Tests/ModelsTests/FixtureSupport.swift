import XCTest
import Foundation
import Checkpoints
import Engine
import Models

/// The committed fixtures folder (made by scripts/reference/*.py).
let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

func fixture(_ name: String) throws -> SafeTensorsFile {
    try SafeTensorsFile(path: fixturesDirectory.appendingPathComponent(name).path)
}

/// Asserts max |actual - expected| <= tolerance * max |expected| + 1e-6 (relative to the tensor's scale; the
/// small absolute floor covers tensors that are zero in exact arithmetic, e.g. key-bias gradients).
func assertMatches(_ actual: Tensor, _ expected: Tensor, tolerance: Float = 1e-4, _ what: String,
                   file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(what): \(actual.shape) vs \(expected.shape)", file: file, line: line)
    guard actual.count == expected.count else { return }
    var maxDifference: Float = 0, scale: Float = 0
    for i in 0..<actual.count {
        maxDifference = max(maxDifference, abs(actual.data[i] - expected.data[i]))
        scale = max(scale, abs(expected.data[i]))
    }
    XCTAssertLessThanOrEqual(maxDifference, tolerance * scale + 1e-6,
                             "\(what): max difference \(maxDifference) at scale \(scale)", file: file, line: line)
}

/// Integer values stored as float32 in a fixture.
func integers(_ tensor: Tensor) -> [Int32] { tensor.values.map { Int32($0.rounded()) } }

/// The repository's assets folder (or PEFT_ASSETS), failing the test with instructions when missing.
func requireAsset(_ relativePath: String, file: StaticString = #filePath, line: UInt = #line) throws -> URL {
    do { return try Assets.file(relativePath) } catch {
        XCTFail("\(error)", file: file, line: line)
        throw error
    }
}
