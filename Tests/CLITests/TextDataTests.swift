import Foundation
import Training
import XCTest

/// `peft train --data FILE.csv` on the user's own texts, end to end: a CSV written from the fortunes task (texts
/// with commas, quotes and line breaks), trained on MiniLM, evaluated again, and a JSONL folder with explicit splits.
final class TextDataTests: XCTestCase {
    func csvField(_ text: String) -> String { "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    func testTrainOnACSVOfFortunes() throws {
        let task = try TaskRegistry.text(named: "fortunes-1k")
        let folder = temporaryDirectory("text-data", for: self), out = temporaryDirectory("text-run", for: self)
        var csv = "label,text\n"
        for (text, label) in zip(task.train.texts.prefix(200), task.train.labels.prefix(200)) {
            csv += task.classNames[label] + "," + csvField(text) + "\n"
        }
        let file = folder.appendingPathComponent("fortunes.csv")
        try Data(csv.utf8).write(to: file)
        let outcome = try PeftProcess.run(["train", "--data", file.path, "--method", "lora", "--rank", "4", "--batch-size", "16",
                                           "--epochs", "1", "--max-steps", "3", "--out", out.path], timeout: 300)
        assertSuccess(outcome)
        XCTAssertTrue(outcome.stderr.contains("\(Set(task.train.labels.prefix(200)).count) classes, 200 texts"), outcome.stderr)
        XCTAssertTrue(outcome.stdout.contains("minilm-l6 folder:fortunes.csv lora"), outcome.stdout)
        let config = try String(contentsOf: out.appendingPathComponent("adapter/adapter_config.json"), encoding: .utf8)
        XCTAssertTrue(config.contains(task.classNames[task.train.labels[0]]), config)
        let evaluated = try PeftProcess.run(["eval", out.path], timeout: 300)
        assertSuccess(evaluated)
    }

    /// A BERT model folder as transformers saves it (the committed tiny one with its vocab.txt) as the encoder.
    func testABertModelFolderTrainsOnTheTexts() throws {
        let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ModelsTests/Fixtures/hf/bert-tiny")
        let folder = temporaryDirectory("text-bert", for: self), out = temporaryDirectory("text-bert-run", for: self)
        var csv = "text,label\n"
        for i in 0..<30 { csv += "\(i % 2 == 0 ? "the cat sat on the mat" : "the dog ran"),\(i % 2 == 0 ? "cat" : "dog")\n" }
        try Data(csv.utf8).write(to: folder.appendingPathComponent("pets.csv"))
        let outcome = try PeftProcess.run(["train", "--model", model.path, "--data", folder.appendingPathComponent("pets.csv").path,
                                           "--method", "lora", "--rank", "2", "--batch-size", "4", "--epochs", "2", "--lr", "0.01",
                                           "--out", out.path])
        assertSuccess(outcome)
        XCTAssertTrue(outcome.stdout.contains("bert-tiny"), outcome.stdout)
        assertSuccess(try PeftProcess.run(["eval", out.path]))
    }

    func testAJSONLFolderWithALabelMissingFromTrainingIsRefused() throws {
        let folder = temporaryDirectory("text-jsonl", for: self)
        var train = "", test = ""
        for i in 0..<12 { train += "{\"text\": \"item \(i)\", \"label\": \"\(i % 2 == 0 ? "even" : "odd")\"}\n" }
        test = "{\"text\": \"x\", \"label\": \"even\"}\n{\"text\": \"y\", \"label\": \"prime\"}\n"
        try Data(train.utf8).write(to: folder.appendingPathComponent("train.jsonl"))
        try Data(test.utf8).write(to: folder.appendingPathComponent("test.jsonl"))
        let outcome = try PeftProcess.run(["train", "--data", folder.path, "--method", "lora", "--batch-size", "4", "--epochs", "1",
                                           "--out", temporaryDirectory("text-jsonl-run", for: self).path], timeout: 120)
        assertCleanFailure(outcome, mentions: "test.jsonl:2: label 'prime' does not occur in the training data")
    }
}
