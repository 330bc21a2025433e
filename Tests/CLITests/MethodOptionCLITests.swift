import Foundation
import XCTest

/// Method options on the command line: `peft methods NAME` lists them, `--option key=value` sets them.
final class MethodOptionCLITests: XCTestCase {
    func testMethodsNameListsOptionsWithKindsAndDefaults() throws {
        let outcome = try PeftProcess.run(["methods", "lora"], timeout: 30)
        assertSuccess(outcome)
        for line in ["r ", "int", "default 8", "lora_alpha", "target_modules", "default query,value", "use_dora", "peft type LORA"] {
            XCTAssertTrue(outcome.stdout.contains(line), "'\(line)' missing from:\n\(outcome.stdout)")
        }
        assertCleanFailure(try PeftProcess.run(["methods", "lorax"], timeout: 30), mentions: "unknown method 'lorax'")
    }

    func testOptionAssignmentsReachTheMethodOrAreRefused() throws {
        let out = temporaryDirectory("option", for: self)
        let refused = try PeftProcess.run(quickTrain(out: out.appendingPathComponent("bad"), epochs: 1, ["--option", "rank=2"]), timeout: 30)
        assertCleanFailure(refused, mentions: "method 'lora' has no option 'rank'; valid ones: r (int), lora_alpha (float)")
        let run = out.appendingPathComponent("good")
        assertSuccess(try PeftProcess.run(quickTrain(out: run, epochs: 1, ["--option", "r=2", "--option", "lora_alpha=6", "--option", "use_rslora=true"])))
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("adapter/adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(config["r"] as? Int, 2)
        XCTAssertEqual(config["lora_alpha"] as? Double, 6)
        XCTAssertEqual(config["use_rslora"] as? Bool, true)
    }
}

/// Adapters saved in the format of before the method descriptors (committed fixtures, see their README) still
/// load and give the same answers.
final class LegacyAdapterTests: XCTestCase {
    func testAdaptersSavedBeforeTheRedesignStillLoadAndPredictTheSame() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/legacy-adapters")
        for method in ["lora", "shira"] {
            let expected = try String(contentsOf: fixtures.appendingPathComponent("\(method).expected.txt"), encoding: .utf8)
            let outcome = try PeftProcess.run(["predict", "--adapter", fixtures.appendingPathComponent(method).path,
                                               "--resolution", "32", fixtures.appendingPathComponent("digit.idx").path], timeout: 60)
            assertSuccess(outcome)
            XCTAssertEqual(outcome.stdout, expected, method)
            // Without --resolution: these adapters do not record one, so the command asks for it.
            let bare = try PeftProcess.run(["predict", "--adapter", fixtures.appendingPathComponent(method).path,
                                            fixtures.appendingPathComponent("digit.idx").path], timeout: 60)
            assertCleanFailure(bare, mentions: "does not record the image resolution")
        }
    }
}
