import ArgumentParser
import Checkpoints
import Foundation
import Training

/// Summarises finished runs (their result.json) as a Markdown table.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Print a Markdown table of finished runs (reads each DIR/result.json).")
    @Argument(help: "Run directories.") var runs: [String]

    func run() throws {
        print("| model | task | method | epochs | lr | test acc | best val acc (epoch) | trainable params | s/step | images/s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for directory in runs {
            let url = URL(fileURLWithPath: directory).appendingPathComponent("result.json")
            guard RegularFile.exists(url.path) else {
                printError("skipping \(directory): no result.json (not a finished run)")
                continue
            }
            let result = try decodeJSONFile(TrainingResult.self, from: url, what: "result file")
            for (name, value) in [("testAccuracy", result.testAccuracy), ("bestValidationAccuracy", result.bestValidationAccuracy)]
                where !(value >= 0 && value <= 1) {
                throw ValidationError("\(url.path): '\(name)' is \(value); an accuracy is in [0, 1]")
            }
            let c = result.configuration
            print(String(format: "| %@ | %@ | %@ | %d | %g | %.2f%% | %.2f%% (%d) | %d | %.3f | %.1f |", c.model, c.task,
                         c.method, c.epochs, c.resolvedLearningRate, 100 * result.testAccuracy,
                         100 * result.bestValidationAccuracy, result.bestEpoch, result.trainableParameters,
                         result.secondsPerStep, result.examplesPerSecond))
        }
    }
}
