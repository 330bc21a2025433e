import XCTest
import Checkpoints
import Training

/// What the trainer does to its output folder: leftovers of killed writes, the order of the final files, the
/// log after a resume, and the run lock (RELIABILITY.md section 5).
final class RunFolderSafetyTests: XCTestCase {
    func makeTrainer(epochs: Int = 2, out: URL?) throws -> Trainer {
        try TinyTrainerFixture.makeTrainer(method: "lora", epochs: epochs, learningRate: 3e-3, horizontalFlip: false, out: out)
    }

    func temporaryDirectory() -> URL { TinyTrainerFixture.temporaryDirectory("peft-run-folder", for: self) }

    /// A run folder whose run of `epochs` stopped (as if killed) after `completed` epochs.
    func interruptedRun(epochs: Int, completed: Int) throws -> URL {
        let out = temporaryDirectory()
        let first = try makeTrainer(epochs: epochs, out: out)
        first.stopAfterEpochs = completed
        XCTAssertThrowsError(try first.run())
        return out
    }

    func testLeftoversOfKilledWritesAreRemovedAlsoInsideTheAdapterFolder() throws {
        let out = try interruptedRun(epochs: 2, completed: 1)
        // What a process killed while writing adapter/ (pid 999999 is never ours) leaves behind.
        let adapter = out.appendingPathComponent("adapter")
        try FileManager.default.createDirectory(at: adapter, withIntermediateDirectories: true)
        try Data("partial".utf8).write(to: adapter.appendingPathComponent(".adapter_model.safetensors.tmp-999999-1"))
        try FileManager.default.createDirectory(at: out.appendingPathComponent(".adapter.tmp-999999-2"), withIntermediateDirectories: true)
        try Data("partial".utf8).write(to: out.appendingPathComponent(".checkpoint.safetensors.tmp-999999-3"))
        _ = try makeTrainer(epochs: 2, out: out).run(resume: true)
        for folder in [out, adapter] {
            let left = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }
            XCTAssertEqual(left, [], "temporary files left in \(folder.lastPathComponent)")
        }
        XCTAssertNoThrow(try AdapterFiles.configuration(in: adapter))
    }

    func testResultIsWrittenLastSoAFailedFinishIsNotAFinishedRun() throws {
        let out = temporaryDirectory()
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        // A plain file where adapter/ must go: writing the adapter fails at the very end of the run.
        try Data("in the way".utf8).write(to: out.appendingPathComponent("adapter"))
        XCTAssertThrowsError(try makeTrainer(epochs: 1, out: out).run(overwrite: true)) { error in
            XCTAssertTrue("\(error)".contains("adapter"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("result.json").path),
                       "result.json must not claim a finished run whose adapter was never written")
    }

    func testLogMatchesTheCheckpointAfterAResume() throws {
        let out = try interruptedRun(epochs: 3, completed: 2)
        // As if killed between the checkpoint and the log: the log lost its last line.
        let log = out.appendingPathComponent("log.jsonl")
        let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        try (lines[0] + "\n").write(to: log, atomically: true, encoding: .utf8)
        _ = try makeTrainer(epochs: 3, out: out).run(resume: true)
        let after = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(after.count, 3, "one line per epoch, rebuilt from the checkpoint's history")
        XCTAssertEqual(after[1], lines[1])
    }

    func testRunLockRefusesASecondTrainerInTheSameProcessFolder() throws {
        let out = temporaryDirectory()
        let holder = try makeTrainer(epochs: 1, out: out)
        var inner: Error?
        // The first trainer's log callback runs while it holds the lock: start the second one from there.
        holder.log = { [self] _ in
            guard inner == nil, let second = try? makeTrainer(epochs: 1, out: out) else { return }
            do { _ = try second.run(overwrite: true) } catch { inner = error }
        }
        _ = try holder.run()
        let message = inner.map { "\($0)" } ?? "no error"
        XCTAssertTrue(message.contains("is in use by another peft process (pid \(getpid()))"), message)
    }
}
