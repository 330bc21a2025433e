import Checkpoints
import Engine
import Foundation
import XCTest

/// `peft train-lm` as a user runs it on the real SmolLM2-135M-Instruct: a LoRA trained for a few steps on a JSONL
/// file lowers the loss, lands in the peft layout (task_type CAUSAL_LM, LlamaForCausalLM module names, the hub id
/// of the base) and `peft generate --adapter` applies it; a bad line is refused with its file and line.
final class TrainLanguageModelCommandTests: XCTestCase {
    func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("train-lm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testLoRAOnJSONLTrainsSavesInThePeftLayoutAndGenerates() throws {
        let dir = try folder()
        let data = dir.appendingPathComponent("train.jsonl")
        let lines = (0..<8).map { i in
            "{\"prompt\": \"Say the code word \(i % 2 == 0 ? "please" : "now").\", \"completion\": \"The code word is pelican.\"}"
        }
        try Data(lines.joined(separator: "\n").utf8).write(to: data)
        let out = dir.appendingPathComponent("adapter")
        let outcome = try PeftProcess.run(["train-lm", "--data", data.path, "--validation", data.path, "--method", "lora", "--rank", "4", "--batch", "4",
                                           "--epochs", "5", "--max-steps", "10", "--warmup-steps", "0", "--lr", "1e-2", "--log-every", "1",
                                           "--max-tokens", "64", "--out", out.path], timeout: 600)
        assertSuccess(outcome)
        XCTAssertTrue(outcome.stderr.contains("step 10/10"), outcome.summary)
        XCTAssertTrue(outcome.stderr.contains("epoch 5: validation loss"), outcome.summary)
        let result = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("result.json"))) as? [String: Any]
        let history = result?["history"] as? [[String: Any]] ?? []
        let losses = history.compactMap { $0["train_loss"] as? Double }
        let validation = history.compactMap { $0["validation_loss"] as? Double }
        XCTAssertEqual(validation.count, 5, outcome.summary)
        XCTAssertLessThan(validation.last ?? .infinity, validation.first ?? 0, "the validation loss falls: \(validation)")
        XCTAssertEqual(losses.count, 10, outcome.summary)
        XCTAssertLessThan(losses.last ?? .infinity, 0.2 * (losses.first ?? 0), "the loss falls: \(losses)")

        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("adapter_config.json"))) as? [String: Any]
        XCTAssertEqual(config?["task_type"] as? String, "CAUSAL_LM")
        XCTAssertEqual(config?["peft_type"] as? String, "LORA")
        XCTAssertEqual(config?["base_model_name_or_path"] as? String, "HuggingFaceTB/SmolLM2-135M-Instruct")
        XCTAssertEqual(Set(config?["target_modules"] as? [String] ?? []), ["q_proj", "v_proj"])
        XCTAssertEqual(config?["r"] as? Int, 4)
        let weights = try Data(contentsOf: out.appendingPathComponent("adapter_model.safetensors"))
        let header = String(decoding: weights.prefix(4096), as: UTF8.self)
        XCTAssertTrue(header.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), String(header.prefix(300)))

        let generated = try PeftProcess.run(["generate", "--adapter", out.path, "--prompt", "Say the code word please.",
                                             "--max-new-tokens", "8"], timeout: 120)
        assertSuccess(generated)
        XCTAssertTrue(generated.stdout.lowercased().contains("pelican"), "the adapter's answer: \(generated.summary)")
        XCTAssertTrue(generated.stderr.contains("with the adapter"), generated.summary)
    }

    /// A run killed (SIGKILL) after a checkpoint and resumed with `--resume` ends with the adapter an uninterrupted
    /// run writes; a resume with other settings, or without a checkpoint, is refused naming what differs.
    func testAKilledRunResumesToTheUninterruptedRunsAdapter() throws {
        let dir = try folder()
        let data = dir.appendingPathComponent("train.jsonl")
        let lines = (0..<12).map { i in "{\"prompt\": \"Count to \(i % 4 + 2).\", \"completion\": \"\((1...(i % 4 + 2)).map(String.init).joined(separator: " ")).\"}" }
        try Data(lines.joined(separator: "\n").utf8).write(to: data)
        func arguments(_ out: URL, _ extra: [String] = []) -> [String] {
            ["train-lm", "--data", data.path, "--method", "lora", "--rank", "4", "--batch", "2", "--epochs", "2",
             "--lr", "5e-3", "--warmup-steps", "2", "--max-tokens", "48", "--log-every", "1", "--checkpoint-every", "1",
             "--option", "lora_dropout=0.1", "--out", out.path] + extra
        }
        let whole = dir.appendingPathComponent("whole")
        let straight = try PeftProcess.run(arguments(whole), timeout: 600)
        assertSuccess(straight)
        XCTAssertTrue(straight.stderr.contains("step 12/12"), straight.summary)

        // The same run, killed once its checkpoint holds a few steps.
        let killed = dir.appendingPathComponent("killed")
        let process = Process()
        process.executableURL = PeftProcess.binary
        process.arguments = arguments(killed)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let checkpoint = killed.appendingPathComponent("checkpoint.safetensors")
        func checkpointStep() -> Int? {
            guard let file = try? SafeTensorsFile(path: checkpoint.path),
                  let text = file.metadata["peft_lm_training_state"],
                  let state = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
            return state["completedSteps"] as? Int
        }
        let deadline = Date().addingTimeInterval(300)
        while process.isRunning, Date() < deadline, (checkpointStep() ?? 0) < 3 { usleep(20_000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let stepAtKill = try XCTUnwrap(checkpointStep(), "a whole checkpoint is on disk after the kill")
        XCTAssertLessThan(stepAtKill, 12, "killed before the end")
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed.appendingPathComponent("adapter_model.safetensors").path))

        let other = try PeftProcess.run(arguments(killed, ["--resume", "--lr", "1e-3"]), timeout: 120)
        assertCleanFailure(other, mentions: "lr: 0.005 in the checkpoint, 0.001 now")
        let resumed = try PeftProcess.run(arguments(killed, ["--resume"]), timeout: 600)
        assertSuccess(resumed)
        XCTAssertTrue(resumed.stderr.contains("resuming from step \(stepAtKill) of 12"), resumed.summary)
        let expected = try SafeTensorsFile(path: whole.appendingPathComponent("adapter_model.safetensors").path)
        let got = try SafeTensorsFile(path: killed.appendingPathComponent("adapter_model.safetensors").path)
        XCTAssertEqual(Set(got.names), Set(expected.names))
        for name in expected.names {
            let a = try got.tensor(name).values, b = try expected.tensor(name).values
            XCTAssertEqual(a.count, b.count, name)
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-6, name) }
        }
        // The log holds every step once: those before the kill and those after.
        let log = try String(contentsOf: killed.appendingPathComponent("log.jsonl"), encoding: .utf8)
        let steps = log.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["step"] as? Int
        }
        XCTAssertEqual(Set(steps), Set(1...12), log)

        let none = try PeftProcess.run(arguments(dir.appendingPathComponent("empty"), ["--resume"]), timeout: 60)
        assertCleanFailure(none, mentions: "there is no run to continue")
    }

    /// `eval-lm` scores the greedy answers by exact match and says how many were right.
    func testEvalLMScoresATask() throws {
        let outcome = try PeftProcess.run(["eval-lm", "--task", "add-lm", "--limit", "3", "--batch", "3", "--max-new-tokens", "8"],
                                          timeout: 180)
        assertSuccess(outcome)
        XCTAssertTrue(outcome.stdout.hasPrefix("add-lm test (3 examples): exact match "), outcome.summary)
        XCTAssertTrue(outcome.stderr.contains("(expected "), outcome.summary)
    }

    func testBadDataAndOptionsAreRefusedWithTheirNames() throws {
        let dir = try folder()
        let data = dir.appendingPathComponent("bad.jsonl")
        try Data("{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\", \"completion\": }\n".utf8).write(to: data)
        let out = dir.appendingPathComponent("adapter")
        assertCleanFailure(try PeftProcess.run(["train-lm", "--data", data.path, "--out", out.path], timeout: 120),
                           mentions: "bad.jsonl:2: not a JSON object")
        assertCleanFailure(try PeftProcess.run(["train-lm", "--data", data.path, "--out", out.path, "--format", "xml"], timeout: 60),
                           mentions: "--format must be chat or plain")
        assertCleanFailure(try PeftProcess.run(["train-lm", "--data", data.path, "--out", out.path, "--method", "vpt"], timeout: 120),
                           mentions: "vpt")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing is written for a refused run")
        assertCleanFailure(try PeftProcess.run(["train-lm", "--data", data.path, "--task", "add-lm", "--out", out.path], timeout: 60),
                           mentions: "give exactly one of --data FILE and --task NAME")
        assertCleanFailure(try PeftProcess.run(["train-lm", "--task", "chess-lm", "--out", out.path], timeout: 60),
                           mentions: "unknown language task 'chess-lm'")
        assertCleanFailure(try PeftProcess.run(["eval-lm", "--task", "add-lm", "--split", "train"], timeout: 60),
                           mentions: "--split must be test or validation")
        // A folder that holds something is never replaced without --overwrite.
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: out.appendingPathComponent("notes.txt"))
        assertCleanFailure(try PeftProcess.run(["train-lm", "--data", data.path, "--out", out.path], timeout: 60),
                           mentions: "already holds files (notes.txt)")
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("notes.txt"), encoding: .utf8), "keep")
    }
}
