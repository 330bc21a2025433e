import XCTest
import Checkpoints
import Engine
import Models

/// SmolLM2-135M-Instruct from its GGUF file (fetched by scripts/setup.sh) against transformers in float32 from the
/// same file (Fixtures/smollm2_logits_reference.json, made by scripts/reference/make_smollm2_logits_reference.py):
/// the configuration, the q/k row order, logits within 1e-3 relative, greedy continuations token for token, and a
/// left-padded batch.
final class LlamaParityTests: XCTestCase {
    struct Reference: Decodable {
        struct Case: Decodable {
            let prompt: String
            let ids: [Int32]
            let top_ids: [Int]
            let top_logits: [Float]
            let probe_logits: [[Float]]
            let greedy: [Int32]
        }
        struct Batch: Decodable {
            let rows: [[Int32]]
            let mask: [[Int]]
            let last_probe_logits: [[Float]]
        }
        struct Config: Decodable {
            let vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads: Int
            let rope_theta: Float
            let tie_word_embeddings: Bool
        }
        let config: Config
        let probe_ids: [Int]
        let cases: [Case]
        let batch: Batch
        let weights: [String: [[Float]]]
    }

    nonisolated(unsafe) static var loaded: ([(String, LlamaModel)], Reference)?

    /// The model with every weight in float32, and with its projections and tied head kept quantised (the same
    /// values, multiplied block by block): both must match transformers.
    func load() throws -> ([(String, LlamaModel)], Reference) {
        if let loaded = Self.loaded { return loaded }
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/smollm2_logits_reference.json")
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
        let file = try GGUFFile(path: try requireAsset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").path)
        let models = [("float32", try LlamaModel(gguf: file)), ("quantized", try LlamaModel(gguf: file, quantizedWeights: true))]
        XCTAssertTrue(models[1].1.decoder.blocks.allSatisfy { $0.attention.query.computesQuantized && $0.mlp.down.computesQuantized })
        XCTAssertNotNil(models[1].1.tiedHeadQuantized)
        Self.loaded = (models, reference)
        return (models, reference)
    }

    /// A layer's W in float32 without making the layer expand it.
    func weightValues(_ layer: Linear) -> [Float] {
        if layer.computesQuantized, let quantized = layer.quantizedWeight { return quantized.dequantized().values }
        return layer.weight.values
    }

    /// ||a - b|| / ||b||.
    func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        let difference = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
        return difference / max(b.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12)
    }

    func testConfigurationAndRotaryRowOrderMatchTransformers() throws {
        let (models, reference) = try load()
        for (label, model) in models {
        let c = model.configuration
        let r = reference.config
        XCTAssertEqual([c.vocabularySize, c.hiddenSize, c.intermediateSize, c.layers, c.heads, c.keyValueHeads],
                       [r.vocab_size, r.hidden_size, r.intermediate_size, r.num_hidden_layers, r.num_attention_heads,
                        r.num_key_value_heads])
        XCTAssertEqual(c.ropeBase, r.rope_theta)
        XCTAssertEqual(c.tiedEmbeddings, r.tie_word_embeddings)
        let block = model.decoder.blocks[0].attention
        let q = try XCTUnwrap(reference.weights["model.layers.0.self_attn.q_proj.weight[0:4,0:4]"])
        let k = try XCTUnwrap(reference.weights["model.layers.0.self_attn.k_proj.weight[64:68,0:4]"])
        let qValues = weightValues(block.query), kValues = weightValues(block.key)
        for r in 0..<4 {
            for col in 0..<4 {
                XCTAssertEqual(qValues[r * c.hiddenSize + col], q[r][col], "\(label) q_proj[\(r), \(col)]")
                XCTAssertEqual(kValues[(64 + r) * c.hiddenSize + col], k[r][col], "\(label) k_proj[\(64 + r), \(col)]")
            }
        }
        }
    }

    func testLogitsMatchTransformersWithinOneThousandth() throws {
        let (models, reference) = try load()
        for (label, model) in models {
        let vocabulary = model.configuration.vocabularySize
        for item in reference.cases {
            let logits = Autograd.withoutGrad { try? model.logits([item.ids]) }
            let values = try XCTUnwrap(logits).values
            for (position, expected) in item.probe_logits.enumerated() {
                let got = reference.probe_ids.map { values[position * vocabulary + $0] }
                XCTAssertLessThan(relativeError(got, expected), 1e-3, "\(label) \(item.prompt): position \(position)")
            }
            let last = (item.ids.count - 1) * vocabulary
            let top = item.top_ids.map { values[last + $0] }
            XCTAssertLessThan(relativeError(top, item.top_logits), 1e-3, "\(label) \(item.prompt): top logits")
            let argmax = (0..<vocabulary).max { values[last + $0] < values[last + $1] }
            XCTAssertEqual(argmax, item.top_ids[0], "\(label) \(item.prompt)")
        }
        }
    }

    func testGreedyContinuationsMatchTokenForToken() throws {
        let (models, reference) = try load()
        for (label, model) in models {
            // All five prompts in one batch (padded on the left), with the KV cache.
            var options = GenerationOptions()
            options.maxNewTokens = 32
            let results = try model.generate(reference.cases.map(\.ids), options: options, padToken: 2)
            for (item, result) in zip(reference.cases, results) {
                XCTAssertEqual(result.tokens, item.greedy, "\(label) \(item.prompt)")
            }
            // One prompt alone decodes one token per step: the register kernels (8 rows or fewer) all the way.
            let single = try model.generate([reference.cases[0].ids], options: options, padToken: 2)
            XCTAssertEqual(single[0].tokens, reference.cases[0].greedy, "\(label) \(reference.cases[0].prompt) alone")
        }
    }

    func testALeftPaddedBatchMatchesTransformers() throws {
        let (models, reference) = try load()
        for (label, model) in models {
            let vocabulary = model.configuration.vocabularySize
            let values = try Autograd.withoutGrad { try model.logits(reference.batch.rows, attentionMask: reference.batch.mask) }.values
            let length = reference.batch.rows[0].count
            for b in 0..<2 {
                let last = (b * length + length - 1) * vocabulary
                let got = reference.probe_ids.map { values[last + $0] }
                XCTAssertLessThan(relativeError(got, reference.batch.last_probe_logits[b]), 1e-3, "\(label) row \(b)")
            }
        }
    }
}
