import Checkpoints
import Engine
import Foundation
import XCTest

/// The importer on a tiny synthetic export laid out like the real one (anonymous [in, out] MatMul weights in the
/// order key, value, query, dense, fc1, fc2; split position embeddings; a decoder to ignore).
final class DINOv2ImporterTests: XCTestCase {
    var directory: TemporaryDirectory!
    let tiny = DINOv2Architecture(depth: 2, hiddenSize: 4, mlpSize: 8, patchSize: 2, gridSize: 2)

    override func setUpWithError() throws { directory = try TemporaryDirectory() }
    override func tearDown() { directory.remove() }

    /// Distinct values for every expected tensor: element i of tensor k is k + i / 1000.
    private func referenceValues() -> [String: (shape: [Int], values: [Float])] {
        var result: [String: (shape: [Int], values: [Float])] = [:]
        for (k, (name, shape)) in tiny.expectedTensors.enumerated() {
            let count = shape.reduce(1, *)
            result[name] = (shape, (0..<count).map { Float(k) + Float($0) / 1000 })
        }
        return result
    }

    /// The export: `omit` leaves tensors out, `extra` adds named backbone initializers.
    private func export(omit: Set<String> = [], extra: [ProtoWriter] = []) -> [UInt8] {
        let reference = referenceValues()
        var initializers: [ProtoWriter] = []
        var nodes: [ProtoWriter] = []
        var anonymous = 1000
        for (name, _) in tiny.expectedTensors where !omit.contains(name) {
            let (shape, values) = reference[name]!
            if name == "embeddings.position_embeddings" {
                let h = tiny.hiddenSize
                initializers.append(onnxTensor("onnx::Concat_1", dims: [1, 1, h], values: Array(values[0..<h])))
                initializers.append(onnxTensor("onnx::Reshape_2", dims: [1, shape[1] - 1, h], values: Array(values[h...])))
                nodes.append(onnxNode("/backbone/embeddings/Reshape_1", "Reshape", inputs: ["onnx::Reshape_2", "shape"]))
                nodes.append(onnxNode("/backbone/embeddings/Concat_6", "Concat",
                    inputs: ["onnx::Concat_1", "/backbone/embeddings/Reshape_2_output_0"]))
            } else if name.hasSuffix(".weight") && shape.count == 2 {
                continue  // linear weights are added below, in the exporter's order
            } else {
                initializers.append(onnxTensor("backbone." + name, dims: shape, values: values))
            }
        }
        for layer in 0..<tiny.depth {
            for module in ["attention/attention/key", "attention/attention/value", "attention/attention/query",
                "attention/output/dense", "mlp/fc1", "mlp/fc2"]
            {
                let name = "encoder.layer.\(layer).\(module.replacingOccurrences(of: "/", with: ".")).weight"
                guard !omit.contains(name) else { continue }
                let (shape, values) = reference[name]!
                let transposed = (0..<values.count).map { i in values[(i % shape[0]) * shape[1] + i / shape[0]] }
                let anonymousName = "onnx::MatMul_\(anonymous)"
                anonymous += 1
                initializers.append(onnxTensor(anonymousName, dims: [shape[1], shape[0]], values: transposed))
                nodes.append(onnxNode("/backbone/encoder/layer.\(layer)/\(module)/MatMul", "MatMul",
                    inputs: ["/backbone/encoder/layer.\(layer)/norm1/Add_1_output_0", anonymousName]))
            }
        }
        initializers.append(onnxTensor("decoder.conv.weight", dims: [2, 2], values: [1, 2, 3, 4]))
        return onnxModel(nodes: nodes, initializers: initializers + extra)
    }

    func testMapsNamesTransposesAndJoinsPositionEmbeddings() throws {
        let url = try directory.write("tiny.onnx", export())
        let stateDict = try DINOv2ONNXImporter(architecture: tiny).stateDict(onnx: url)
        let reference = referenceValues()
        XCTAssertEqual(Set(stateDict.keys), Set(reference.keys))
        for (name, (shape, values)) in reference {
            XCTAssertEqual(stateDict[name]?.shape, shape, name)
            XCTAssertEqual(stateDict[name]?.values, values, name)
        }
        XCTAssertEqual(stateDict.values.reduce(0) { $0 + $1.count }, tiny.parameterCount)
    }

    func testMissingTensorIsNamed() throws {
        let url = try directory.write("tiny.onnx", export(omit: ["encoder.layer.1.layer_scale2.lambda1"]))
        assertCheckpointError(try DINOv2ONNXImporter(architecture: tiny).stateDict(onnx: url), kind: .modelMismatch,
            mentions: [url.path, "tensor 'encoder.layer.1.layer_scale2.lambda1'", "missing"])
        let noQuery = try directory.write("tiny.onnx", export(omit: ["encoder.layer.0.attention.attention.query.weight"]))
        assertCheckpointError(try DINOv2ONNXImporter(architecture: tiny).stateDict(onnx: noQuery), kind: .modelMismatch,
            mentions: [url.path, "tensor 'encoder.layer.0.attention.attention.query.weight'", "missing"])
    }

    func testExtraAndMisshapedTensorsAreNamed() throws {
        let extra = try directory.write("tiny.onnx",
            export(extra: [onnxTensor("backbone.encoder.layer.2.norm1.weight", dims: [4], values: [0, 0, 0, 0])]))
        assertCheckpointError(try DINOv2ONNXImporter(architecture: tiny).stateDict(onnx: extra), kind: .modelMismatch,
            mentions: [extra.path, "tensor 'encoder.layer.2.norm1.weight'", "unexpected"])

        let wrong = try directory.write("tiny.onnx", export(omit: ["layernorm.bias"],
            extra: [onnxTensor("backbone.layernorm.bias", dims: [5], values: [0, 0, 0, 0, 0])]))
        assertCheckpointError(try DINOv2ONNXImporter(architecture: tiny).stateDict(onnx: wrong), kind: .modelMismatch,
            mentions: [wrong.path, "tensor 'layernorm.bias'", "[5]", "expected [4]"])

        let twice = try directory.write("tiny.onnx",
            export(extra: [onnxTensor("backbone.encoder.layer.0.mlp.fc1.weight", dims: [8, 4], values: .init(repeating: 0, count: 32))]))
        assertCheckpointError(try DINOv2ONNXImporter(architecture: tiny).stateDict(onnx: twice), kind: .modelMismatch,
            mentions: [twice.path, "tensor 'encoder.layer.0.mlp.fc1.weight'", "twice"])
    }

    func testImportWritesSafetensors() throws {
        // importDINOv2 expects ViT-S/14, so the tiny export must be refused, naming the file, with no output left.
        let source = try directory.write("tiny.onnx", export())
        let destination = directory.file("out.safetensors")
        assertCheckpointError(try importDINOv2(onnx: source, to: destination), kind: .modelMismatch, mentions: [source.path])
        XCTAssertEqual(try directory.contents(), ["tiny.onnx"])
    }

    func testViTSmallArchitectureHasThePublishedParameterCount() {
        XCTAssertEqual(DINOv2Architecture.small14.parameterCount, 22_056_192)
        XCTAssertEqual(DINOv2Architecture.small14.expectedTensors.count, 4 + 12 * 18 + 2)
    }
}
