import Checkpoints
import Engine
import Foundation
import XCTest

/// One test per malformed input: each must throw a `CheckpointError` naming the file (and the tensor when one is
/// involved) and saying what is wrong.
final class SafeTensorsValidationTests: XCTestCase {
    var directory: TemporaryDirectory!

    override func setUpWithError() throws { directory = try TemporaryDirectory() }
    override func tearDown() { directory.remove() }

    private func openFile(_ name: String, _ bytes: [UInt8]) throws -> SafeTensorsFile {
        try SafeTensorsFile(url: directory.write(name, bytes))
    }

    private func headerEntry(_ name: String, _ shape: [Int], _ begin: Int, _ end: Int, dtype: String = "F32") -> String {
        "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(begin),\(end)]}"
    }

    func testFileShorterThanHeaderLength() throws {
        let path = directory.file("short.safetensors").path
        assertCheckpointError(try openFile("short.safetensors", [1, 2, 3, 4, 5]), kind: .truncated,
            mentions: [path, "truncated", "5 bytes"])
    }

    func testHeaderLongerThanFile() throws {
        let path = directory.file("trunc.safetensors").path
        let bytes = craftSafeTensors(header: "{}", declaredLength: 123)
        assertCheckpointError(try openFile("trunc.safetensors", bytes), kind: .truncated,
            mentions: [path, "truncated", "header says 123 bytes", "has only 8"])
    }

    func testAbsurdHeaderLengthIsRefusedBeforeAllocating() throws {
        let path = directory.file("huge.safetensors").path
        let bytes = craftSafeTensors(header: "{}", declaredLength: 1 << 60)
        assertCheckpointError(try openFile("huge.safetensors", bytes), kind: .invalidHeader,
            mentions: [path, "\(UInt64(1) << 60)", "exceeds the limit"])
    }

    func testEmptyFile() throws {
        let path = directory.file("empty.safetensors").path
        assertCheckpointError(try openFile("empty.safetensors", []), kind: .truncated, mentions: [path, "0 bytes"])
    }

    func testHeaderIsNotJSON() throws {
        let path = directory.file("nojson.safetensors").path
        assertCheckpointError(try openFile("nojson.safetensors", craftSafeTensors(header: "{not json at all}")),
            kind: .invalidHeader, mentions: [path, "not valid JSON"])
        let invalidUTF8 = leBytes(UInt64(8)) + [UInt8(ascii: "{"), UInt8(ascii: "\""), 0xFF, 0xFE] + Array("\":1}".utf8)
        assertCheckpointError(try openFile("nojson.safetensors", invalidUTF8), kind: .invalidHeader,
            mentions: [path, "UTF-8"])
        assertCheckpointError(try openFile("nojson.safetensors", craftSafeTensors(header: "{} trailing")),
            kind: .invalidHeader, mentions: [path, "after the JSON value"])
    }

    func testHeaderDoesNotStartWithBrace() throws {
        let path = directory.file("brace.safetensors").path
        assertCheckpointError(try openFile("brace.safetensors", craftSafeTensors(header: "[1, 2]")), kind: .invalidHeader,
            mentions: [path, "does not start with '{'"])
        assertCheckpointError(try openFile("brace.safetensors", craftSafeTensors(header: " {}")), kind: .invalidHeader,
            mentions: [path, "does not start with '{'"])
    }

    func testTrailingSpacesAreAllowed() throws {
        let file = try openFile("spaces.safetensors", craftSafeTensors(header: "{}     ", pad: false))
        XCTAssertEqual(file.names, [])
    }

    func testOffsetsOutsideBuffer() throws {
        let path = directory.file("outside.safetensors").path
        let header = "{" + headerEntry("x", [4], 0, 16) + "," + headerEntry("y", [4], 16, 32) + "}"
        let bytes = craftSafeTensors(header: header, data: [UInt8](repeating: 0, count: 20))
        assertCheckpointError(try openFile("outside.safetensors", bytes), kind: .invalidTensor,
            mentions: [path, "tensor 'y'", "data_offsets [16, 32) exceed buffer of 20 bytes"])
    }

    func testOffsetsEndBeforeBegin() throws {
        let path = directory.file("reversed.safetensors").path
        let bytes = craftSafeTensors(header: "{" + headerEntry("x", [0], 8, 4) + "}", data: [UInt8](repeating: 0, count: 8))
        assertCheckpointError(try openFile("reversed.safetensors", bytes), kind: .invalidTensor,
            mentions: [path, "tensor 'x'", "[8, 4)"])
    }

    func testShapeDoesNotMatchSize() throws {
        let path = directory.file("size.safetensors").path
        let bytes = craftSafeTensors(header: "{" + headerEntry("x", [2, 3], 0, 20) + "}", data: [UInt8](repeating: 0, count: 20))
        assertCheckpointError(try openFile("size.safetensors", bytes), kind: .invalidTensor,
            mentions: [path, "tensor 'x'", "shape [2, 3] (6 elements of F32 = 24 bytes)", "span 20 bytes"])
    }

