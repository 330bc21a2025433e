import Checkpoints
import Engine
import Foundation
import XCTest

/// `mpirun -n 2 peft ...` on this machine (Open MPI, RELIABILITY.md and README "Several processes"): the same
/// weights as one process, resume across a change of rank count, a killed or stopped rank failing the job fast with
/// its rank named, and the suite dealt out over the ranks. Skipped without mpirun, unless PEFT_REQUIRE_MPI=1
/// (scripts/test.sh sets it, since setup.sh installs Open MPI).
final class DataParallelTests: XCTestCase {
    static let mpirun: String? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }

    override func setUpWithError() throws {
        if Self.mpirun == nil {
            if ProcessInfo.processInfo.environment["PEFT_REQUIRE_MPI"] == "1" {
                XCTFail("mpirun is not installed, but PEFT_REQUIRE_MPI=1 (run scripts/setup.sh)")
            }
            throw XCTSkip("mpirun is not installed (apt install openmpi-bin)")
        }
    }

    /// `mpirun -n ranks peft arguments...`, as a shell line with the arguments quoted.
    func launch(_ ranks: Int, _ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 120) throws -> PeftProcess.Outcome {
        try PeftProcess.run([], environment: environment, shell: mpirunLine(ranks, arguments), timeout: timeout)
    }

    func mpirunLine(_ ranks: Int, _ arguments: [String]) -> String {
        let quoted = arguments.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        return "\(Self.mpirun!) --oversubscribe --allow-run-as-root -n \(ranks) \"$PEFT\" \(quoted)"
    }

    /// A short run on the random ViT-S/16 at 32 px: 3 steps of batch 16 per epoch.
    func run(_ method: String, out: URL, epochs: Int = 1, batch: Int = 16, _ extra: [String] = []) -> [String] {
        ["train", "--model", "vit-s16-random", "--task", "digits-1k", "--method", method, "--resolution", "32",
         "--batch-size", "\(batch)", "--epochs", "\(epochs)", "--max-steps", "3", "--max-eval", "48", "--out", out.path] + extra
    }

    /// The largest absolute difference between same-named tensors with `prefix` (and the tensor it is in).
    func largestDifference(_ a: URL, _ b: URL, prefix: String) throws -> (value: Float, name: String) {
        let first = try SafeTensorsFile(url: a.appendingPathComponent("checkpoint.safetensors"))
        let second = try SafeTensorsFile(url: b.appendingPathComponent("checkpoint.safetensors"))
        var worst: (Float, String) = (0, "")
        let names = first.names.filter { $0.hasPrefix(prefix) }
        XCTAssertFalse(names.isEmpty, "no tensors named \(prefix)* in \(a.path)")
        for name in names {
            let x = try first.tensor(name), y = try second.tensor(name)
            XCTAssertEqual(x.shape, y.shape, name)
            for i in 0..<min(x.count, y.count) {
                let d = abs(x.data[i] - y.data[i])
                if !(d <= worst.0) { worst = (d, name) }
            }
        }
        return worst
    }

    func testTwoRanksReachTheWeightsOfOneProcessForLoRAAndSHiRA() throws {
        // linear: the head alone trains on features the ranks compute together (FeatureCache.shared).
        for method in ["lora", "shira", "linear"] {
            let one = temporaryDirectory("dp-one-\(method)", for: self), two = temporaryDirectory("dp-two-\(method)", for: self)
            assertSuccess(try PeftProcess.run(run(method, out: one)))
            let outcome = try launch(2, run(method, out: two))
            assertSuccess(outcome)
            XCTAssertTrue(outcome.stderr.contains("on 2 ranks"), outcome.stderr)
            XCTAssertTrue(outcome.stderr.contains("gradient allreduce:"), outcome.stderr)
            XCTAssertEqual(outcome.stdout.components(separatedBy: "test accuracy").count, 2, "rank 0 alone prints the result: \(outcome.stdout)")
            let weights = try largestDifference(one, two, prefix: "param.")
            let moments = try largestDifference(one, two, prefix: "optimizer.")
            print("\(method): 2 ranks vs 1 process after 3 steps: max |weight difference| \(weights.value) (\(weights.name)), max |AdamW moment difference| \(moments.value)")
            // AdamW's first steps move every weight by about the learning rate (1e-3 to 1e-2 here) whatever the
            // gradient's size, so rounding in a tiny gradient can show as up to a few 1e-5; a wrong shard moves
            // weights by a few 1e-3 (the control below).
            XCTAssertLessThan(weights.value, 5e-4, "\(method): \(weights.name)")
            XCTAssertLessThan(moments.value, 1e-5, method)
            if method == "lora" {
                let half = temporaryDirectory("dp-half", for: self)
                assertSuccess(try PeftProcess.run(run(method, out: half, batch: 8)))
                let control = try largestDifference(one, half, prefix: "param.")
                XCTAssertGreaterThan(control.value, 10 * weights.value, "the comparison can tell a different batch apart")
            }
        }
    }

    func testResumeWorksAcrossAChangeOfRankCount() throws {
        // The same chain of runs (1 epoch, resumed to 2, resumed to 3: each extension re-plans the learning-rate
        // schedule) in one process and with the rank count changing at every resume.
        let straight = temporaryDirectory("dp-straight", for: self), changed = temporaryDirectory("dp-changed", for: self)
        for epochs in 1...3 {
            assertSuccess(try PeftProcess.run(run("shira", out: straight, epochs: epochs, epochs > 1 ? ["--resume"] : [])))
        }
        assertSuccess(try launch(2, run("shira", out: changed, epochs: 1)))
        assertSuccess(try PeftProcess.run(run("shira", out: changed, epochs: 2, ["--resume"])))
        assertSuccess(try launch(2, run("shira", out: changed, epochs: 3, ["--resume"])))
        let weights = try largestDifference(straight, changed, prefix: "param.")
        print("shira: 2 ranks, 1 process, 2 ranks (one epoch each, resumed) vs the same in one process: max |weight difference| \(weights.value)")
        XCTAssertLessThan(weights.value, 5e-4, weights.name)
        let log = try String(contentsOf: changed.appendingPathComponent("log.jsonl"), encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 3, "one log line per epoch: \(log)")
    }

    func testARankWithOtherSettingsIsRefusedByName() throws {
        let out = temporaryDirectory("dp-mismatch", for: self)
        let first = run("lora", out: out), second = run("lora", out: out, ["--weight-decay", "0.5"])
        let quote: ([String]) -> String = { $0.map { "'\($0)'" }.joined(separator: " ") }
        let line = "\(Self.mpirun!) --oversubscribe --allow-run-as-root -n 1 \"$PEFT\" \(quote(first)) : -n 1 \"$PEFT\" \(quote(second))"
        let outcome = try PeftProcess.run([], shell: line, timeout: 120)
        XCTAssertFalse(outcome.timedOut, outcome.summary)
        XCTAssertNotEqual(outcome.status, 0, outcome.summary)
        XCTAssertTrue(outcome.stderr.contains("rank 1 was started with other settings than rank 0"), outcome.summary)
        XCTAssertTrue(outcome.stderr.contains("weightDecay"), outcome.summary)
    }

    /// Starts a 2-rank run of many epochs in the background, waits for its first checkpoint, then does `fault` to
    /// rank 1 (by pid, from the --verbose start-up line) and returns the job's exit status, its log and the seconds
    /// from the fault to the end.
    func faultDuringRun(_ fault: Int32, out: URL, environment: [String: String] = [:]) throws -> (status: Int32, log: String, seconds: Double) {
        let logURL = out.appendingPathComponent("mpirun.log")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        env["PEFT"] = PeftProcess.binary.path
        process.environment = env
        let job = temporaryDirectory("dp-fault-run", for: self)
        process.arguments = ["-c", mpirunLine(2, run("lora", out: job, epochs: 200, ["--verbose"])) + " > '\(logURL.path)' 2>&1"]
        try process.run()
        var rankOne: Int32?
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            if let rankOne { kill(rankOne, SIGKILL) }
        }
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline, !FileManager.default.fileExists(atPath: job.appendingPathComponent("checkpoint.safetensors").path) {
            usleep(50_000)
        }
        let early = (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
        guard let line = early.split(separator: "\n").first(where: { $0.hasPrefix("rank 1 of 2") }),
              let pid = Int32(line.split(separator: " ").last ?? "") else {
            XCTFail("no checkpoint or no 'rank 1 of 2 ... pid N' line within 90 s: \(early)")
            return (0, early, 0)
        }
        rankOne = pid
        let faulted = Date()
        kill(pid, fault)
        while process.isRunning, Date().timeIntervalSince(faulted) < 60 { usleep(50_000) }
        let seconds = Date().timeIntervalSince(faulted)
        XCTAssertFalse(process.isRunning, "the job still runs 60 s after the fault")
        process.waitUntilExit()
        // The checkpoint on disk is whole: one process resumes from it for one more epoch.
        let checkpoint = try SafeTensorsFile(url: job.appendingPathComponent("checkpoint.safetensors"))
        let state = try XCTUnwrap(checkpoint.metadata["peft_training_state"])
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(state.utf8)) as? [String: Any])
        let completed = try XCTUnwrap(object["completedEpochs"] as? Int)
        assertSuccess(try PeftProcess.run(run("lora", out: job, epochs: completed + 1, ["--resume"])))
        return (process.terminationStatus, (try? String(contentsOf: logURL, encoding: .utf8)) ?? "", seconds)
    }

    func testAKilledRankFailsTheJobFastNamingIt() throws {
        let out = temporaryDirectory("dp-kill", for: self)
        let result = try faultDuringRun(SIGKILL, out: out)
        print("killed rank 1: the job ended \(String(format: "%.1f", result.seconds)) s later")
        XCTAssertNotEqual(result.status, 0, result.log)
        XCTAssertLessThan(result.seconds, 30, result.log)
        XCTAssertTrue(result.log.contains("rank 1"), result.log)
    }

    func testAStoppedRankIsNamedAndTheJobAborted() throws {
        let out = temporaryDirectory("dp-stop", for: self)
        let result = try faultDuringRun(SIGSTOP, out: out, environment: ["PEFT_MPI_TIMEOUT": "5"])
        print("stopped rank 1: the job ended \(String(format: "%.1f", result.seconds)) s later")
        XCTAssertNotEqual(result.status, 0, result.log)
        XCTAssertLessThan(result.seconds, 40, result.log)
        XCTAssertTrue(result.log.contains("rank 1 never reached it"), result.log)
    }

    func testTheSuiteDealsItsRunsOutOverTheRanks() throws {
        let results = temporaryDirectory("dp-suite", for: self)
        let arguments = ["bench", "suite", "--model", "vit-s16-random", "--tasks", "digits-1k", "--methods", "linear", "bitfit",
                         "--seeds", "2", "--lr-grid", "1", "--epochs", "1", "--batch-size", "16", "--resolution", "32",
                         "--max-eval", "48", "--results", results.path, "--table", ""]
        let outcome = try launch(2, arguments, timeout: 300)
        assertSuccess(outcome)
        XCTAssertTrue(outcome.stderr.contains("suite: rank 0:") && outcome.stderr.contains("suite: rank 1:"), outcome.stderr)
        let records = FileManager.default.enumerator(atPath: results.path)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".json") } ?? []
        XCTAssertEqual(records.count, 4, "2 methods x 2 seeds: \(records)")
        XCTAssertEqual(outcome.stdout.components(separatedBy: "Best per task").count, 2, "rank 0 alone prints the table: \(outcome.stdout)")
        // Run again: every record exists, so nothing trains.
        let again = try launch(2, arguments, timeout: 120)
        assertSuccess(again)
        XCTAssertFalse(again.stderr.contains("suite: rank 0: digits-1k"), again.stderr)
    }
}

/// Started as if by mpirun but without a usable MPI library: a clear error, not a crash (needs no mpirun).
final class MPILoadingTests: XCTestCase {
    func testAMissingMPILibraryIsNamed() throws {
        let out = temporaryDirectory("mpi-missing", for: self)
        let outcome = try PeftProcess.run(quickTrain(out: out), environment: [
            "OMPI_COMM_WORLD_SIZE": "2", "PEFT_MPI_LIBRARY": "/nonexistent/libmpi.so.40"], timeout: 30)
        assertCleanFailure(outcome, mentions: "cannot open the MPI library /nonexistent/libmpi.so.40")
        XCTAssertTrue(outcome.stderr.contains("apt install openmpi-bin"), outcome.stderr)
    }

    func testALibraryThatIsNotOpenMPIIsRefused() throws {
        let out = temporaryDirectory("mpi-wrong", for: self)
        let outcome = try PeftProcess.run(quickTrain(out: out), environment: [
            "OMPI_COMM_WORLD_SIZE": "2", "PEFT_MPI_LIBRARY": "libz.so.1"], timeout: 30)
        assertCleanFailure(outcome, mentions: "has no symbol 'MPI_Init'")
    }
}
