import Foundation
import XCTest

/// Run folders under hostile use: resuming with fewer epochs, lying checkpoints, two processes at once, a new run
/// into a finished run's folder (RELIABILITY.md section 5).
final class RunFolderTests: XCTestCase {
    func testResumeWithFewerEpochsThanCompletedIsRefused() throws {
        let out = temporaryDirectory("resume-fewer", for: self)
        assertSuccess(try PeftProcess.run(quickTrain(out: out, epochs: 2)))
        let log = try String(contentsOf: out.appendingPathComponent("log.jsonl"), encoding: .utf8)
        let resumed = try PeftProcess.run(quickTrain(out: out, epochs: 1, ["--resume"]), timeout: 30)
        assertCleanFailure(resumed, mentions: "already completed 2 epochs, more than the 1 asked for")
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("log.jsonl"), encoding: .utf8), log, "the log is untouched")
    }

    func testCheckpointWithImpossibleCountersIsRefused() throws {
        let out = temporaryDirectory("lying-checkpoint", for: self)
        assertSuccess(try PeftProcess.run(quickTrain(out: out, epochs: 1)))
        let checkpoint = out.appendingPathComponent("checkpoint.safetensors")
        let original = try Data(contentsOf: checkpoint)
        let lies: [(String, Any, String)] = [
            ("completedEpochs", 1_000_000_000, "completedEpochs is 1000000000"),
            ("bestValidationAccuracy", 2.0, "bestValidationAccuracy is 2.0"),
            ("bestEpoch", 7, "bestEpoch is 7"),
        ]
        for (key, value, message) in lies {
            try original.write(to: checkpoint)
            try editTrainingState(checkpoint) { $0[key] = value }
            let resumed = try PeftProcess.run(quickTrain(out: out, epochs: 3, ["--resume"]), timeout: 30)
            assertCleanFailure(resumed, mentions: message)
        }
    }

    func testResumeRefusalNamesTheChangedSetting() throws {
        let out = temporaryDirectory("resume-diff", for: self)
        assertSuccess(try PeftProcess.run(quickTrain(out: out, epochs: 1)))
        let resumed = try PeftProcess.run(quickTrain(out: out, epochs: 2, ["--resume", "--weight-decay", "0.5"]), timeout: 30)
        assertCleanFailure(resumed, mentions: "weightDecay: 0.05 in the checkpoint, 0.5 now")
        XCTAssertFalse(resumed.stderr.contains("task digits-1k"), "unchanged settings are not listed: \(resumed.stderr)")
    }

    func testResumeWithoutACheckpointIsRefused() throws {
        let out = temporaryDirectory("resume-none", for: self)
        let resumed = try PeftProcess.run(quickTrain(out: out, epochs: 1, ["--resume"]), timeout: 30)
        assertCleanFailure(resumed, mentions: "no checkpoint.safetensors to resume from")
    }

    func testSecondProcessOnTheSameFolderIsRefusedNamingTheFirst() throws {
        let out = temporaryDirectory("lock", for: self)
        // The first run holds the lock for a few seconds (many steps); the second starts meanwhile.
        let first = Process()
        first.executableURL = PeftProcess.binary
        first.arguments = ["train", "--model", "vit-s16-random", "--task", "digits-1k", "--method", "lora", "--rank", "4",
                           "--resolution", "32", "--batch-size", "16", "--epochs", "4", "--max-eval", "32", "--out", out.path]
        first.standardError = FileHandle.nullDevice
        first.standardOutput = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { first.terminate() }; first.waitUntilExit() }
        let lock = out.appendingPathComponent(".lock")
        let deadline = Date().addingTimeInterval(20)
        while (try? String(contentsOf: lock, encoding: .utf8))?.contains("\(first.processIdentifier)") != true && Date() < deadline {
            usleep(20_000)
        }
        let second = try PeftProcess.run(quickTrain(out: out, epochs: 1, ["--overwrite"]), timeout: 30)
        assertCleanFailure(second, mentions: "is in use by another peft process (pid \(first.processIdentifier))")
        first.waitUntilExit()
        XCTAssertEqual(first.terminationStatus, 0, "the first run finishes undisturbed")
        let log = try String(contentsOf: out.appendingPathComponent("log.jsonl"), encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 4, "the log holds the first run's 4 epochs only")
    }

    func testNewRunIntoAFinishedRunsFolderIsRefusedAndDeletesNothing() throws {
        let out = temporaryDirectory("finished", for: self)
        assertSuccess(try PeftProcess.run(quickTrain(out: out, epochs: 1)))
        let files = ["log.jsonl", "result.json", "checkpoint.safetensors", "best.safetensors", "adapter/adapter_config.json"]
        let before = try files.map { try Data(contentsOf: out.appendingPathComponent($0)) }
        let again = try PeftProcess.run(quickTrain(out: out, epochs: 1, ["--weight-decay", "0.5"]), timeout: 30)
        assertCleanFailure(again, mentions: "already holds a run")
        XCTAssertEqual(try files.map { try Data(contentsOf: out.appendingPathComponent($0)) }, before)
        // --overwrite replaces it on purpose.
        assertSuccess(try PeftProcess.run(quickTrain(out: out, epochs: 1, ["--weight-decay", "0.5", "--overwrite"])))
        let result = try String(contentsOf: out.appendingPathComponent("result.json"), encoding: .utf8)
        XCTAssertTrue(result.contains("0.5"), result)
    }

    func testOutputThatIsAFileIsRefusedClearly() throws {
        let folder = temporaryDirectory("out-file", for: self)
        let file = folder.appendingPathComponent("taken")
        try Data("x".utf8).write(to: file)
        let outcome = try PeftProcess.run(quickTrain(out: file, epochs: 1), timeout: 30)
        assertCleanFailure(outcome, mentions: "exists and is not a directory")
        XCTAssertFalse(outcome.stderr.contains("NSCocoaErrorDomain"), outcome.stderr)
    }

    func testAdapterRecordsItsResolutionSoPredictNeedsNoRunFolder() throws {
        let out = temporaryDirectory("resolution", for: self)
        assertSuccess(try PeftProcess.run(quickTrain(out: out, epochs: 1)))
        let image = out.appendingPathComponent("one.idx")
        try Data([0, 0, 8, 2, 0, 0, 0, 28, 0, 0, 0, 28] + [UInt8](repeating: 40, count: 784)).write(to: image)
        let withRun = try PeftProcess.run(["predict", "--adapter", out.appendingPathComponent("adapter").path, image.path])
        assertSuccess(withRun)
        // The adapter alone, away from result.json: same answer (it records 32 px).
        let alone = temporaryDirectory("adapter-alone", for: self).appendingPathComponent("adapter")
        try FileManager.default.copyItem(at: out.appendingPathComponent("adapter"), to: alone)
        let moved = try PeftProcess.run(["predict", "--adapter", alone.path, image.path])
        assertSuccess(moved)
        // Without result.json the task (and so the class names) is unknown: compare the probabilities.
        func probabilities(_ text: String) -> String { text.replacingOccurrences(of: "class ", with: "") }
        XCTAssertEqual(probabilities(moved.stdout), probabilities(withRun.stdout))
        // An adapter that records no resolution (saved before it was recorded) needs --resolution.
        try editJSON(alone.appendingPathComponent("adapter_config.json")) { config in
            var details = config["swiftpeft"] as! [String: Any]
            details["resolution"] = nil
            config["swiftpeft"] = details
        }
        assertCleanFailure(try PeftProcess.run(["predict", "--adapter", alone.path, image.path]),
                           mentions: "does not record the image resolution")
        let given = try PeftProcess.run(["predict", "--adapter", alone.path, "--resolution", "32", image.path])
        assertSuccess(given)
        XCTAssertEqual(probabilities(given.stdout), probabilities(withRun.stdout))
    }
}