    func testOverlappingTensors() throws {
        let path = directory.file("overlap.safetensors").path
        let header = "{" + headerEntry("a", [4], 0, 16) + "," + headerEntry("b", [4], 8, 24) + "}"
        let bytes = craftSafeTensors(header: header, data: [UInt8](repeating: 0, count: 24))
        assertCheckpointError(try openFile("overlap.safetensors", bytes), kind: .invalidTensor,
            mentions: [path, "tensor 'b'", "overlap tensor 'a'"])
    }

    func testHoleInBuffer() throws {
        let path = directory.file("hole.safetensors").path
        let header = "{" + headerEntry("a", [2], 0, 8) + "," + headerEntry("b", [2], 12, 20) + "}"
        let bytes = craftSafeTensors(header: header, data: [UInt8](repeating: 0, count: 20))
        assertCheckpointError(try openFile("hole.safetensors", bytes), kind: .invalidTensor,
            mentions: [path, "tensor 'b'", "hole in buffer", "[8, 12)"])
        let trailing = craftSafeTensors(header: "{" + headerEntry("a", [2], 0, 8) + "}", data: [UInt8](repeating: 0, count: 12))
        assertCheckpointError(try openFile("hole.safetensors", trailing), kind: .invalidTensor,
            mentions: [path, "hole in buffer", "[8, 12) after the last tensor"])
    }

    func testMalformedEntries() throws {
        let path = directory.file("entries.safetensors").path
        let cases: [(String, [String])] = [
            ("{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", ["tensor 'x'", "no 'dtype'"]),
            ("{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", ["tensor 'x'", "'shape'"]),
            ("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", ["tensor 'x'", "'data_offsets'"]),
            ("{\"x\":[1,2]}", ["tensor 'x'", "not an object"]),
            ("{\"x\":" + "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}" + ",\"x\":{}}", ["duplicate key 'x'"]),
            ("{\"__metadata__\":{\"a\":1}}", ["__metadata__", "'a'", "not a string"]),
            ("{\"x\":{\"dtype\":\"F32\",\"shape\":[99999999999,99999999999,99999999999],\"data_offsets\":[0,4]}}",
                ["tensor 'x'", "too many elements"]),
        ]
        for (header, mentions) in cases {
            let bytes = craftSafeTensors(header: header, data: [0, 0, 0, 0])
            assertCheckpointError(try openFile("entries.safetensors", bytes), mentions: [path] + mentions)
        }
        let deep = String(repeating: "[", count: 10_000)
        assertCheckpointError(try openFile("entries.safetensors", craftSafeTensors(header: "{\"x\":" + deep)),
            kind: .invalidHeader, mentions: [path, "nesting"])
    }

    func testMissingTensor() throws {
        let url = directory.file("missing.safetensors")
        try SafeTensors.write(["present": Tensor(scalar: 1)], to: url)
        let file = try SafeTensorsFile(url: url)
        assertCheckpointError(try file.tensor("absent"), kind: .missingTensor,
            mentions: [url.path, "tensor 'absent'", "no such tensor", "'present'"])
        assertCheckpointError(try file.int32Values("absent"), kind: .missingTensor, mentions: [url.path, "'absent'"])
        XCTAssertNil(file.info("absent"))
    }

    func testUnsupportedDtype() throws {
        let path = directory.file("f8.safetensors").path
        let header = "{" + headerEntry("x", [4], 0, 4, dtype: "F8_E4M3") + "," + headerEntry("y", [1], 4, 8) + "}"
        let file = try openFile("f8.safetensors", craftSafeTensors(header: header, data: [1, 2, 3, 4] + leBytes([5])))
        XCTAssertEqual(file.info("x")?.dtype, .f8E4M3)
        XCTAssertEqual(try file.tensor("y").values, [5], "other tensors stay readable")
        assertCheckpointError(try file.tensor("x"), kind: .unsupportedDtype,
            mentions: [path, "tensor 'x'", "F8_E4M3 cannot be converted"])
        assertCheckpointError(try file.loadAll(), kind: .unsupportedDtype, mentions: [path, "tensor 'x'"])

        let unknown = craftSafeTensors(header: "{" + headerEntry("z", [4], 0, 4, dtype: "Q4_K") + "}", data: [0, 0, 0, 0])
        assertCheckpointError(try openFile("f8.safetensors", unknown), kind: .unsupportedDtype,
            mentions: [path, "tensor 'z'", "unknown dtype 'Q4_K'"])
    }

    func testMissingFile() {
        let path = directory.file("nope.safetensors").path
        assertCheckpointError(try SafeTensorsFile(path: path), kind: .io, mentions: [path, "cannot open"])
    }
}
