import ArgumentParser
import Checkpoints
import Foundation
import Training

/// Summarises finished runs: run directories (their result.json) as a table of runs, suite records as a table of
/// cells (each method and task at its chosen learning rate, over seeds), and, with `--plot`, both as a figure of
/// accuracy against trainable parameters.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Tabulate finished runs and plot accuracy against trainable parameters.",
        discussion: """
        Give run directories (each with the result.json `peft train` writes), suite record files, or folders of
        them (e.g. benchmarks/suite). Runs are printed as a Markdown table; suite records as cells: the learning
        rate chosen on validation (the run with the smallest seed decides), the mean and spread of the test
        accuracy over seeds. --plot draws every run as accuracy against trainable parameters, one panel per task,
        variants of one method (lora:r=4, lora, lora:r=16) joined in order of size.
        Example: peft report --plot docs/plots/suite.svg --budget e10-b32-r112 benchmarks/suite
        """)
    @Argument(help: "Run directories, suite record files, or folders of suite records.") var paths: [String]
    @Option(help: "Also draw accuracy against trainable parameters, one panel per task, into this SVG file.") var plot: String?
    @Option(help: "Only runs of this budget tag (e.g. e10-b32-r112); needed when the runs have several.") var budget: String?
    @Option(help: "Only these tasks (repeatable; default: all).") var tasks: [String] = []
    @Option(help: "Only these methods or variants, as the suite names them (repeatable; default: all).") var methods: [String] = []
    @Option(help: "The plot's title.") var title = "Test accuracy against trainable parameters"

    func run() throws {
        let runDirectories = paths.filter { RegularFile.exists(URL(fileURLWithPath: $0).appendingPathComponent("result.json").path) }
        if !runDirectories.isEmpty { try printRuns(runDirectories) }
        let recordPaths = paths.filter { !runDirectories.contains($0) }
        let records = try RunPoint.load(recordPaths)
        if !recordPaths.isEmpty {
            if !runDirectories.isEmpty { print("") }
            printCells(try ReportCell.cells(try selected(records)))
        }
        guard let plot else { return }
        let cells = try ReportCell.cells(try selected(try RunPoint.load(runDirectories) + records))
        guard !cells.isEmpty else { throw ValidationError("--plot: no runs left to draw (check --budget, --tasks and --methods)") }
        let url = URL(fileURLWithPath: plot)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try writeAtomically(Data(AccuracyPlot(cells: cells, title: title).svg().utf8), to: url)
        printError("report: drew \(cells.count) cells over \(Set(cells.map(\.task)).count) tasks into \(plot)")
    }

    /// The points of the chosen budget and tasks.
    func selected(_ points: [RunPoint]) throws -> [RunPoint] {
        var points = points
        if let budget {
            let known = Set(points.map(\.budget))
            points = points.filter { $0.budget == budget }
            if points.isEmpty { throw ValidationError("--budget \(budget): no runs have it; the runs' budgets: \(known.sorted().joined(separator: ", "))") }
        }
        if !tasks.isEmpty { points = points.filter { tasks.contains($0.task) } }
        if !methods.isEmpty { points = points.filter { methods.contains($0.method) } }
        return points
    }

    func printRuns(_ directories: [String]) throws {
        print("| model | task | method | epochs | lr | test acc | best val acc (epoch) | trainable params | s/step | images/s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for directory in directories {
            let url = URL(fileURLWithPath: directory).appendingPathComponent("result.json")
            let result = try decodeJSONFile(TrainingResult.self, from: url, what: "result file")
            for (name, value) in [("testAccuracy", result.testAccuracy), ("bestValidationAccuracy", result.bestValidationAccuracy)]
                where !(value >= 0 && value <= 1) {
                throw ValidationError("\(url.path): '\(name)' is \(value); an accuracy is in [0, 1]")
            }
            let c = result.configuration
            print(String(format: "| %@ | %@ | %@ | %d | %g | %.2f%% | %.2f%% (%d) | %d | %.3f | %.1f |", c.model, c.task,
                         RunPoint.label(method: c.method, config: c.methodConfig), c.epochs, c.resolvedLearningRate,
                         100 * result.testAccuracy, 100 * result.bestValidationAccuracy, result.bestEpoch,
                         result.trainableParameters, result.secondsPerStep, result.examplesPerSecond))
        }
    }

    func printCells(_ cells: [ReportCell]) {
        print("| task | method | lr | seeds | test acc (%) | trainable params |")
        print("|---|---|---|---|---|---|")
        for cell in cells {
            let accuracy = String(format: "%.1f", 100 * cell.mean) + (cell.accuracies.count > 1 ? String(format: " ± %.1f", 100 * cell.spread) : "")
            print("| \(cell.task) | \(cell.method) | \(String(format: "%g", Double(cell.learningRate))) | \(cell.accuracies.count) | \(accuracy) | \(cell.trainableParameters) |")
        }
    }
}
