import Foundation
import XCTest

/// Every numeric option of `peft train`, `predict` and `eval-adapter` with 0, negative, NaN, infinite and huge
/// values: each run must end by itself within the time bound with exit 0 (a sensible run) or a clean error
/// (exit 1 or 64 with a message), never a signal, a hang or a silent wrong run.
final class NumericOptionTableTests: XCTestCase {
    static let values = ["0", "-1", "nan", "inf", "-inf", "1e30", "4611686018427387904"]

    /// Option (a flag, or a method option key for `--option key=value`), and the method it belongs to.
    static let trainOptions: [(String, String)] = [
        ("--rank", "lora"), ("--alpha", "lora"), ("lora_dropout", "lora"), ("adapter_width", "adapter"),
        ("adapter_scale", "adapter"), ("num_virtual_tokens", "vpt"), ("--density", "shira"), ("mask_part", "shira"),
        ("r", "shira"), ("depth", "neat"), ("scaling", "neat"), ("stage_fraction", "ttc"),
        ("scoring_batches", "ttc"), ("channels", "ttc"), ("prune_fraction", "pear"), ("r", "pear"), ("--epochs", "lora"), ("--batch-size", "lora"),
        ("--lr", "lora"), ("--head-lr", "lora"), ("--weight-decay", "lora"), ("--warmup-epochs", "lora"),
        ("--label-smoothing", "lora"), ("--clip-norm", "lora"), ("--resolution", "lora"), ("--seed", "lora"),
        ("--eval-every", "lora"), ("--max-steps", "lora"), ("--max-eval", "lora"), ("--max-skips", "lora"),
    ]

    func check(_ outcome: PeftProcess.Outcome, _ label: String) {
        XCTAssertFalse(outcome.timedOut, "\(label): hung")
        XCTAssertFalse(outcome.signalled, "\(label): crashed: \(outcome.summary)")
        XCTAssertTrue([0, 1, 64].contains(outcome.status), "\(label): \(outcome.summary)")
        if outcome.status != 0 {
            XCTAssertTrue(outcome.stderr.contains("Error:") || outcome.stderr.contains("error:"), "\(label): no error message: \(outcome.summary)")
        } else {
            XCTAssertTrue(outcome.stdout.contains("test accuracy"), "\(label): exit 0 without a result: \(outcome.summary)")
            XCTAssertFalse(outcome.stdout.contains("nan"), "\(label): exit 0 with a NaN result: \(outcome.summary)")
        }
    }

    func testEveryNumericTrainOption() throws {
        let folder = temporaryDirectory("numeric", for: self)
        var accepted: [String] = []
        for (option, method) in Self.trainOptions {
            for value in Self.values {
                let out = folder.appendingPathComponent("\(option)=\(value)")
                var arguments = quickTrain(out: out, method: method, epochs: 1)
                // Later occurrences win, so the option under test replaces the quick run's own value.
                arguments += option.hasPrefix("--") ? [option, value] : ["--option", "\(option)=\(value)"]
                let outcome = try PeftProcess.run(arguments, timeout: 60)
                check(outcome, "train \(method) \(option) \(value)")
                if outcome.status == 0 { accepted.append("\(option) \(value)") }
            }
        }
        // Sanity: the table exercised real runs too, not only refusals.
        XCTAssertGreaterThan(accepted.count, 10, "accepted: \(accepted)")
    }

    func testEveryNumericPredictAndEvalOption() throws {
        let folder = temporaryDirectory("numeric-predict", for: self)
        let run = folder.appendingPathComponent("run")
        assertSuccess(try PeftProcess.run(quickTrain(out: run, epochs: 1)))
        let image = folder.appendingPathComponent("one.idx")
        try Data([0, 0, 8, 2, 0, 0, 0, 28, 0, 0, 0, 28] + [UInt8](repeating: 40, count: 784)).write(to: image)
        let adapter = run.appendingPathComponent("adapter").path
        for value in Self.values {
            for option in ["--top-k", "--resolution"] {
                let outcome = try PeftProcess.run(["predict", "--adapter", adapter, option, value, image.path], timeout: 60)
                XCTAssertFalse(outcome.timedOut || outcome.signalled, "predict \(option) \(value): \(outcome.summary)")
                XCTAssertTrue([0, 1, 64].contains(outcome.status), "predict \(option) \(value): \(outcome.summary)")
                if outcome.status == 0 { XCTAssertTrue(outcome.stdout.contains("one.idx:"), outcome.summary) }
            }
            for option in ["--resolution", "--max-eval"] {
                let outcome = try PeftProcess.run(["eval-adapter", adapter, "--task", "digits-1k", option, value], timeout: 60)
                XCTAssertFalse(outcome.timedOut || outcome.signalled, "eval-adapter \(option) \(value): \(outcome.summary)")
                XCTAssertTrue([0, 1, 64].contains(outcome.status), "eval-adapter \(option) \(value): \(outcome.summary)")
                if outcome.status == 0 { XCTAssertFalse(outcome.stdout.contains("nan") || outcome.stdout.contains("0.00%"), outcome.summary) }
            }
        }
    }
}
