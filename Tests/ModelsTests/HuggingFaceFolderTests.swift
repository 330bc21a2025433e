import Checkpoints
import Engine
import Foundation
import Models
import XCTest

/// Model folders written by transformers' `save_pretrained` (scripts/reference/make_hf_folder_fixtures.py): the
/// loaded model's output equals transformers' last_hidden_state for the stored input.
final class HuggingFaceFolderTests: XCTestCase {
    let root = fixturesDirectory.appendingPathComponent("hf")

    func largestDifference(_ ours: Tensor, _ expected: Tensor) -> Float {
        XCTAssertEqual(ours.shape, expected.shape)
        var worst: Float = 0
        for i in 0..<min(ours.count, expected.count) { worst = max(worst, abs(ours.data[i] - expected.data[i])) }
        return worst
    }

    func testVisionFoldersMatchTransformers() throws {
        for name in ["dinov2-tiny", "vit-tiny", "vit-tiny-t5-names"] {
            let folder = try HuggingFaceFolder(path: root.appendingPathComponent(name).path)
            let model = try folder.visionModel()
            let expected = try SafeTensorsFile(path: root.appendingPathComponent("\(name)/expected.safetensors").path)
            let output = Autograd.withoutGrad { model.features(try! expected.tensor("pixel_values")) }
            let difference = largestDifference(output, try expected.tensor("last_hidden_state"))
            print("\(name): max |ours - transformers| = \(difference)")
            XCTAssertLessThan(difference, 1e-4, name)
        }
        let dinov2 = try HuggingFaceFolder(path: root.appendingPathComponent("dinov2-tiny").path)
        XCTAssertEqual(try dinov2.weightFiles().count, 5, "the shards of model.safetensors.index.json")
        XCTAssertEqual(try dinov2.visionConfiguration().mlpDimension, 64, "mlp_ratio 2 x hidden 32")
        XCTAssertEqual(try dinov2.visionConfiguration().std, [0.229, 0.224, 0.225], "from preprocessor_config.json")
        XCTAssertEqual(try HuggingFaceFolder(path: root.appendingPathComponent("vit-tiny").path).visionConfiguration().mean, [0.5, 0.5, 0.5])
    }

    func testBertFolderMatchesTransformers() throws {
        let folder = try HuggingFaceFolder(path: root.appendingPathComponent("bert-tiny").path)
        let (encoder, tokenizer) = try folder.textModel()
        let expected = try SafeTensorsFile(path: root.appendingPathComponent("bert-tiny/expected.safetensors").path)
        let ids = try expected.int32Values("input_ids"), mask = try expected.int32Values("attention_mask")
        let shape = try XCTUnwrap(expected.info("input_ids")).shape
        let rows = (0..<shape[0]).map { Array(ids[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
        let masks = (0..<shape[0]).map { Array(mask[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
        let output = Autograd.withoutGrad { encoder.hiddenStates(TokenBatch(ids: rows, mask: masks)) }
        let reference = try expected.tensor("last_hidden_state")
        // Padded positions are not compared: transformers computes them, nothing reads them.
        var worst: Float = 0
        let width = reference.shape[2]
        for b in 0..<shape[0] {
            for t in 0..<shape[1] where masks[b][t] != 0 {
                for d in 0..<width {
                    let i = (b * shape[1] + t) * width + d
                    worst = max(worst, abs(output.data[i] - reference.data[i]))
                }
            }
        }
        print("bert-tiny: max |ours - transformers| = \(worst)")
        XCTAssertLessThan(worst, 1e-4)
        XCTAssertEqual(tokenizer.encode("the cat sat", maxLength: 8), [2, 31, 32, 33, 3])
    }

    func testTensorNamesInBothSpellings() {
        let cases: [(String, HuggingFaceFolder.Kind, String?)] = [
            ("dinov2.encoder.layer.3.attention.attention.query.weight", .dinov2, "encoder.layer.3.attention.attention.query.weight"),
            ("encoder.layer.3.attention.q_proj.weight", .dinov2, "encoder.layer.3.attention.attention.query.weight"),
            ("layers.0.attention.o_proj.bias", .vit, "encoder.layer.0.attention.output.dense.bias"),
            ("encoder.layer.0.output.dense.weight", .vit, "encoder.layer.0.mlp.fc2.weight"),
            ("encoder.layer.0.attention.output.dense.weight", .vit, "encoder.layer.0.attention.output.dense.weight"),
            ("layers.1.layernorm_after.weight", .vit, "encoder.layer.1.norm2.weight"),
            ("encoder.layer.0.output.dense.weight", .bert, "encoder.layer.0.output.dense.weight"),
            ("bert.pooler.dense.weight", .bert, nil),
            ("embeddings.mask_token", .dinov2, nil),
            ("classifier.weight", .vit, nil),
        ]
        for (name, kind, expected) in cases {
            XCTAssertEqual(HuggingFaceFolder.internalName(name, kind: kind), expected, name)
        }
    }

    func testBadFoldersAreRefusedNamingTheFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hf-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("config.json")
        func refuse(_ json: String, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
            try? Data(json.utf8).write(to: config)
            XCTAssertThrowsError(try { () throws -> Void in
                let hf = try HuggingFaceFolder(path: folder.path)
                _ = try hf.kind == .bert ? hf.textModel().encoder as Any : hf.visionModel() as Any
            }(), file: file, line: line) {
                XCTAssertTrue("\($0)".contains(message), "expected '\(message)' in '\($0)'", file: file, line: line)
            }
        }
        refuse("{\"model_type\": \"roberta\"}", "model_type 'roberta' is not supported")
        refuse("{\"hidden_size\": 32}", "no 'model_type'")
        refuse("{\"model_type\": \"vit\", \"hidden_size\": 30, \"num_attention_heads\": 4}", "not a multiple of num_attention_heads")
        refuse("{\"model_type\": \"vit\", \"hidden_size\": 32, \"num_attention_heads\": 4, \"intermediate_size\": 8, \"image_size\": 16, \"patch_size\": 4, \"num_hidden_layers\": 1, \"hidden_act\": \"gelu_new\"}", "hidden_act 'gelu_new'")
        refuse("{\"model_type\": \"vit\", \"hidden_size\": 32, \"num_attention_heads\": 4, \"intermediate_size\": 8, \"image_size\": 16, \"patch_size\": 4, \"num_hidden_layers\": 1}", "no model.safetensors")
        // Weights that lack a tensor: the missing one is named.
        try FileManager.default.copyItem(at: root.appendingPathComponent("vit-tiny/model.safetensors"), to: folder.appendingPathComponent("model.safetensors"))
        let vitConfig = try String(contentsOf: root.appendingPathComponent("vit-tiny/config.json"), encoding: .utf8)
        refuse(vitConfig.replacingOccurrences(of: "\"num_hidden_layers\": 2", with: "\"num_hidden_layers\": 3"), "missing")
    }
}
