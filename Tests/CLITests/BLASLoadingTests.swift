import Foundation
import XCTest

/// Loading OpenBLAS: a wrong library or too little address space is a clear error at start-up, never SIGILL
/// after the model has loaded, and never the endless allocation retry of OpenBLAS (RELIABILITY.md section 5).
final class BLASLoadingTests: XCTestCase {
    func testNamedLibraryThatCannotBeLoadedIsRefusedLoudly() throws {
        let out = temporaryDirectory("blas-missing", for: self)
        let outcome = try PeftProcess.run(quickTrain(out: out, epochs: 1), environment: ["PEFT_BLAS_LIBRARY": "/nonexistent/libopenblas.so"], timeout: 30)
        assertCleanFailure(outcome, mentions: "PEFT_BLAS_LIBRARY=/nonexistent/libopenblas.so cannot be loaded")
        XCTAssertEqual(outcome.status, 64, outcome.summary)
    }

    func testLibraryWithoutSGEMMIsRefused() throws {
        let out = temporaryDirectory("blas-wrong", for: self)
        let outcome = try PeftProcess.run(quickTrain(out: out, epochs: 1), environment: ["PEFT_BLAS_LIBRARY": "libz.so.1"], timeout: 30)
        assertCleanFailure(outcome, mentions: "has no cblas_sgemm symbol")
    }

    /// `bash -c "ulimit -v KB && exec peft ..."`, bounded in time.
    func underLimit(megabytes: Int, _ arguments: [String]) throws -> PeftProcess.Outcome {
        let command = "ulimit -v \(megabytes * 1024) && exec \"$PEFT\" " + arguments.map { "'\($0)'" }.joined(separator: " ")
        return try PeftProcess.run([], shell: command, timeout: 90)
    }

    func testSmallAddressSpaceLimitsEndWithAMessageOrARunNeverAHang() throws {
        let out = temporaryDirectory("blas-ulimit", for: self)
        // Too small for OpenBLAS's buffer: refused at start-up, before any model is loaded.
        let tiny = try underLimit(megabytes: 200, quickTrain(out: out.appendingPathComponent("200"), epochs: 1))
        assertCleanFailure(tiny, mentions: "the address-space limit (ulimit -v) is 200 MB")
        // Enough for the small model: the run completes (products stay on one thread, whose buffer is reserved).
        for megabytes in [400, 600] {
            let run = try underLimit(megabytes: megabytes, quickTrain(out: out.appendingPathComponent("\(megabytes)"), epochs: 1))
            assertSuccess(run)
            XCTAssertTrue(run.stdout.contains("test accuracy"), run.summary)
        }
        // Every limit between refusal and success: a run or a clean error, never a crash or a hang (a thread whose
        // stack no longer fits made libdispatch retry forever; a Swift runtime allocation failure aborts).
        for megabytes in stride(from: 300, to: 400, by: 10) {
            let run = try underLimit(megabytes: megabytes, quickTrain(out: out.appendingPathComponent("edge-\(megabytes)"), epochs: 1))
            XCTAssertFalse(run.timedOut || run.signalled, "\(megabytes) MB: \(run.summary)")
            XCTAssertTrue([0, 64, 71].contains(run.status), "\(megabytes) MB: \(run.summary)")
            if run.status != 0 { XCTAssertTrue(run.stderr.contains("ulimit -v"), "\(megabytes) MB: \(run.summary)") }
        }
        // Too small for this model and batch: a clear out-of-memory exit (71), not a crash or a hang.
        let big = try underLimit(megabytes: 700, ["train", "--model", "vit-b16-random", "--task", "digits-1k", "--method", "full",
                                                  "--resolution", "224", "--batch-size", "64", "--epochs", "1", "--max-steps", "1",
                                                  "--max-eval", "16", "--out", out.appendingPathComponent("700").path])
        XCTAssertFalse(big.timedOut || big.signalled, big.summary)
        XCTAssertEqual(big.status, 71, big.summary)
        XCTAssertTrue(big.stderr.contains("error: out of memory: could not allocate"), big.summary)
    }
}
