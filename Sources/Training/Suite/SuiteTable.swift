import Foundation

/// One cell of the suite table: the test accuracies of a method on a task at its chosen learning rate.
public struct SuiteCell: Sendable, Equatable {
    public var accuracies: [Double]
    public var multiplier: Float
    public var learningRate: Float

    /// Mean test accuracy over seeds.
    public var mean: Double { Self.mean(accuracies) }
    /// Sample standard deviation over seeds (0 with one seed).
    public var spread: Double { Self.spread(accuracies) }

    static func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }

    /// The sample standard deviation of `values` (0 for fewer than two).
    static func spread(_ values: [Double]) -> Double {
        guard values.count > 1 else { return 0 }
        let m = mean(values)
        return (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
    }
}

extension BenchmarkSuite {
    /// The cell of `method` on `task`, or nil until its learning rate is chosen.
    public func cell(task: String, method: String) throws -> SuiteCell? {
        guard let multiplier = try selectedMultiplier(task: task, method: method) else { return nil }
        let records = try seeds.compactMap { try record(task, method, multiplier, $0) }
        guard let first = records.first else { return nil }
        return SuiteCell(accuracies: records.map(\.testAccuracy), multiplier: multiplier, learningRate: first.learningRate)
    }

    /// The VTAB-style markdown table: test accuracy (%) per task as mean ± sample standard deviation over
    /// seeds, the mean over tasks, trainable parameters and seconds per step; followed by the chosen learning
    /// rates and notes on what is missing.
    public func markdownTable() throws -> String {
        var lines: [String] = []
        let header = ["method", "trainable params"] + tasks + ["mean", "s/step"]
        lines.append("| " + header.joined(separator: " | ") + " |")
        lines.append("|" + String(repeating: "---|", count: header.count))
        var incompleteMeans = false, partialSeeds = false
        var best: [String: (method: String, mean: Double)] = [:]
        var cells: [String: [String: SuiteCell]] = [:]
        for method in methods {
            var row = [method]
            var parameters: Int?
            var stepTimes: [Double] = []
            var means: [Double] = []
            var texts: [String] = []
            for task in tasks {
                for multiplier in learningRateMultipliers {
                    for seed in seeds {
                        if let record = try record(task, method, multiplier, seed) {
                            if parameters == nil { parameters = record.trainableParameters }
                            stepTimes.append(record.secondsPerStep)
                        }
                    }
                }
                guard let cell = try cell(task: task, method: method) else {
                    texts.append("—")
                    continue
                }
                cells[method, default: [:]][task] = cell
                means.append(cell.mean)
                if best[task].map({ cell.mean > $0.mean }) ?? true { best[task] = (method, cell.mean) }
                var text = String(format: "%.1f", 100 * cell.mean)
                if cell.accuracies.count > 1 { text += String(format: " ± %.1f", 100 * cell.spread) }
                if cell.accuracies.count < seeds.count {
                    text += " (\(cell.accuracies.count))"
                    partialSeeds = true
                }
                texts.append(text)
            }
            row.append(parameters.map(Self.grouped) ?? "—")
            row += texts
            if means.isEmpty {
                row.append("—")
            } else {
                let mean = means.reduce(0, +) / Double(means.count)
                if means.count < tasks.count {
                    row.append(String(format: "%.1f*", 100 * mean))
                    incompleteMeans = true
                } else {
                    row.append(String(format: "%.1f", 100 * mean))
                }
            }
            if stepTimes.isEmpty {
                row.append("—")
            } else {
                let median = stepTimes.sorted()[stepTimes.count / 2]
                row.append(median < 0.01 ? String(format: "%.4f", median) : String(format: "%.2f", median))
            }
            lines.append("| " + row.joined(separator: " | ") + " |")
        }
        lines.append("")
        let bestLine = tasks.compactMap { task in best[task].map { "\(task): \($0.method) (\(String(format: "%.1f", 100 * $0.mean)))" } }
        if !bestLine.isEmpty { lines.append("Best per task: " + bestLine.joined(separator: "; ") + ".") }
        lines.append("")
        lines.append("Learning rate chosen on validation (seed \(seeds[0]); grid: \(learningRateMultipliers.map { String(format: "%g", Double($0)) }.joined(separator: ", ")) x the method's default):")
        lines.append("")
        lines.append("| method | " + tasks.joined(separator: " | ") + " |")
        lines.append("|" + String(repeating: "---|", count: tasks.count + 1))
        for method in methods {
            let values = tasks.map { task in cells[method]?[task].map { String(format: "%g", Double($0.learningRate)) } ?? "—" }
            lines.append("| \(method) | " + values.joined(separator: " | ") + " |")
        }
        lines.append("")
        var notes = ["Trainable parameters include the classification head of the first task with a result (heads differ by the number of classes).",
                     "s/step is the median over the method's runs, as measured during the suite (a linear probe trains on cached features, so its step is the head only)."]
        if partialSeeds { notes.append("(n): only n of the \(seeds.count) seeds have finished for that cell.") }
        if incompleteMeans { notes.append("*: mean over the tasks finished so far, not all \(tasks.count).") }
        if lines.joined().contains("—") { notes.append("—: not run yet.") }
        lines += notes.map { "- " + $0 }
        return lines.joined(separator: "\n")
    }

    static func grouped(_ value: Int) -> String {
        let digits = String(value)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return out
    }

    /// Replaces the text between `<!-- suite:begin -->` and `<!-- suite:end -->` (with `marker` "fair":
    /// `<!-- suite-fair:begin -->` ...) in the markdown file at `url` with `body`, appending a new section under
    /// `heading` with the markers when they are absent, atomically.
    public static func replaceSection(in url: URL, with body: String, heading: String, marker: String? = nil) throws {
        let tag = marker.map { "suite-" + $0 } ?? "suite"
        let begin = "<!-- \(tag):begin -->", end = "<!-- \(tag):end -->"
        var text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        let block = "\(begin)\n\(body)\n\(end)"
        if let start = text.range(of: begin), let stop = text.range(of: end, range: start.upperBound..<text.endIndex) {
            text.replaceSubrange(start.lowerBound..<stop.upperBound, with: block)
        } else {
            if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
            text += "\n\(heading)\n\n\(block)\n"
        }
        try writeAtomically(Data(text.utf8), to: url)
    }
}
