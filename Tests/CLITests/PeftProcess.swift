import Foundation
import XCTest

/// Runs the built `peft` executable as a real subprocess, with a time bound, and collects what it printed.
struct PeftProcess {
    struct Outcome {
        /// Exit status, or the signal number when `signalled`.
        var status: Int32
        var signalled: Bool
        var timedOut: Bool
        var stdout: String
        var stderr: String
        var summary: String { "status \(status)\(signalled ? " (signal)" : "")\(timedOut ? " (timed out)" : ""); stderr: \(stderr.suffix(600))" }
    }

    /// The `peft` binary next to the test bundle (`swift test` builds it), or `PEFT_BIN`.
    static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["PEFT_BIN"], !path.isEmpty { return URL(fileURLWithPath: path) }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for _ in 0..<4 {
            directory.deleteLastPathComponent()
            let candidate = directory.appendingPathComponent("peft")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return URL(fileURLWithPath: ".build/release/peft")
    }

    /// Runs `peft arguments...` (or, with `shell`, `bash -c shell` with `$PEFT` set to the binary), killing it
    /// after `timeout` seconds.
    static func run(_ arguments: [String], environment: [String: String] = [:], shell: String? = nil,
                    timeout: TimeInterval = 90, file: StaticString = #filePath, line: UInt = #line) throws -> Outcome {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: binary.path),
                      "no peft binary at \(binary.path) (build it, or set PEFT_BIN)", file: file, line: line)
        let process = Process()
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        env["PEFT"] = binary.path
        process.environment = env
        if let shell {
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", shell]
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        final class Collected: @unchecked Sendable { var data = Data() }  // each written by one reader, read after wait()
        let stdoutBox = Collected(), stderrBox = Collected()
        let readers = DispatchGroup()
        readers.enter()
        DispatchQueue.global().async { stdoutBox.data = out.fileHandleForReading.readDataToEndOfFile(); readers.leave() }
        readers.enter()
        DispatchQueue.global().async { stderrBox.data = err.fileHandleForReading.readDataToEndOfFile(); readers.leave() }
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning {
            if Date() > deadline {
                timedOut = true
                kill(-process.processIdentifier, SIGKILL)
                process.terminate()
                kill(process.processIdentifier, SIGKILL)
                break
            }
            usleep(20_000)
        }
        process.waitUntilExit()
        readers.wait()
        return Outcome(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                       timedOut: timedOut, stdout: String(decoding: stdoutBox.data, as: UTF8.self),
                       stderr: String(decoding: stderrBox.data, as: UTF8.self))
    }
}

/// A fresh directory removed when the test ends.
func temporaryDirectory(_ prefix: String, for testCase: XCTestCase) -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// A quick training run on the random ViT-S/16 at 32 px (under a second): the arguments, with `extra` appended.
func quickTrain(out: URL, method: String = "lora", epochs: Int = 1, _ extra: [String] = []) -> [String] {
    ["train", "--model", "vit-s16-random", "--task", "digits-1k", "--method", method] + (method == "lora" ? ["--rank", "4"] : []) + [
     "--resolution", "32", "--batch-size", "16", "--epochs", "\(epochs)", "--max-steps", "2", "--max-eval", "32",
     "--out", out.path] + extra
}

/// Asserts the run ended by itself with a non-zero exit (no signal, no time-out) and an error containing `text`.
func assertCleanFailure(_ outcome: PeftProcess.Outcome, mentions text: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(outcome.signalled || outcome.timedOut, outcome.summary, file: file, line: line)
    XCTAssertNotEqual(outcome.status, 0, outcome.summary, file: file, line: line)
    XCTAssertTrue(outcome.stderr.contains(text), "expected '\(text)' in: \(outcome.summary)", file: file, line: line)
}

/// Asserts the run succeeded.
func assertSuccess(_ outcome: PeftProcess.Outcome, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(outcome.signalled || outcome.timedOut, outcome.summary, file: file, line: line)
    XCTAssertEqual(outcome.status, 0, outcome.summary, file: file, line: line)
}
