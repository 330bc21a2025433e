import XCTest
import Checkpoints
import Engine
import Models

/// The real pretrained backbones against references computed once outside Swift
/// (scripts/reference/make_real_references.py: Hugging Face transformers in float64).
final class RealModelParityTests: XCTestCase {
    func testDINOv2SmallFinalLayerNormMatchesReference() throws {
        _ = try requireAsset("dinov2/vit_s_focus.onnx")
        let model = try PretrainedModels.dinov2Small()
        XCTAssertEqual(model.parameterCount, 22_056_192)
        let reference = try fixture("dinov2_s14_reference.safetensors")
        for size in [224, 112] {
            let pixels = try reference.tensor("pixels_\(size)")
            // The stored input must be the documented formula (so others can regenerate it).
            XCTAssertEqual(pixels[0, 2, 10, 7], Float(0.5 * sin(0.05 * 10 + 0.09 * 7 + 1.3 * 2)), accuracy: 1e-7)
            let hidden = Autograd.withoutGrad { model.features(pixels) }
            let tokens = (size / 14) * (size / 14)
            XCTAssertEqual(hidden.shape, [1, 1 + tokens, 384])
            let classRow = hidden.slice(axis: 1, 0..<1).reshaped([384])
            assertMatches(classRow, try reference.tensor("cls_\(size)"), "CLS at \(size) px")
            let patchMean = hidden.slice(axis: 1, 1..<(1 + tokens)).mean(axis: 1).reshaped([384])
            assertMatches(patchMean, try reference.tensor("patch_mean_\(size)"), "patch mean at \(size) px")
            let firstPatches = hidden.slice(axis: 1, 1..<4).reshaped([3, 384])
            assertMatches(firstPatches, try reference.tensor("patch_first3_\(size)"), "first patches at \(size) px")
        }
    }

    func testMiniLMTokensAndSentenceEmbeddingsMatchReference() throws {
        _ = try requireAsset("minilm/model.safetensors")
        let model = try PretrainedModels.miniLM()
        let tokenizer = try PretrainedModels.miniLMTokenizer()
        let reference = try fixture("minilm_reference.safetensors")
        let info = try XCTUnwrap(reference.metadata["info"]?.data(using: .utf8))
        let sentences = try XCTUnwrap((try JSONSerialization.jsonObject(with: info) as? [String: Any])?["sentences"] as? [String])
        let expectedIds = integers(try reference.tensor("input_ids"))
        let length = try reference.tensor("input_ids").shape[1]
        let encoded = tokenizer.encodeBatch(sentences, maxLength: 128)
        XCTAssertEqual(encoded.ids.flatMap { $0 }, expectedIds, "token ids differ from the Hugging Face tokenizer")
        XCTAssertEqual(encoded.ids.first?.count, length)
        let embedding = Autograd.withoutGrad { model.meanPooled(TokenBatch(ids: encoded.ids, mask: encoded.mask)) }
        assertMatches(embedding, try reference.tensor("embedding"), "mean-pooled embeddings")
    }
}
