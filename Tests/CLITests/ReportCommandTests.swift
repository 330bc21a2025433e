import Foundation
import XCTest

/// `peft report` on suite records: the cell table, runs of several budgets refused until one is chosen, the plot
/// written (and nothing written when the run fails).
final class ReportCommandTests: XCTestCase {
    func writeRecord(_ directory: URL, method: String, epochs: Int, rate: Double, seed: Int, validation: Double, test: Double) throws {
        let folder = directory.appendingPathComponent("fmnist-1k").appendingPathComponent(method.replacingOccurrences(of: ":", with: "+"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let json = """
        {"task": "fmnist-1k", "method": "\(method)", "seed": \(seed), "learningRateMultiplier": 1, "learningRate": \(rate),
         "budget": {"epochs": \(epochs), "batchSize": 32, "resolution": 112}, "bestValidationAccuracy": \(validation),
         "bestEpoch": 1, "testAccuracy": \(test), "trainableParameters": 155146, "secondsPerStep": 1.5,
         "totalSeconds": 300, "finished": "2026-12-03T00:00:00Z"}
        """
        try Data(json.utf8).write(to: folder.appendingPathComponent("e\(epochs)-rate\(rate)-s\(seed).json"))
    }

    func testReportTabulatesAndPlotsSuiteRecords() throws {
        let records = temporaryDirectory("report-records", for: self)
        try writeRecord(records, method: "lora", epochs: 10, rate: 0.001, seed: 0, validation: 0.8, test: 0.82)
        try writeRecord(records, method: "lora", epochs: 10, rate: 0.001, seed: 1, validation: 0.8, test: 0.84)
        try writeRecord(records, method: "lora:r=4:lora_alpha=4", epochs: 10, rate: 0.001, seed: 0, validation: 0.7, test: 0.80)
        try writeRecord(records, method: "lora", epochs: 3, rate: 0.001, seed: 0, validation: 0.6, test: 0.7)
        let plot = records.appendingPathComponent("plots/fair.svg")

        let mixed = try PeftProcess.run(["report", "--plot", plot.path, records.path], timeout: 30)
        assertCleanFailure(mixed, mentions: "--budget")
        XCTAssertFalse(FileManager.default.fileExists(atPath: plot.path), "no plot from a refused report")

        let outcome = try PeftProcess.run(["report", "--budget", "e10-b32-r112", "--plot", plot.path, records.path], timeout: 30)
        assertSuccess(outcome)
        XCTAssertTrue(outcome.stdout.contains("| fmnist-1k | lora | 0.001 | 2 | 83.0 ± 1.4 | 155146 |"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("| fmnist-1k | lora:r=4:lora_alpha=4 | 0.001 | 1 | 80.0 | 155146 |"), outcome.stdout)
        let svg = try String(contentsOf: plot, encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg"), String(svg.prefix(200)))
        XCTAssertEqual(svg.components(separatedBy: "class=\"point\"").count - 1, 2, "one point per cell")

        let filtered = try PeftProcess.run(["report", "--budget", "e10-b32-r112", "--methods", "lora", records.path], timeout: 30)
        assertSuccess(filtered)
        XCTAssertFalse(filtered.stdout.contains("lora:r=4"), filtered.stdout)
        assertCleanFailure(try PeftProcess.run(["report", "--budget", "e7-b32-r112", records.path], timeout: 30), mentions: "e10-b32-r112")
    }
}

/// `peft train --transformers-names`: the saved adapter's top-level targets under transformers 5's names by
/// default (what peft matches on current transformers), under transformers 4's when asked; a bad value refused.
final class AdapterNamingCLITests: XCTestCase {
    func targets(_ out: URL) throws -> [String] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("adapter/adapter_config.json"))) as? [String: Any]
        return try XCTUnwrap(json?["target_modules"] as? [String])
    }

    func testTheSavedAdapterUsesTheChosenTransformersNames() throws {
        let five = temporaryDirectory("names-5", for: self), four = temporaryDirectory("names-4", for: self)
        assertSuccess(try PeftProcess.run(quickTrain(out: five), timeout: 300))
        assertSuccess(try PeftProcess.run(quickTrain(out: four, ["--transformers-names", "4"]), timeout: 300))
        XCTAssertEqual(Set(try targets(five)), ["q_proj", "v_proj"])
        XCTAssertEqual(Set(try targets(four)), ["query", "value"])
        assertCleanFailure(try PeftProcess.run(quickTrain(out: temporaryDirectory("names-x", for: self), ["--transformers-names", "6"]), timeout: 60),
                           mentions: "--transformers-names must be 5 or 4")
    }
}
