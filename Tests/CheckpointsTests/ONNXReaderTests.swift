import Checkpoints
import Engine
import Foundation
import XCTest

final class ONNXReaderTests: XCTestCase {
    var directory: TemporaryDirectory!

    override func setUpWithError() throws { directory = try TemporaryDirectory() }
    override func tearDown() { directory.remove() }

    private func smallModel() -> [UInt8] {
        onnxModel(
            nodes: [onnxNode("/fc/MatMul", "MatMul", inputs: ["x", "onnx::MatMul_7"]),
                onnxNode("/fc/Add", "Add", inputs: ["/fc/MatMul_output_0", "fc.bias"], outputs: ["y"])],
            initializers: [onnxTensor("onnx::MatMul_7", dims: [2, 3], values: [1, 2, 3, 4, 5, 6]),
                onnxTensor("fc.bias", dims: [3], values: [0.5, -0.5, 0.25], raw: false)])
    }

    func testReadsInitializersAndNodes() throws {
        let model = try ONNXModel(url: directory.write("small.onnx", smallModel()))
        XCTAssertEqual(model.irVersion, 7)
        XCTAssertEqual(model.producerName, "tests")
        XCTAssertEqual(model.opsetVersion, 14)
        XCTAssertEqual(model.initializers.map(\.name), ["onnx::MatMul_7", "fc.bias"])
        XCTAssertEqual(model.nodes, [
            ONNXNode(name: "/fc/MatMul", opType: "MatMul", inputs: ["x", "onnx::MatMul_7"],
                outputs: ["/fc/MatMul_output_0"]),
            ONNXNode(name: "/fc/Add", opType: "Add", inputs: ["/fc/MatMul_output_0", "fc.bias"], outputs: ["y"]),
        ])
        let weight = try model.floatTensor(named: "onnx::MatMul_7")
        XCTAssertEqual(weight.shape, [2, 3])
        XCTAssertEqual(weight.values, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try model.floatTensor(named: "fc.bias").values, [0.5, -0.5, 0.25], "float_data path")
        XCTAssertEqual(model.consumers(of: "fc.bias").map(\.name), ["/fc/Add"])
    }

    func testMissingInitializer() throws {
        let url = try directory.write("small.onnx", smallModel())
        let model = try ONNXModel(url: url)
        assertCheckpointError(try model.initializer("onnx::MatMul_999"), kind: .missingTensor,
            mentions: [url.path, "tensor 'onnx::MatMul_999'"])
    }

    func testTruncatedFile() throws {
        let bytes = smallModel()
        let url = try directory.write("truncated.onnx", Array(bytes.prefix(bytes.count - 10)))
        assertCheckpointError(try ONNXModel(url: url), kind: .invalidProtobuf, mentions: [url.path, "exceeds", "truncated"])
    }

    func testEveryTruncationFailsCleanly() throws {
        let bytes = smallModel()
        // The last 4 bytes are the optional opset_import; cutting exactly before it leaves a valid model.
        let lastRequiredByte = bytes.count - 4
        for length in 0..<lastRequiredByte {
            let url = try directory.write("cut.onnx", Array(bytes.prefix(length)))
            assertCheckpointError(try ONNXModel(url: url), mentions: [url.path])
        }
        XCTAssertNoThrow(try ONNXModel(url: directory.write("cut.onnx", Array(bytes.prefix(lastRequiredByte)))))
    }

    func testGarbageBytes() throws {
        let url = directory.file("garbage.onnx")
        let text = Array("this is not an ONNX model, just some text\n".utf8)
        assertCheckpointError(try ONNXModel(url: directory.write("garbage.onnx", text)), mentions: [url.path])
        assertCheckpointError(try ONNXModel(url: directory.write("garbage.onnx", [UInt8](repeating: 0xFF, count: 64))),
            kind: .invalidProtobuf, mentions: [url.path, "varint"])
        // A length prefix of ~2^62 bytes must be refused before anything is allocated.
        var absurd = ProtoWriter()
        absurd.tag(7, 2)
        absurd.varint(1 << 62)
        assertCheckpointError(try ONNXModel(url: directory.write("garbage.onnx", absurd.bytes)), kind: .invalidProtobuf,
            mentions: [url.path, "length \(UInt64(1) << 62) exceeds"])
        // Random bytes (fixed seeds) never crash, and never pass as a model.
        var random = SplitMix64(state: 42)
        for _ in 0..<300 {
            let count = Int(random.next() % 2048)
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            XCTAssertThrowsError(try ONNXModel(url: directory.write("garbage.onnx", bytes))) { error in
                XCTAssertTrue("\(error)".contains(url.path), "\(error)")
            }
        }
    }

    func testDataSizeMismatchAndExternalData() throws {
        var external = ProtoWriter()
        external.int(1, 2)
        external.int(2, 1)
        external.string(8, "w_ext")
        var location = ProtoWriter()
        location.string(1, "location")
        location.string(2, "weights.bin")
        external.message(13, location)
        external.int(14, 1)
        let url = try directory.write("bad.onnx", onnxModel(nodes: [], initializers: [
            onnxTensor("w_short", dims: [2, 2], values: [1, 2, 3]),
            external,
        ]))
        let model = try ONNXModel(url: url)
        assertCheckpointError(try model.floatTensor(named: "w_short"), mentions: [url.path, "tensor 'w_short'", "raw_data has 12 bytes"])
        assertCheckpointError(try model.floatTensor(named: "w_ext"), mentions: [url.path, "tensor 'w_ext'", "external data", "weights.bin"])
    }

    func testNoGraph() throws {
        var model = ProtoWriter()
        model.int(1, 7)
        let url = try directory.write("nograph.onnx", model.bytes)
        assertCheckpointError(try ONNXModel(url: url), kind: .invalidONNX, mentions: [url.path, "no graph"])
    }
}
