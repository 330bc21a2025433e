import Foundation
import XCTest
import Engine
import Methods
import Models

/// Causal-LM adapters shared with Hugging Face peft, checked against the real other side on SmolLM2-135M-Instruct
/// (fixtures from scripts/reference/make_causal_lm_adapter_fixtures.py, transformers 5.24 + peft 0.21.2):
/// a LoRA trained by `peft train-lm` gives, loaded here, the logits peft's `PeftModel.from_pretrained` gives on
/// transformers' LlamaForCausalLM, and so does a NEAT adapter in peft's PEANuT; a LoRA made and saved by peft (`save_pretrained`, no section of ours) loads here
/// and gives peft's logits.
final class CausalLMPeftInteropTests: XCTestCase {
    struct Record: Decodable {
        let probe_ids: [Int]
        let probe_logits: [[Float]]
        let top_ids: [Int]
        let top_logits: [Float]
        let greedy: [Int32]
        let greedy_text: String
    }

    struct Expected: Decodable {
        let prompt: String
        let ids: [Int32]
        let ours_in_peft: Record
        let neat_ours_in_peft: Record
        let peft_made: Record
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("causal_lm_adapters_expected.json")))
    }

    /// ||a - b|| / ||b||.
    func relative(_ a: [Float], _ b: [Float]) -> Float {
        let difference = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
        return difference / max(b.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12)
    }

    /// Loads `adapter` into a fresh SmolLM2 and compares its logits and greedy continuation with `record`.
    func check(adapter: String, against record: Record, ids: [Int32], file: StaticString = #filePath, line: UInt = #line) throws {
        let (model, tokenizer) = try PretrainedModels.languageModel(named: "smollm2-135m")
        try ModuleAdapters.load(from: Self.fixtures.appendingPathComponent(adapter), into: model)
        let logits = try Autograd.withoutGrad { try model.logits([ids]) }
        let vocabulary = logits.shape[2], values = logits.values
        var ours: [Float] = [], theirs: [Float] = []
        for (position, row) in record.probe_logits.enumerated() {
            for (probe, value) in zip(record.probe_ids, row) {
                ours.append(values[position * vocabulary + probe]); theirs.append(value)
            }
        }
        XCTAssertLessThan(relative(ours, theirs), 1e-3, "\(adapter): logits at the probes", file: file, line: line)
        let last = (ids.count - 1) * vocabulary
        let top = record.top_ids.map { values[last + $0] }
        XCTAssertLessThan(relative(top, record.top_logits), 1e-3, "\(adapter): top logits of the last position", file: file, line: line)
        var options = GenerationOptions()
        options.maxNewTokens = record.greedy.count
        options.stopTokens = []
        let generated = try model.generate([ids], options: options, padToken: tokenizer.padTokenID ?? 0)[0].tokens
        XCTAssertEqual(generated, record.greedy, "\(adapter): greedy continuation \(tokenizer.decode(generated)) vs \(record.greedy_text)",
                       file: file, line: line)
    }

    func testOurTrainedLoRAGivesPeftsLogits() throws {
        let expected = try expected()
        let (_, tokenizer) = try PretrainedModels.languageModel(named: "smollm2-135m")
        let prompt = ChatTemplate.smolLM2.render([ChatMessage(role: "user", content: expected.prompt)], addGenerationPrompt: true)
        XCTAssertEqual(tokenizer.encode(prompt), expected.ids, "the prompt's ids as transformers' chat template gives them")
        XCTAssertTrue(expected.ours_in_peft.greedy_text.contains("pelican"), "peft runs our adapter: \(expected.ours_in_peft.greedy_text)")
        try check(adapter: "smollm2-lora-ours", against: expected.ours_in_peft, ids: expected.ids)
    }

    /// NEAT with one encoder/decoder pair, under peft's PEANuT names and fields (`depth`, `scaling`, `act_fn`).
    func testOurTrainedNEATGivesPeftsPEANuTLogits() throws {
        let expected = try expected()
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("smollm2-neat-ours/adapter_config.json"))) as? [String: Any]
        XCTAssertEqual(config?["peft_type"] as? String, "PEANUT")
        XCTAssertEqual(config?["depth"] as? Int, 1)
        XCTAssertEqual(config?["act_fn"] as? String, "relu")
        try check(adapter: "smollm2-neat-ours", against: expected.neat_ours_in_peft, ids: expected.ids)
    }

    func testAPeftSavedLoRALoadsAndGivesPeftsLogits() throws {
        let expected = try expected()
        try check(adapter: "smollm2-lora-peft", against: expected.peft_made, ids: expected.ids)
    }
}
