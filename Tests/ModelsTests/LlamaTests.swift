import XCTest
import Checkpoints
import Engine
import Layers
import Models
import TestSupport

/// The Llama decoder on a tiny random model: transformers' names, causality, padding, gradients.
final class LlamaTests: XCTestCase {
    static let tiny = LlamaConfiguration(vocabularySize: 23, hiddenSize: 16, intermediateSize: 24, layers: 2, heads: 4,
                                         keyValueHeads: 2, ropeBase: 100, rmsNormEps: 1e-5, contextLength: 32)

    func model(seed: UInt64 = 1) throws -> LlamaModel {
        let model = try LlamaModel(Self.tiny, seed: seed)
        // Norm weights away from 1, so that their gradients and the loader's checks mean something.
        var generator = RandomGenerator(seed: seed + 100)
        for (name, parameter) in model.namedParameters() where name.hasSuffix("norm.weight") {
            parameter.assign(Tensor.randomUniform(parameter.shape, low: 0.5, high: 1.5, generator: &generator))
        }
        return model
    }

    func testParameterNamesAreTransformersAndTheHeadIsTied() throws {
        let names = try model().namedParameters().map(\.0)
        XCTAssertEqual(names.first, "model.embed_tokens.weight")
        for name in ["model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight",
                     "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight",
                     "model.layers.0.self_attn.o_proj.weight", "model.layers.0.post_attention_layernorm.weight",
                     "model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight",
                     "model.layers.1.mlp.down_proj.weight", "model.norm.weight"] {
            XCTAssertTrue(names.contains(name), name)
        }
        XCTAssertFalse(names.contains { $0.hasPrefix("lm_head") }, "tied: no separate head")
        XCTAssertEqual(names.count, 1 + 2 * 9 + 1)
        var untied = Self.tiny
        untied.tiedEmbeddings = false
        XCTAssertTrue(try LlamaModel(untied).namedParameters().contains { $0.0 == "lm_head.weight" })
    }

    func testLogitsAreCausalAndPaddingOnTheLeftChangesNothing() throws {
        let model = try model()
        let ids: [Int32] = [3, 7, 1, 12, 5, 9]
        let full = Autograd.withoutGrad { try? model.logits([ids]) }!
        XCTAssertEqual(full.shape, [1, 6, 23])
        // Changing the last token leaves the logits of every earlier position unchanged.
        var changed = ids
        changed[5] = 20
        let other = Autograd.withoutGrad { try? model.logits([changed]) }!
        XCTAssertEqual(Array(full.values[0..<(5 * 23)]), Array(other.values[0..<(5 * 23)]))
        XCTAssertNotEqual(Array(full.values[(5 * 23)...]), Array(other.values[(5 * 23)...]))
        // A shorter prompt padded on the left in a batch gives the logits it gives alone.
        let short: [Int32] = [4, 8, 15]
        let alone = Autograd.withoutGrad { try? model.logits([short]) }!
        let batch = Autograd.withoutGrad {
            try? model.logits([ids, [0, 0, 0] + short], attentionMask: [[1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]])
        }!
        let padded = Array(batch.values[(6 * 23 + 3 * 23)...])
        for (a, b) in zip(padded, alone.values) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        for (a, b) in zip(Array(batch.values[0..<(6 * 23)]), full.values) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testBadInputIsRefusedWithAMessage() throws {
        let model = try model()
        XCTAssertThrowsError(try model.logits([[1, 99]])) { XCTAssertTrue("\($0)".contains("token id 99"), "\($0)") }
        XCTAssertThrowsError(try model.logits([[1, 2], [3]])) { XCTAssertTrue("\($0)".contains("one length"), "\($0)") }
        XCTAssertThrowsError(try model.logits([Array(repeating: 1, count: 33)])) { XCTAssertTrue("\($0)".contains("context"), "\($0)") }
        var wrong = Self.tiny
        wrong.keyValueHeads = 3
        XCTAssertThrowsError(try LlamaModel(wrong)) { XCTAssertTrue("\($0)".contains("key/value heads"), "\($0)") }
    }

    func testGradientsOfTheWholeModelMatchFiniteDifferences() throws {
        let model = try model(seed: 2)
        let ids: [[Int32]] = [[3, 7, 1, 12], [5, 9, 2, 2]]
        let parameters = model.namedParameters()
        let picked = ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
                      "model.layers.0.mlp.gate_proj.weight", "model.layers.1.post_attention_layernorm.weight",
                      "model.norm.weight", "model.embed_tokens.weight"].map { name in parameters.first { $0.0 == name }!.1 }
        checkGradients("llama", inputs: picked, epsilon: 1e-2, tolerance: 2e-2, maxElementsPerInput: 24) { _ in
            try! model.logits(ids, attentionMask: [[1, 1, 1, 1], [1, 1, 1, 0]])
        }
    }

    func testRotaryRowsAreUnpermutedAsTransformersDoes() throws {
        // llama.cpp's permute of 2 heads of 8 rows: within a head, transformers' row j * 4 + i goes to row 2 i + j.
        let heads = 2, rows = 16, columns = 3
        let original = Tensor(shape: [rows, columns], values: (0..<(rows * columns)).map(Float.init))
        let permuted = Tensor(zeros: [rows, columns])
        for h in 0..<heads { for i in 0..<4 { for j in 0..<2 { for c in 0..<columns {
            permuted.data[(h * 8 + 2 * i + j) * columns + c] = original.data[(h * 8 + j * 4 + i) * columns + c]
        } } } }
        LlamaModel.unpermuteRotaryRows(permuted, heads: heads)
        XCTAssertEqual(permuted.values, original.values)
    }
}
