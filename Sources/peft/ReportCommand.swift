import ArgumentParser
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
            guard let data = try? Data(contentsOf: url) else {
                printError("skipping \(directory): no result.json")
                continue
            }
            let result: TrainingResult
            do { result = try JSONDecoder().decode(TrainingResult.self, from: data) } catch {
                throw ValidationError("\(url.path): not a result file (\(error))")
            }
            let c = result.configuration
            print(String(format: "| %@ | %@ | %@ | %d | %g | %.2f%% | %.2f%% (%d) | %d | %.3f | %.1f |", c.model, c.task,
                         c.method, c.epochs, c.resolvedLearningRate, 100 * result.testAccuracy,
                         100 * result.bestValidationAccuracy, result.bestEpoch, result.trainableParameters,
                         result.secondsPerStep, result.examplesPerSecond))
        }
    }
}
